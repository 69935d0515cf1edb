"""The digital part of a PHY frame: side information on the air.

Every frame a chain sends starts with a small digital part that carries what the receiver
needs besides the payload symbols -- the learned chain's side information (rate map, λ, ν,
image size: :mod:`core.codec.sideinfo`) or the classical chain's grant (MCS, QP, mean colour,
transport-block layout: :func:`pack_grant`). It is coded with the classical chain's own
pieces (:mod:`core.classical`: CRC24A, 5G NR LDPC with rate matching and scrambling, TS
38.211 QAM, the TS 38.214 MCS table); nothing here is new channel coding. The layout of one
frame's symbols is::

    | control block (fixed, MCS 0) | side body (MCS from the CQI) | payload symbols ... |

* **control block** (like a 5G DCI on the PDCCH): 3 bytes -- version (3 bits), the body's MCS
  (5 bits), the body's length in bytes (16 bits) -- + CRC24A, LDPC, QPSK at MCS 0 (code rate
  0.12): always :data:`CONTROL_SYMBOLS` = 205 channel uses, decodable well below 0 dB.
* **side body**: the side bytes + CRC24A, LDPC, QAM at the MCS of :func:`side_mcs`: the
  highest TS 38.214 MCS whose measured 1 % code-block-BLER threshold is at most the CQI minus
  :data:`SIDE_MARGIN_DB` = 3 dB (the short block and a stale CQI need the margin), floored at
  MCS 0. Its transport block is sized on the TBS grid of the classical live chain
  (:func:`core.classical.ldpc.quantised_payload_bits`, zero padding: 0.8 % of the body on
  average) so that frames whose side information differs by a few bytes share one LDPC code:
  building a code costs 12-40 ms, and with exact sizes the TX and the RX each built one for
  about every third frame of a live stream.

Both are counted in the CBR at the channel uses they take (:func:`channel_uses`). If either
CRC fails the receiver cannot decode the payload and shows its stated fallback.

Torch-free; :mod:`core.classical` (numba) is imported only when coding, so the flowgraph's
python can still import :mod:`core.link`.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

#: CQI back-off (dB) of the side body's MCS rule
SIDE_MARGIN_DB = 3.0
#: code-block BLER the side body's MCS is chosen for (at CQI - margin)
SIDE_BLER_TARGET = 0.01
#: MCS of the fixed control block (the lowest of TS 38.214 table 1)
CONTROL_MCS = 0
SIDEPART_VERSION = 2  # 2: the side body on the TBS grid
#: scrambling identities (38.211 n_RNTI) of the control block and the side body; the
#: classical chain's data uses 1
_RNTI_CONTROL = 0xFFFE
_RNTI_BODY = 0xFFFD
_CONTROL = struct.Struct(">BH")  # version << 5 | mcs, body length (bytes)
MAX_SIDE_BYTES = 0xFFFF


@dataclass
class SideDecode:
    """What the receiver got out of a frame's digital part."""
    data: bytes | None   #: the side bytes, None if a CRC failed
    n_symbols: int       #: symbols the digital part occupied (the payload starts here)
    mcs: int | None      #: MCS of the side body (None if the control block failed)

    @property
    def ok(self) -> bool:
        return self.data is not None


def side_mcs(cqi_db: float) -> int:
    """MCS of the side body at CQI ``cqi_db``: the highest whose 1 % BLER threshold is at
    most ``cqi_db - SIDE_MARGIN_DB``; MCS 0 when none is (or the CQI is unknown)."""
    from core.classical.mcs import select_mcs
    if not math.isfinite(float(cqi_db)):
        return CONTROL_MCS
    return int(select_mcs(float(cqi_db), SIDE_BLER_TARGET, margin_db=SIDE_MARGIN_DB))


@lru_cache(maxsize=256)
def _layout(payload_bits: int, mcs: int):
    from core.classical.ldpc import tb_layout
    from core.classical.mcs import mcs_entry
    e = mcs_entry(mcs)
    return tb_layout(payload_bits, e.qm, e.rate)


