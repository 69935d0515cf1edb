"""Equirectangular frame sources: a video file, a folder of images, or a single panorama.

Every source yields (H, W, 3) uint8 RGB frames resized to the requested ERP resolution and
loops forever. Inputs are validated up front with messages that say what to do.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from core.media.imageio import IMAGE_SUFFIXES, list_images, read_rgb
from core.paths import asset

DEFAULT_CONTENT = asset("data", "video", "vrview_richoh1_0_3.mp4")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm", ".avi")
ASPECT_TOLERANCE = 0.1


def parse_resolution(text: str) -> tuple[int, int]:
    """'1024x512' -> (width, height); both multiples of 16, 2:1."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"resolution {text!r} is not WIDTHxHEIGHT, e.g. 512x256") from None
    if w % 16 or h % 16 or w <= 0 or h <= 0:
        raise ValueError(f"resolution {w}x{h}: width and height must be positive multiples of 16")
    if w != 2 * h:
        raise ValueError(f"resolution {w}x{h} is not 2:1 equirectangular (try {2 * h}x{h})")
    if w * h > 4096 * 2048:
        raise ValueError(f"resolution {w}x{h} is larger than 4096x2048")
    return w, h


def resolution_arg(text: str) -> str:
    """argparse ``type=`` for ``--resolution``: checked at parse time (before any process
    starts), kept as the text the processes are given."""
    try:
        parse_resolution(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def source_arg(text: str) -> str:
    """argparse ``type=`` for ``--source``: the content must exist and be of a kind we read."""
    try:
        FrameSource(text, (32, 16))
    except (OSError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _check_aspect(shape: tuple[int, ...], origin: str) -> None:
    h, w = shape[:2]
    if abs(w / h - 2.0) > 2.0 * ASPECT_TOLERANCE:
        raise ValueError(f"{origin} is {w}x{h}, not a 2:1 equirectangular frame")


class FrameSource:
    """Loops over ERP frames from ``path`` at ``resolution`` (width, height)."""

    def __init__(self, path: str | Path | None, resolution: tuple[int, int]):
        self.path = Path(path) if path else DEFAULT_CONTENT
        self.resolution = resolution
        if not self.path.exists():
            raise FileNotFoundError(f"content {self.path} does not exist: pass --source with a "
                                    f"2:1 video, image folder or panorama")
        if self.path.is_dir():
            self.kind, self.files = "folder", list_images(self.path)
        elif self.path.suffix.lower() in VIDEO_SUFFIXES:
            self.kind = "video"
        elif self.path.suffix.lower() in IMAGE_SUFFIXES:
            self.kind, self.files = "image", [self.path]
        else:
            raise ValueError(f"{self.path}: unsupported content type (video {VIDEO_SUFFIXES}, "
                             f"images {IMAGE_SUFFIXES}, or a folder of images)")

    def _resize(self, rgb: np.ndarray, origin: str) -> np.ndarray:
        _check_aspect(rgb.shape, origin)
        if (rgb.shape[1], rgb.shape[0]) != self.resolution:
            rgb = np.asarray(Image.fromarray(rgb).resize(self.resolution, Image.BILINEAR))
        return rgb

    def frames(self) -> Iterator[np.ndarray]:
        if self.kind == "video":
            yield from self._video_frames()
        else:
            cache = [self._resize(read_rgb(f), str(f)) for f in self.files]
            while True:
                yield from cache

    def _video_frames(self) -> Iterator[np.ndarray]:
        import av
        while True:
            try:
                container = av.open(str(self.path))
            except Exception as exc:  # PyAV raises several error types for bad files
                raise ValueError(f"cannot open video {self.path}: {exc}") from exc
            n = 0
            with container:
                for frame in container.decode(video=0):
                    yield self._resize(frame.to_ndarray(format="rgb24"), str(self.path))
                    n += 1
            if n == 0:
                raise ValueError(f"video {self.path} has no decodable frames")
