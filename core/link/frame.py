"""Frame format shared by every process on the link (TX app, flowgraph, RX app).

This module must stay importable under Debian's ``/usr/bin/python3`` (numpy 1.24, no torch):
the GNU Radio flowgraph imports it. Keep it numpy + stdlib only.

Two message kinds travel over ZeroMQ:

* :class:`TxFrame` — TX application → flowgraph: a block of complex channel symbols with a
  versioned header (frame id, stream, symbol count, CRC-32 of the payload).
* :class:`RxFrame` — flowgraph → RX application: the equalised symbols of one received
  PHY frame plus what the receiver measured (CQI = estimated SNR, per-subcarrier SNR).

Each ZeroMQ message carries exactly one frame, so ZeroMQ keeps the boundaries; over the air
the flowgraph keeps them with its own preamble and PHY header (:mod:`core.phy.ofdm`).

The other messages between processes (side, feedback, control, metrics) live in
:mod:`core.link.messages`; these two stay here, binary and CRC-protected, because they are the
GNU Radio blocks' hot path and carry raw complex symbols. :class:`FrameError` is a
:class:`core.link.errors.MessageError` like every other parse error.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from .errors import MessageError

FRAME_VERSION = 1
MAGIC_TX = b"NXT"
MAGIC_RX = b"NXR"
#: Upper bound on symbols per frame; larger messages are refused before allocation.
MAX_SYMBOLS = 1 << 22

# magic(3) version(B) stream(B) flags(B) frame_id(I) n_symbols(I) payload_crc(I) meta_len(H)
_TX_HEAD = struct.Struct("<3sBBBIIIH")
# magic(3) version(B) stream(B) flags(B) frame_id(I) n_symbols(I) cqi_db(f) snr_true_db(f)
# t_tx_ns(Q) n_carriers(H)
_RX_HEAD = struct.Struct("<3sBBBIIffQH")
_CRC = struct.Struct("<I")

STREAM_LEARNED = 0
STREAM_CLASSICAL = 1
STREAM_TEST = 2

FLAG_HEADER_OK = 1


class FrameError(MessageError):
    """A message that is not a well-formed frame; the receiver drops it and counts it."""


def _crc32(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def _as_c64(symbols: np.ndarray) -> np.ndarray:
    arr = np.ascontiguousarray(symbols, dtype=np.complex64).reshape(-1)
    if arr.size > MAX_SYMBOLS:
        raise FrameError(f"frame of {arr.size} symbols exceeds MAX_SYMBOLS={MAX_SYMBOLS}")
    return arr


@dataclass
class TxFrame:
    """One block of channel symbols sent by a transmitter application.

    Parameters
    ----------
    frame_id : int
        Sequence number (uint32, wraps).
    symbols : np.ndarray
        Complex channel symbols (any shape; sent flattened as complex64).
    stream : int
        Which chain produced it (``STREAM_LEARNED``, ``STREAM_CLASSICAL``, ``STREAM_TEST``).
    meta : bytes
        Small application metadata carried beside the payload on the ZMQ hop only
        (never over the air), e.g. a timestamp for latency measurement.
    """

    frame_id: int
    symbols: np.ndarray
    stream: int = STREAM_LEARNED
    meta: bytes = b""
    flags: int = 0

    def to_bytes(self) -> bytes:
        payload = _as_c64(self.symbols).tobytes()
        if len(self.meta) > 0xFFFF:
            raise FrameError("meta larger than 65535 bytes")
        head = _TX_HEAD.pack(MAGIC_TX, FRAME_VERSION, self.stream & 0xFF, self.flags & 0xFF,
                             self.frame_id & 0xFFFFFFFF, len(payload) // 8, _crc32(payload),
                             len(self.meta))
        return head + _CRC.pack(_crc32(head + self.meta)) + self.meta + payload

    @classmethod
    def from_bytes(cls, msg: bytes) -> "TxFrame":
        """Parse and validate; raises :class:`FrameError` on anything malformed."""
        n_head = _TX_HEAD.size + _CRC.size
        if len(msg) < n_head:
            raise FrameError(f"truncated TX frame: {len(msg)} bytes < header {n_head}")
        head = msg[:_TX_HEAD.size]
        magic, version, stream, flags, frame_id, n_sym, pcrc, meta_len = _TX_HEAD.unpack(head)
        if magic != MAGIC_TX:
            raise FrameError("bad magic: not a TX frame")
        if version != FRAME_VERSION:
            raise FrameError(f"unsupported frame version {version} (this build speaks {FRAME_VERSION})")
        if n_sym > MAX_SYMBOLS:
            raise FrameError(f"frame claims {n_sym} symbols > MAX_SYMBOLS")
        expected = n_head + meta_len + 8 * n_sym
        if len(msg) != expected:
            raise FrameError(f"length mismatch: {len(msg)} bytes, header says {expected}")
        meta = bytes(msg[n_head:n_head + meta_len])
        (hcrc,) = _CRC.unpack_from(msg, _TX_HEAD.size)
        if hcrc != _crc32(head + meta):  # the CRC covers header and meta
            raise FrameError("header CRC mismatch")
        payload = msg[n_head + meta_len:]
        if _crc32(payload) != pcrc:
            raise FrameError("payload CRC mismatch")
        symbols = np.frombuffer(payload, dtype=np.complex64).copy()
        return cls(frame_id=frame_id, symbols=symbols, stream=stream, meta=meta, flags=flags)


@dataclass
class RxFrame:
    """One received PHY frame as reported by the flowgraph's OFDM receiver.

    ``symbols`` are equalised (soft, never hard-decided); ``cqi_db`` is the receiver's
    pilot-based SNR estimate for this frame and ``subcarrier_snr_db`` its per-carrier view.
    ``snr_true_db`` is the SNR the channel emulator was set to (NaN over a real radio).
    """

    frame_id: int
    symbols: np.ndarray
    cqi_db: float
    subcarrier_snr_db: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    snr_true_db: float = float("nan")
    stream: int = STREAM_LEARNED
    flags: int = FLAG_HEADER_OK
    t_tx_ns: int = 0

    def to_bytes(self) -> bytes:
        sym = _as_c64(self.symbols)
        sc = np.ascontiguousarray(self.subcarrier_snr_db, dtype=np.float32).reshape(-1)
        head = _RX_HEAD.pack(MAGIC_RX, FRAME_VERSION, self.stream & 0xFF, self.flags & 0xFF,
                             self.frame_id & 0xFFFFFFFF, sym.size, float(self.cqi_db),
                             float(self.snr_true_db), int(self.t_tx_ns) & (2**64 - 1), sc.size)
        body = sc.tobytes() + sym.tobytes()
        return head + _CRC.pack(_crc32(head + body)) + body

    @classmethod
    def from_bytes(cls, msg: bytes) -> "RxFrame":
        n_head = _RX_HEAD.size + _CRC.size
        if len(msg) < n_head:
            raise FrameError(f"truncated RX frame: {len(msg)} bytes")
        head = msg[:_RX_HEAD.size]
        (magic, version, stream, flags, frame_id, n_sym, cqi, snr_true, t_tx,
         n_sc) = _RX_HEAD.unpack(head)
        if magic != MAGIC_RX:
            raise FrameError("bad magic: not an RX frame")
        if version != FRAME_VERSION:
            raise FrameError(f"unsupported frame version {version}")
        if n_sym > MAX_SYMBOLS:
            raise FrameError(f"frame claims {n_sym} symbols > MAX_SYMBOLS")
        expected = n_head + 4 * n_sc + 8 * n_sym
        if len(msg) != expected:
            raise FrameError(f"length mismatch: {len(msg)} bytes, header says {expected}")
        body = msg[n_head:]
        (crc,) = _CRC.unpack_from(msg, _RX_HEAD.size)
        if crc != _crc32(head + body):
            raise FrameError("RX frame CRC mismatch")
        sc = np.frombuffer(body[:4 * n_sc], dtype=np.float32).copy()
        sym = np.frombuffer(body[4 * n_sc:], dtype=np.complex64).copy()
        if not (np.isfinite(cqi) or np.isnan(cqi)):
            cqi = float("nan")
        return cls(frame_id=frame_id, symbols=sym, cqi_db=cqi, subcarrier_snr_db=sc,
                   snr_true_db=snr_true, stream=stream, flags=flags, t_tx_ns=t_tx)


# ---------------------------------------------------------------------- send-time metadata
#: ``TxFrame.meta`` convention for latency measurement: b"T1" + uint64 send time (ns since the
#: epoch, ``time.time_ns()``). The flowgraph copies it into ``RxFrame.t_tx_ns``; without it the
#: flowgraph uses the time the frame reached it.
_META_TIME = struct.Struct("<2sQ")
_META_TIME_TAG = b"T1"


def time_meta(t_ns: int | None = None) -> bytes:
    """Meta bytes carrying a send timestamp (now by default)."""
    import time as _time
    return _META_TIME.pack(_META_TIME_TAG, int(_time.time_ns() if t_ns is None else t_ns) & (2**64 - 1))


def meta_time_ns(meta: bytes) -> int | None:
    """The timestamp of :func:`time_meta` bytes (a prefix of ``meta``), or None."""
    if len(meta) >= _META_TIME.size and meta[:2] == _META_TIME_TAG:
        return _META_TIME.unpack_from(meta)[1]
    return None
