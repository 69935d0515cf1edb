"""Fast viewport rendering for the live view, pixel-identical to ``core.media.geometry.render_viewport``.

``render_viewport`` (py360convert ``e2p``) rebuilds the perspective ray grid for every new
pose with ``ndarray.dot`` on an (H, W, 3) array: numpy's slow N-d path, tens of ms per pose
on a small CPU while holding the GIL, which stalls the GUI thread while the presenter drags.
Here the same rays come from one (N, 3) @ (3, 3) product (BLAS), the sampler is shared by the
three panels of a pose, each ERP frame is padded once (not once per channel and pose), and
the three channels are remapped in one ``cv2.remap`` call (which releases the GIL).
Same conventions, same padding, same fixed-point maps as py360convert, so the output
matches ``render_viewport`` exactly (tested).
"""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
from py360convert import utils as p360

from core.media.geometry import Viewport, render_viewport

try:
    import cv2
except ImportError:  # pragma: no cover - opencv-python-headless is a dependency of the viewer
    cv2 = None


def _rays(vp: Viewport, out_hw: tuple[int, int]) -> np.ndarray:
    """py360convert.utils.xyzpers with the three rotations folded into one matrix."""
    fov = math.radians(vp.fov)
    u, v = -math.radians(vp.yaw), math.radians(vp.pitch)
    h, w = out_hw
    grid = np.ones((h, w, 3), np.float32)
    x_max = y_max = np.tan(fov / 2)
    x_rng = np.linspace(-x_max, x_max, num=w, dtype=np.float32)
    y_rng = np.linspace(-y_max, y_max, num=h, dtype=np.float32)
    grid[..., :2] = np.stack(np.meshgrid(x_rng, -y_rng), -1)
    rx = p360.rotation_matrix(v, p360.Dim.X)
    ry = p360.rotation_matrix(u, p360.Dim.Y)
    ri = p360.rotation_matrix(0.0, np.array([0, 0, 1.0]).dot(rx).dot(ry))
    rot = rx @ ry @ ri
    return (grid.reshape(-1, 3).astype(np.float64) @ rot).astype(np.float32).reshape(h, w, 3)


def _pad(img: np.ndarray) -> np.ndarray:
    """py360convert's EquirecSampler._pad, for all channels at once."""
    h, w = img.shape[:2]
    out = np.empty((h + 2, w + 2) + img.shape[2:], img.dtype)
    out[1:-1, 1:-1] = img
    out[0, 1:-1] = np.roll(img[0], w // 2, axis=0)
    out[-1, 1:-1] = np.roll(img[-1], w // 2, axis=0)
    out[:, 0] = out[:, -2]
    out[:, -1] = out[:, 1]
    return out


class ViewportRenderer:
    """Renders viewports of several ERP images at one pose; caches maps and padded frames."""

    def __init__(self, maps: int = 4, frames: int = 6):
        self._maps: OrderedDict[tuple, tuple] = OrderedDict()
        self._padded: OrderedDict[object, np.ndarray] = OrderedDict()
        self._n_maps, self._n_frames = maps, frames

    def _map(self, vp: Viewport, in_hw: tuple[int, int], out_hw: tuple[int, int]):
        key = (vp.yaw, vp.pitch, vp.fov, in_hw, out_hw)
        hit = self._maps.get(key)
        if hit is None:
            u, v = p360.xyz2uv(_rays(vp, out_hw))
            cx, cy = p360.uv2coor(u, v, in_hw[0], in_hw[1])
            hit = cv2.convertMaps(cx[..., 0] + 1, cy[..., 0] + 1, cv2.CV_16SC2, nninterpolation=False)
            self._maps[key] = hit
            while len(self._maps) > self._n_maps:
                self._maps.popitem(last=False)
        return hit

    def render(self, erp: np.ndarray, vp: Viewport, frame_key=None) -> np.ndarray:
        """Viewport (out_h, out_w, 3) uint8 of ``erp``; ``frame_key`` identifies the frame so
        its padded copy is reused across poses (None: no reuse)."""
        if cv2 is None or erp.dtype != np.uint8:
            return render_viewport(erp, vp)
        vp = vp.clamped()
        padded = self._padded.get(frame_key) if frame_key is not None else None
        if padded is None:
            padded = _pad(np.ascontiguousarray(erp))
            if frame_key is not None:
                self._padded[frame_key] = padded
                while len(self._padded) > self._n_frames:
                    self._padded.popitem(last=False)
        m1, m2 = self._map(vp, erp.shape[:2], tuple(vp.out_hw))
        return cv2.remap(padded, m1, m2, interpolation=cv2.INTER_LINEAR)
