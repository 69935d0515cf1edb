"""360-degree geometry: viewport rendering, ROI from the viewport, η/quality maps, WS-PSNR."""
from __future__ import annotations

import numpy as np
import pytest

from core.media.geometry import (
    Viewport,
    eta_map,
    head_trajectory,
    pixel_mask,
    quality_map,
    render_viewport,
    roi_grid_mask,
)
from core.media.metrics import erp_weights, psnr, ws_psnr


def test_roi_follows_yaw_and_wraps():
    front = roi_grid_mask((256, 512), [Viewport(0, 0, 90)], margin=0)
    assert front.shape == (16, 32)
    cols = np.where(front.any(0))[0]
    assert 10 <= cols.min() and cols.max() <= 21  # around the centre column 16
    back = roi_grid_mask((256, 512), [Viewport(180, 0, 90)], margin=0)
    cols = np.where(back.any(0))[0]
    assert 0 in cols and 31 in cols and 16 not in cols  # wraps around the seam
    assert 0.08 < front.mean() < 0.3


def test_roi_covers_every_cell_the_viewport_samples():
    """Colour each grid cell uniquely; every colour in the rendered viewport must be ROI."""
    h, w = 16, 32
    ids = np.arange(h * w).reshape(h, w)
    erp = np.repeat(np.repeat(ids, 16, 0), 16, 1)
    vp = Viewport(40, 20, 100, (96, 96))
    import py360convert
    seen = py360convert.e2p(erp[..., None].astype(np.float64), vp.fov, vp.yaw, vp.pitch, vp.out_hw,
                            mode="nearest").astype(int)
    mask = roi_grid_mask((256, 512), [vp], margin=0)
    assert mask.reshape(-1)[np.unique(seen)].all()


def test_margin_and_several_viewports_grow_roi():
    a = roi_grid_mask((256, 512), [Viewport(0, 0, 60)], margin=0)
    b = roi_grid_mask((256, 512), [Viewport(0, 0, 60)], margin=1)
    c = roi_grid_mask((256, 512), [Viewport(0, 0, 60), Viewport(120, 0, 60)], margin=0)
    assert b.sum() > a.sum() and (b | a).sum() == b.sum()
    assert c.sum() > a.sum()


def test_eta_and_quality_maps_use_paper_values():
    m = np.zeros((2, 3), bool); m[0, 1] = True
    e = eta_map(m)
    assert e[0, 1] == pytest.approx(0.25) and e[1, 1] == pytest.approx(0.05)
    q = quality_map(m)
    assert q.shape == (32, 48) and q[0, 16] == pytest.approx(1.25) and q[0, 0] == pytest.approx(0.25)
    assert pixel_mask(m, (20, 40)).shape == (20, 40)


def test_viewport_render_and_ws_psnr():
    rng = np.random.default_rng(0)
    erp = (rng.random((128, 256, 3)) * 255).astype(np.uint8)
    v = render_viewport(erp, Viewport(10, 5, 90, (64, 64)))
    assert v.shape == (64, 64, 3) and v.dtype == np.uint8 and v.std() > 10
    # WS-PSNR down-weights the poles: noise only at the poles hurts WS-PSNR less than PSNR
    noisy = erp.copy(); noisy[:8] = 0; noisy[-8:] = 0
    assert ws_psnr(erp, noisy) > psnr(erp, noisy) + 3
    w = erp_weights(128, 256)
    assert w[64, 0] > 0.99 and w[0, 0] < 0.02


def test_head_trajectory_moves():
    t = head_trajectory(30)
    assert len(t) == 30 and len({round(v.yaw, 3) for v in t}) > 10
