"""Side information of a learned frame and the CBR accounting rule.

The receiver needs, besides the JSCC symbols: the rate-index map (one q-bit index per latent
position), the SQI λ and the CQI ν the transmitter used (float16 each, paper Sec. IV-A), and
the image size. They are serialised here, compressed losslessly (zlib/DEFLATE — the same
coder as PNG, on the raw index bytes), and sent over a robust digital link.

CBR rule (documented in README and tested):

    ρ = (k_jscc + k_side) / (3·H·W),   k_side = ceil(8·len(side_bytes) / SIDE_BITS_PER_SYMBOL)

with SIDE_BITS_PER_SYMBOL = 0.5: QPSK (2 bits per complex channel use) with a rate-1/4 code, a
digital link that stays reliable down to about 0 dB SNR, the bottom of the range served.
"""
from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np

SIDE_BITS_PER_SYMBOL = 0.5
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
        if len(data) < _HEAD.size:
            raise ValueError("side information truncated")
        hh, ww, h, w, lam, snr = _HEAD.unpack_from(data)
        if h * w == 0 or h * w > 1 << 20:
            raise ValueError(f"side information has an implausible latent size {h}x{w}")
        try:
            raw = zlib.decompress(data[_HEAD.size:], bufsize=h * w)
        except zlib.error as exc:
            raise ValueError(f"side information corrupt: {exc}") from exc
        if len(raw) != h * w:
            raise ValueError("side information: rate map size mismatch")
        return cls((hh, ww), np.frombuffer(raw, np.uint8).reshape(h, w).copy(), float(lam), float(snr))

    @property
    def channel_uses(self) -> int:
        return side_channel_uses(len(self.to_bytes()))


def side_channel_uses(n_bytes: int) -> int:
    """Complex channel uses needed to carry ``n_bytes`` of side information."""
    return math.ceil(8 * n_bytes / SIDE_BITS_PER_SYMBOL)


def cbr(jscc_symbols: int, side_bytes: int, height: int, width: int) -> float:
    """Channel bandwidth ratio ρ = k / (3·H·W), side information included."""
    return (jscc_symbols + side_channel_uses(side_bytes)) / (3 * height * width)
