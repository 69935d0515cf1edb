"""The original ERP frame for a frame id, read by the viewer itself.

The transmitter loops over its :class:`core.media.source.FrameSource` from frame 0, so frame ``i`` of
the stream is item ``i mod N`` of the source. Images and image folders are cached whole;
a video is decoded forward on demand (frames arrive in order, so this is one decode per
frame) with a small cache, and reopened when the stream loops or goes backwards.
Used only when the receiver does not send the reference in its metrics message.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from core.media.imageio import read_rgb
from core.media.source import FrameSource


class ReferenceFrames:
    def __init__(self, source: str | None, resolution: tuple[int, int], cache: int = 8):
        self.src = FrameSource(source, resolution)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_size = cache
        self._still: list[np.ndarray] | None = None
        self._length: int | None = None
        self._container = None
        self._decoder = None
        self._pos = 0  # index of the next frame the decoder yields

    def __len__(self) -> int:
        return self._length or 0

    def get(self, frame_id: int) -> np.ndarray | None:
        """The ERP frame the TX sent as ``frame_id`` (None if the content cannot be read)."""
        if frame_id < 0:
            return None
        if self.src.kind != "video":
            if self._still is None:
                self._still = [self.src._resize(read_rgb(f), str(f)) for f in self.src.files]
            return self._still[frame_id % len(self._still)]
        idx = frame_id % self._length if self._length else frame_id
        if idx in self._cache:
            self._cache.move_to_end(idx)
            return self._cache[idx]
        frame = self._decode(idx)
        if frame is not None:
            self._cache[idx] = frame
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return frame

    # ------------------------------------------------------------------ video
    def _open(self) -> None:
        import av
        self.close()
        self._container = av.open(str(self.src.path))
        self._decoder = self._container.decode(video=0)
        self._pos = 0

    def _decode(self, idx: int) -> np.ndarray | None:
        if self._decoder is None or idx < self._pos:
            self._open()
        for _ in range(2):  # at most one wrap-around
            while self._pos <= idx:
                try:
                    frame = next(self._decoder)
                except StopIteration:
                    self._length = self._pos
                    if self._length == 0:
                        return None
                    idx %= self._length
                    self._open()
                    break
                self._pos += 1
                if self._pos - 1 == idx:
                    return self.src._resize(frame.to_ndarray(format="rgb24"), str(self.src.path))
        return None

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = self._decoder = None
