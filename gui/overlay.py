"""Overlays on the ERP panel: the viewport outline and the ROI cells; pose <-> ERP position.

The outline uses py360convert's own perspective rays (``utils.xyzpers``), the same ones
``core.media.geometry.render_viewport`` samples with, so the drawn outline is exactly what the
viewport panel shows. Coordinates are normalised: x in [0, 1) left to right (yaw -180..180),
y in [0, 1] top to bottom (pitch 90..-90).
"""
from __future__ import annotations

import math

import numpy as np
from py360convert import utils as p360

from core.media.geometry import Viewport


def viewport_outline(vp: Viewport, n: int = 25) -> list[np.ndarray]:
    """Polylines (k, 2) of the viewport border on the ERP, split where they wrap around."""
    vp = vp.clamped()
    fov = math.radians(vp.fov)
    xyz = p360.xyzpers(fov, fov, -math.radians(vp.yaw), math.radians(vp.pitch), (n, n), 0.0)
    border = np.concatenate([xyz[0, :], xyz[1:, -1], xyz[-1, -2::-1], xyz[-2::-1, 0]])
    u, v = p360.xyz2uv(border.astype(np.float64))
    pts = np.stack([u[:, 0] / (2 * np.pi) + 0.5, 0.5 - v[:, 0] / np.pi], 1)
    jumps = np.where(np.abs(np.diff(pts[:, 0])) > 0.5)[0]
    return [seg for seg in np.split(pts, jumps + 1) if len(seg) > 1]


def pose_at(x: float, y: float) -> tuple[float, float]:
    """(yaw, pitch) in degrees of the normalised ERP position (x, y)."""
    yaw = (x % 1.0) * 360.0 - 180.0
    pitch = float(np.clip(90.0 - y * 180.0, -89.0, 89.0))
    return yaw, pitch


def position_of(yaw: float, pitch: float) -> tuple[float, float]:
    """Normalised ERP position of the viewing direction (yaw, pitch)."""
    return ((yaw + 180.0) % 360.0) / 360.0, (90.0 - pitch) / 180.0


def roi_rgba(mask: np.ndarray, rgb=(255, 200, 0), alpha: int = 70) -> np.ndarray:
    """(h, w, 4) uint8 tint: ROI cells coloured, the rest transparent."""
    out = np.zeros(mask.shape + (4,), np.uint8)
    out[mask] = (*rgb, alpha)
    return out
