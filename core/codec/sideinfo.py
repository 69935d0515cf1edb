"""Side information of a learned frame and the CBR accounting rule.

The receiver needs, besides the JSCC symbols: the rate-index map (one q-bit index per latent
position), the SQI λ and the CQI ν the transmitter used (float16 each, paper Sec. IV-A), and
the image size. They are serialised here -- a 12-byte header, then the rate map coded by the
context-adaptive range coder of :mod:`core.codec.ratemap` (smaller than zlib, which the
first version used) -- and sent on the air in the frame's digital part
(:mod:`core.link.sidepart`: CRC24A + 5G NR LDPC + QAM at an MCS from the CQI with a 3 dB
margin, after a fixed MCS-0 control block).

CBR rule (documented in README and tested):

    ρ = (k_jscc + k_side) / (3·H·W),   k_side = sidepart.channel_uses(len(side_bytes), ν)

the channel uses the digital part really takes: the control block plus the LDPC-coded side
bytes at the MCS that :func:`core.link.sidepart.side_mcs` picks from the CQI ν in the side
information itself.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from core.link import sidepart
from core.link.errors import MessageError

from . import ratemap

_HEAD = struct.Struct("<HHHHee")  # image H, W, latent h, w, λ (f16), ν (f16)
RATE_BITS = 4  # 16 rate levels
#: largest rate map accepted (an 8192x4096 ERP frame at 1/16 resolution)
MAX_POSITIONS = 1 << 17


@dataclass
class SideInfo:
    image_size: tuple[int, int]
    rate_index: np.ndarray  # (h, w) uint8
    lam: float
    snr_db: float

    def to_bytes(self) -> bytes:
        idx = np.ascontiguousarray(self.rate_index, dtype=np.uint8)
        h, w = idx.shape
        head = _HEAD.pack(self.image_size[0], self.image_size[1], h, w,
                          np.float16(self.lam), np.float16(self.snr_db))
        return head + ratemap.encode(idx, RATE_BITS)

    @classmethod
    def from_bytes(cls, data: bytes) -> "SideInfo":
        """Parse and validate; raises :class:`core.link.errors.MessageError` (a ValueError)."""
        if len(data) < _HEAD.size:
            raise MessageError("side information truncated")
        hh, ww, h, w, lam, snr = _HEAD.unpack_from(data)
        if h * w == 0 or h * w > MAX_POSITIONS or h * w > -(-hh // 8) * -(-ww // 8):
            raise MessageError(f"side information has an implausible latent size {h}x{w} "
                               f"for a {hh}x{ww} image")
        if len(data) - _HEAD.size > h * w:  # the coder never expands 4-bit indices that much
            raise MessageError("side information: rate map too long for its size")
        idx = ratemap.decode(data[_HEAD.size:], (h, w), RATE_BITS)
        return cls((hh, ww), idx, float(lam), float(snr))

    @property
    def channel_uses(self) -> int:
        return side_channel_uses(len(self.to_bytes()), self.snr_db)


def side_channel_uses(n_bytes: int, snr_db: float) -> int:
    """Complex channel uses of the digital part carrying ``n_bytes`` of side information at
    CQI ``snr_db`` (control block + LDPC-coded side bytes at the chosen MCS)."""
    return sidepart.channel_uses(n_bytes, snr_db)


def cbr(jscc_symbols: int, side_bytes: int, height: int, width: int, snr_db: float) -> float:
    """Channel bandwidth ratio ρ = k / (3·H·W), side information included."""
    return (jscc_symbols + side_channel_uses(side_bytes, snr_db)) / (3 * height * width)
