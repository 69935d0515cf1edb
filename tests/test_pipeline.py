"""Per-frame pipeline pieces: the TX's source prefetcher, the RX's one-pass metrics, the demo's
per-stage budget."""
from __future__ import annotations

import numpy as np
import pytest

from core.media.geometry import Viewport, pixel_mask, roi_grid_mask
from core.media.metrics import frame_metrics, masked_psnr, psnr, ws_psnr
from tx.app import FramePrefetcher
from tx.demo import BUDGET_STAGES, stage_budget


def test_frame_metrics_match_the_separate_metrics():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (64, 128, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-30, 30, a.shape), 0, 255).astype(np.uint8)
    roi = pixel_mask(roi_grid_mask((64, 128), [Viewport(40.0, 10.0, 90.0)]), (64, 128))
    m = frame_metrics(a, b, roi)
    assert m["psnr"] == pytest.approx(psnr(a, b), abs=1e-9)
    assert m["ws_psnr"] == pytest.approx(ws_psnr(a, b), abs=1e-9)
    assert m["roi_psnr"] == pytest.approx(masked_psnr(a, b, roi), abs=1e-9)
    assert np.isnan(frame_metrics(a, b)["roi_psnr"])
    assert frame_metrics(a, a.copy())["psnr"] == float("inf")


def test_prefetcher_keeps_order_and_reraises():
    def frames():
        for i in range(3):
            yield np.full((2, 2, 3), i, np.uint8)
        raise ValueError("bad source")

    pf = FramePrefetcher(frames(), depth=2)
    assert [int(pf.get()[0][0, 0, 0]) for _ in range(3)] == [0, 1, 2]
    for _ in range(2):  # the error stays
        with pytest.raises(ValueError, match="bad source"):
            pf.get()


def test_stage_budget_means_and_missing_stages():
    rows = [{"encode_ms": "10", "decode_ms": "20", "wait_ms": "", "metrics_ms": "4", "air_ms": "8"},
            {"encode_ms": "30", "decode_ms": "40", "wait_ms": "2", "metrics_ms": "6", "air_ms": "nan"}]
    tx = [{"capture_ms": 1.0, "read_ms": 5.0, "prep_ms": 2.0, "send_ms": 0.5}]
    b = stage_budget(rows, tx)
    assert list(b) == [name for name, _ in BUDGET_STAGES]
    assert b["encode"] == 20 and b["decode"] == 30 and b["rx_wait"] == 2 and b["air"] == 8
    assert b["tx_capture"] == 1 and b["tx_send"] == 0.5
    assert stage_budget([], [])["encode"] is None
