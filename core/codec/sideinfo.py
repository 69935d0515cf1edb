"""Side information of a learned frame and the CBR accounting rule.

The receiver needs, besides the JSCC symbols: the rate-index map (one q-bit index per latent
position), the SQI λ and the CQI ν the transmitter used (float16 each, paper Sec. IV-A), and
the image size. They are serialised here, compressed losslessly (zlib/DEFLATE — the same
coder as PNG, on the raw index bytes), and sent over a robust digital link.

CBR rule (documented in README and tested):

    ρ = (k_jscc + k_side) / (3·H·W),   k_side = ceil(8·len(side_bytes) / SIDE_BITS_PER_SYMBOL)

where the digital link's spectral efficiency follows the CQI ν in the side information
itself, as a real link adaptation would: SIDE_BITS_PER_SYMBOL(ν) = 3/4 of the AWGN capacity
log2(1 + 10^(ν/10)), rounded down to a multiple of 1/4 bit and kept within [0.25, 4] bits per
channel use. The 25 % back-off from capacity is the usual margin of 5G LDPC at BLER 10 %
(e.g. 0.75 bit/use at 0 dB, 2.5 bit/use at 10 dB).
"""
from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from core.link.errors import MessageError

SIDE_LINK_BACKOFF = 0.75
_HEAD = struct.Struct("<HHHHee")  # image H, W, latent h, w, λ (f16), ν (f16)


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
        return head + zlib.compress(idx.tobytes(), 9)

    @classmethod
    def from_bytes(cls, data: bytes) -> "SideInfo":
        """Parse and validate; raises :class:`core.link.errors.MessageError` (a ValueError)."""
        if len(data) < _HEAD.size:
            raise MessageError("side information truncated")
        hh, ww, h, w, lam, snr = _HEAD.unpack_from(data)
        if h * w == 0 or h * w > 1 << 20:
            raise MessageError(f"side information has an implausible latent size {h}x{w}")
        try:
            raw = zlib.decompress(data[_HEAD.size:], bufsize=h * w)
        except zlib.error as exc:
            raise MessageError(f"side information corrupt: {exc}") from exc
        if len(raw) != h * w:
            raise MessageError("side information: rate map size mismatch")
        return cls((hh, ww), np.frombuffer(raw, np.uint8).reshape(h, w).copy(), float(lam), float(snr))

    @property
    def channel_uses(self) -> int:
        return side_channel_uses(len(self.to_bytes()), self.snr_db)


def side_bits_per_symbol(snr_db: float) -> float:
    """Spectral efficiency of the digital side-information link at CQI ``snr_db``."""
    se = SIDE_LINK_BACKOFF * math.log2(1 + 10 ** (snr_db / 10))
    return min(4.0, max(0.25, math.floor(se * 4) / 4))


def side_channel_uses(n_bytes: int, snr_db: float) -> int:
    """Complex channel uses needed to carry ``n_bytes`` of side information at CQI ``snr_db``."""
    return math.ceil(8 * n_bytes / side_bits_per_symbol(snr_db))


def cbr(jscc_symbols: int, side_bytes: int, height: int, width: int, snr_db: float) -> float:
    """Channel bandwidth ratio ρ = k / (3·H·W), side information included."""
    return (jscc_symbols + side_channel_uses(side_bytes, snr_db)) / (3 * height * width)