def _body_payload_bits(n_bytes: int) -> int:
    """Transport-block payload of a side body of ``n_bytes`` bytes: on the TBS grid."""
    from core.classical.ldpc import quantised_payload_bits
    return quantised_payload_bits(8 * int(n_bytes))


@lru_cache(maxsize=256)
def _coder(payload_bits: int, mcs: int, rnti: int):
    """The (stateless) transport-block coder of one block size, MCS and scrambling identity."""
    from core.classical.ldpc import TransportBlockCoder
    return TransportBlockCoder(_layout(payload_bits, mcs), n_rnti=rnti)


def control_symbols() -> int:
    """Channel uses of the control block (fixed)."""
    return _layout(8 * _CONTROL.size, CONTROL_MCS).num_symbols


def body_symbols(n_bytes: int, mcs: int) -> int:
    return _layout(_body_payload_bits(n_bytes), int(mcs)).num_symbols


def channel_uses(n_bytes: int, cqi_db: float) -> int:
    """Complex channel uses of a digital part carrying ``n_bytes`` of side bytes at CQI
    ``cqi_db`` (control block + side body): what the CBR counts."""
    return control_symbols() + body_symbols(n_bytes, side_mcs(cqi_db))


def _code(bits: np.ndarray, payload_bits: int, mcs: int, rnti: int) -> np.ndarray:
    """``bits`` (at most ``payload_bits``, zero-padded) as one transport block's QAM symbols."""
    from core.classical.mcs import modulate
    coder = _coder(payload_bits, mcs, rnti)
    return modulate(coder.encode(bits), coder.layout.qm)


def _bits(data: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(data, np.uint8))


def encode(data: bytes, cqi_db: float) -> np.ndarray:
    """Side bytes -> the digital part's QAM symbols (complex64, unit average energy)."""
    data = bytes(data)
    if len(data) > MAX_SIDE_BYTES:
        raise ValueError(f"side information of {len(data)} bytes exceeds {MAX_SIDE_BYTES}")
    mcs = side_mcs(cqi_db)
    ctrl = _CONTROL.pack((SIDEPART_VERSION << 5) | mcs, len(data))
    return np.concatenate([_code(_bits(ctrl), 8 * _CONTROL.size, CONTROL_MCS, _RNTI_CONTROL),
                           _code(_bits(data), _body_payload_bits(len(data)), mcs, _RNTI_BODY)]
                          ).astype(np.complex64)


def _decode_block(y: np.ndarray, noise_var, payload_bits: int, mcs: int, rnti: int):
    """(the block's first ``payload_bits`` bits or None if a CRC failed, symbols it took)."""
    from core.classical.mcs import demodulate
    coder = _coder(payload_bits, mcs, rnti)
    lay = coder.layout
    yy = np.nan_to_num(np.asarray(y, np.complex64).reshape(-1)[:lay.num_symbols],
                       nan=0.0, posinf=0.0, neginf=0.0)
    nv = noise_var if np.ndim(noise_var) == 0 else np.asarray(noise_var).reshape(-1)[:yy.size]
    llr = demodulate(yy, lay.qm, nv) if yy.size else np.zeros(0, np.float32)
    if llr.size < lay.coded_bits:  # symbols missing: erasures
        llr = np.concatenate([llr, np.zeros(lay.coded_bits - llr.size, np.float32)])
    dec = coder.decode(llr[:lay.coded_bits])
    return (dec.payload[:payload_bits] if dec.ok else None), lay.num_symbols


def decode(y: np.ndarray, noise_var) -> SideDecode:
    """The digital part at the start of a frame's equalised symbols ``y`` (``noise_var``:
    complex noise variance, scalar or per symbol). Never raises on bad input."""
    y = np.asarray(y).reshape(-1)
    nv = np.asarray(noise_var, np.float64)
    if nv.ndim == 0 and not (math.isfinite(float(nv)) and nv > 0):
        nv = np.float64(0.1)
    bits, n_ctrl = _decode_block(y, nv, 8 * _CONTROL.size, CONTROL_MCS, _RNTI_CONTROL)
    if bits is None:
        return SideDecode(None, n_ctrl, None)
    head, length = _CONTROL.unpack(np.packbits(bits).tobytes())
    version, mcs = head >> 5, head & 0x1F
    from core.classical.mcs import num_mcs
    if version != SIDEPART_VERSION or mcs >= num_mcs():
        return SideDecode(None, n_ctrl, None)
    body_nv = nv if nv.ndim == 0 else nv[n_ctrl:]
    body, n_body = _decode_block(y[n_ctrl:], body_nv, _body_payload_bits(length), mcs, _RNTI_BODY)
    data = None if body is None else np.packbits(body[:8 * length]).tobytes()
    return SideDecode(data, n_ctrl + n_body, mcs)


