"""360° geometry: viewports, the ROI they define on the ERP frame, and ROI -> η / quality maps.

Viewport rendering is py360convert's ``e2p``. The ROI is derived with the *same* ``e2p`` call
on an image of ERP position indices, so the ROI is by construction exactly the set of ERP
positions the rendered viewport samples (plus a margin), with no second projection model to
keep in sync.

ROI transmission (paper Sec. V-B, Fig. 8): η₁ = 0.25 and quality weight m₁ = 1.25 inside the
ROI, η₂ = 0.05 and m₂ = 0.25 outside.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import py360convert

ETA_ROI, ETA_BACKGROUND = 0.25, 0.05
QUALITY_ROI, QUALITY_BACKGROUND = 1.25, 0.25


@dataclass
class Viewport:
    """A head pose: yaw (deg, + right), pitch (deg, + up), field of view (deg), output size."""

    yaw: float = 0.0
    pitch: float = 0.0
    fov: float = 90.0
    out_hw: tuple[int, int] = (256, 256)

    def clamped(self) -> "Viewport":
        yaw = (self.yaw + 180.0) % 360.0 - 180.0
        return Viewport(yaw, float(np.clip(self.pitch, -89.0, 89.0)),
                        float(np.clip(self.fov, 20.0, 150.0)), self.out_hw)


def render_viewport(erp: np.ndarray, vp: Viewport) -> np.ndarray:
    """Perspective view (out_h, out_w, 3) uint8 of an ERP image (H, W, 3)."""
    vp = vp.clamped()
    out = py360convert.e2p(erp, vp.fov, vp.yaw, vp.pitch, vp.out_hw, mode="bilinear")
    return np.clip(out + 0.5, 0, 255).astype(np.uint8) if out.dtype != np.uint8 else out


def roi_grid_mask(erp_hw: tuple[int, int], viewports: list[Viewport], stride: int = 16,
                  margin: int = 1) -> np.ndarray:
    """Boolean (H/stride, W/stride) mask of the ERP grid cells any viewport sees.

    ``margin`` dilates the mask by that many cells (wrapping around in longitude).
    """
    h, w = math.ceil(erp_hw[0] / stride), math.ceil(erp_hw[1] / stride)
    index = np.arange(h * w, dtype=np.float64).reshape(h, w)
    mask = np.zeros(h * w, dtype=bool)
    for vp in viewports:
        vp = vp.clamped()
        # Sample densely enough that every grid cell under the viewport gets hit.
        n = int(max(32, 4 * max(h, w) * vp.fov / 360.0))
        seen = py360convert.e2p(index[..., None], vp.fov, vp.yaw, vp.pitch, (n, n), mode="nearest")
        mask[np.unique(seen.astype(np.int64))] = True
    mask = mask.reshape(h, w)
    for _ in range(margin):
        grown = mask.copy()
        grown[1:] |= mask[:-1]; grown[:-1] |= mask[1:]
        grown |= np.roll(mask, 1, axis=1) | np.roll(mask, -1, axis=1)
        mask = grown
    return mask


def eta_map(mask: np.ndarray, eta_roi: float = ETA_ROI, eta_bg: float = ETA_BACKGROUND) -> np.ndarray:
    """Per-position bandwidth factor η_i from a grid ROI mask."""
    return np.where(mask, eta_roi, eta_bg).astype(np.float32)


def quality_map(mask: np.ndarray, stride: int = 16, m_roi: float = QUALITY_ROI,
                m_bg: float = QUALITY_BACKGROUND) -> np.ndarray:
    """Per-pixel quality weight m (H, W) from a grid ROI mask (for ROI-weighted distortion)."""
    px = np.repeat(np.repeat(mask, stride, 0), stride, 1)
    return np.where(px, m_roi, m_bg).astype(np.float32)


def pixel_mask(mask: np.ndarray, erp_hw: tuple[int, int], stride: int = 16) -> np.ndarray:
    """Upsample a grid mask to the ERP's pixel grid (H, W)."""
    return np.repeat(np.repeat(mask, stride, 0), stride, 1)[:erp_hw[0], :erp_hw[1]]


def head_trajectory(n_frames: int, yaw_span: float = 120.0, period: int = 60,
                    pitch_amp: float = 15.0, fov: float = 90.0) -> list[Viewport]:
    """A scripted, smooth head motion for demos: yaw sweeps ±yaw_span/2, pitch nods gently."""
    out = []
    for t in range(n_frames):
        phase = 2 * math.pi * t / period
        out.append(Viewport(yaw=0.5 * yaw_span * math.sin(phase),
                            pitch=pitch_amp * math.sin(2 * phase), fov=fov))
    return out
