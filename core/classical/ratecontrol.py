"""Live rate control of the classical chain: about one codec encode per frame, not a QP search.

The offline tables find, per image and budget, the highest-rate ladder point whose bitstream fits
(:func:`core.classical.codecs.largest_fitting`: a binary search, 5-7 encodes, cached on disk). A
live transmitter cannot afford that: the codec encode is most of the classical TX's frame time,
and a live frame is never seen twice, so a disk cache only costs. Consecutive frames of a video
have nearly the same rate-QP curve, so :class:`LiveRateControl` predicts the ladder point from
the frames before, with the usual exponential rate model::

    bits(i) ~= bits(i0) * exp(s * (i - i0))     (i: ladder index, rate rising with i;
                                                  s ~= ln 2 / 6 per QP step for HEVC / VVC)

It encodes the highest-rate point predicted to fit with a small ``margin``. When that bitstream
does not fit (a scene cut, a burst of detail) it jumps down by the model until one does; when it
fits with room for two or more ladder steps it tries once higher. The slope ``s`` is learned from
every frame that took two encodes. The first frame of a stream, with no history, takes the full
search. The cost against the search is that a frame may stay one ladder step below the best fit;
``tools/classical_live_rc.py`` measures both (docs/results/classical_live_rc.md).

Only the transmitter uses it (``tx/classical.py``); evaluations keep the exact search.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .codecs import BitstreamCache, Codec, CodecPoint, largest_fitting

#: rate growth per ladder step before any frame measured it: bits double every 6 QP (HEVC, VVC)
DEFAULT_SLOPE = math.log(2.0) / 6.0
#: the slope is kept in this range whatever two noisy encodes suggest
SLOPE_RANGE = (0.02, 0.6)


@dataclass
class RateControlStats:
    """Counters of a :class:`LiveRateControl` since it was made."""
    frames: int = 0
    encodes: int = 0
    searches: int = 0        #: frames that took the full search (no history yet)
    overshoots: int = 0      #: first encode did not fit
    step_ups: int = 0        #: a second, higher-rate encode was tried

    @property
    def encodes_per_frame(self) -> float:
        return self.encodes / self.frames if self.frames else float("nan")


class LiveRateControl:
    """Predicts the ladder point that fits ``max_bits`` from the previous frames of one stream.

    Parameters
    ----------
    codec : Codec
        The live source codec (its ``ladder`` must be ordered by rising rate).
    margin : float
        Fraction of the bit budget kept free when predicting (absorbs the frame-to-frame wobble
        of the rate curve, so the first encode usually fits).
    slope : float
        Initial ``d ln(bits) / d(ladder index)``; learned from the frames afterwards.

    Call :meth:`fit` once per frame.
    """

    def __init__(self, codec: Codec, margin: float = 0.03, slope: float = DEFAULT_SLOPE):
        if not codec.ladder:
            raise ValueError(f"codec {codec.name} has no ladder to control")
        self.codec = codec
        self.ladder = list(codec.ladder)
        self.margin = float(margin)
        self.slope = float(slope)
        self.anchor: tuple[int, int] | None = None    # (ladder index, bits) of the last encode
        self.stats = RateControlStats()

    # ------------------------------------------------------------------------------ model
    def predict(self, max_bits: int) -> int | None:
        """Ladder index predicted to be the highest-rate one that fits; None without history."""
        if self.anchor is None or max_bits <= 0:
            return None
        i0, b0 = self.anchor
        steps = (math.log(max_bits * (1.0 - self.margin)) - math.log(max(b0, 1))) / self.slope
        return int(np.clip(i0 + math.floor(steps), 0, len(self.ladder) - 1))

    def _learn(self, i: int, bits: int, j: int, bits_j: int) -> None:
        """Refine the slope from two encodes of the same frame (an exponential average)."""
        if i == j or bits <= 0 or bits_j <= 0:
            return
        s = (math.log(bits_j) - math.log(bits)) / (j - i)
        if SLOPE_RANGE[0] <= s <= SLOPE_RANGE[1]:
            self.slope = 0.7 * self.slope + 0.3 * s

    # ------------------------------------------------------------------------------ one frame
    def fit(self, rgb: np.ndarray, max_bits: int) -> CodecPoint | None:
        """The frame's codec point: the highest-rate ladder point found to fit ``max_bits``
        (``mse`` is NaN: the transmitter does not decode its own bitstream), or None when
        even the lowest rate does not fit."""
        self.stats.frames += 1
        i = self.predict(max_bits)
        if i is None:
            return self._search(rgb, max_bits)
        data = self._encode(rgb, i)
        if 8 * len(data) > max_bits:
            self.stats.overshoots += 1
            return self._walk_down(rgb, max_bits, i, data)
        j = self.predict(max_bits)           # the anchor is this frame now
        if j is not None and j >= i + 2:     # much more room than predicted: one try higher
            self.stats.step_ups += 1
            bits_i = 8 * len(data)
            up = self._encode(rgb, j)
            self._learn(i, bits_i, j, 8 * len(up))
            if 8 * len(up) <= max_bits:
                return self._point(j, up)
            self.anchor = (i, bits_i)
        return self._point(i, data)

    def _walk_down(self, rgb, max_bits: int, i: int, data: bytes) -> CodecPoint | None:
        """After an overshoot: jump down by the model until a bitstream fits."""
        while 8 * len(data) > max_bits:
            if i == 0:
                return None
            bits_i = 8 * len(data)
            j = min(self.predict(max_bits), i - 1)   # the anchor is the overshooting encode
            data_j = self._encode(rgb, j)
            self._learn(j, 8 * len(data_j), i, bits_i)
            i, data = j, data_j
        return self._point(i, data)

    def _search(self, rgb, max_bits: int) -> CodecPoint | None:
        """No history: the exact search, its encodes kept in memory for this frame only."""
        self.stats.searches += 1
        pt = largest_fitting(self.codec, rgb, max_bits, _FrameMemo(self.stats), key="live")
        if pt is not None:
            self.anchor = (self.ladder.index(pt.param), pt.bits)
        return pt

    def _encode(self, rgb, i: int) -> bytes:
        self.stats.encodes += 1
        data = self.codec.encode(rgb, self.ladder[i])
        self.anchor = (i, 8 * len(data))
        return data

    def _point(self, i: int, data: bytes) -> CodecPoint:
        return CodecPoint(self.codec.name, self.ladder[i], 8 * len(data), float("nan"), data)


class _FrameMemo(BitstreamCache):
    """The search's cache for one live frame: encodes kept in memory (the search asks for some
    twice) and counted in the controller's stats; never touches the disk, never decodes."""

    def __init__(self, stats: RateControlStats):
        super().__init__(enabled=False)
        self.stats = stats
        self.memo: dict = {}

    def encode(self, codec: Codec, rgb: np.ndarray, param, key: str | None = None) -> bytes:
        if param not in self.memo:
            self.stats.encodes += 1
            self.memo[param] = codec.encode(rgb, param)
        return self.memo[param]

    def point(self, codec: Codec, rgb: np.ndarray, param, key: str | None = None,
              with_data: bool = False) -> CodecPoint:
        data = self.encode(codec, rgb, param, key)
        return CodecPoint(codec.name, param, 8 * len(data), float("nan"), data if with_data else None)