def awgn(symbols: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Complex AWGN at Es/N0 ``snr_db`` (the offline evaluations' channel)."""
    sigma = math.sqrt(10 ** (-snr_db / 10) / 2)
    n = symbols.size
    return (symbols + sigma * (rng.standard_normal(n) + 1j * rng.standard_normal(n))).astype(np.complex64)


# --------------------------------------------------------------------------- classical grant
_GRANT = struct.Struct(">BBfHHBBBHHIB")  # version, mcs, param, H, W, mean RGB, num_cbs, k_cb, e_cb, flags
_GRANT_VERSION = 1
_LOSSLESS = "lossless"


def pack_grant(meta: dict) -> bytes:
    """The classical chain's control information (``EncodedFrame.meta`` of
    :meth:`core.classical.chain.ClassicalChain.symbols_for`) in 23 + len(codec) bytes."""
    codec = str(meta["codec"]).encode()
    if len(codec) > 255:
        raise ValueError("codec name too long")
    param = meta.get("param")
    p = float("nan") if param is None else (float("inf") if param == _LOSSLESS else float(param))
    lay = meta.get("layout") or {}
    h, w = meta["shape"]
    r, g, b = (int(v) for v in meta["mean_rgb"])
    flags = 1 if meta.get("scramble", True) else 0
    return bytes([len(codec)]) + codec + _GRANT.pack(
        _GRANT_VERSION, int(meta["mcs"]), p, int(h), int(w), r, g, b,
        int(lay.get("num_cbs", 0)), int(lay.get("k_cb", 0)), int(lay.get("e_cb", 0)), flags)


def grant_size(codec: str) -> int:
    """Bytes of a packed grant for codec ``codec``."""
    return 1 + len(codec.encode()) + _GRANT.size


def unpack_grant(data: bytes) -> dict:
    """Inverse of :func:`pack_grant`: the ``meta`` dict that ``ClassicalChain.receive``
    takes. Raises ValueError on a malformed grant."""
    from core.classical.mcs import mcs_entry, num_mcs
    data = bytes(data)
    if not data or len(data) != 1 + data[0] + _GRANT.size:
        raise ValueError("malformed classical grant")
    codec = data[1:1 + data[0]].decode("ascii", "replace")
    (version, mcs, p, h, w, r, g, b, num_cbs, k_cb, e_cb,
     flags) = _GRANT.unpack_from(data, 1 + data[0])
    if version != _GRANT_VERSION or mcs >= num_mcs():
        raise ValueError("unsupported classical grant")
    e = mcs_entry(mcs)
    param = None if math.isnan(p) else (_LOSSLESS if math.isinf(p) else (int(p) if p == int(p) else p))
    layout = None
    if param is not None:
        cb_crc = 24 if num_cbs > 1 else 0
        cap = k_cb - 24 if num_cbs == 1 else num_cbs * (k_cb - cb_crc) - 24
        layout = {"payload_bits": cap, "qm": e.qm, "rate": e.rate, "num_cbs": num_cbs,
                  "k_cb": k_cb, "e_cb": e_cb}
    n_sym = num_cbs * e_cb // e.qm if layout else 0
    return {"scheme": f"{codec}+ldpc", "codec": codec, "mcs": mcs, "qm": e.qm,
            "shape": [h, w], "mean_rgb": [r, g, b], "budget": n_sym,
            "cbr": n_sym / (3 * h * w) if h * w else 0.0, "param": param, "layout": layout,
            "scramble": bool(flags & 1)}
