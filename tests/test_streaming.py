"""End to end through the real GNU Radio flowgraph: TX, flowgraph and RX as processes."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from tx.demo import run_headless
from tx.session import SessionConfig


def _rows(out: Path) -> list[dict]:
    return list(csv.DictReader(open(out / "metrics.csv")))


def test_headless_stream_feedback_drives_tx(tmp_path, base_port):
    # paced at 2 fps: the TX reads ahead and encodes fast, so unpaced it can send all frames
    # before the first acknowledgement is back; 3 s of frames leave the loop time to close
    cfg = SessionConfig(out=tmp_path, frames=7, resolution="256x128", channel="awgn", snr_db=12.0,
                        cqi_init=2.0, cbr=0.04, base_port=base_port, device="cpu", fps=2.0)
    summary = run_headless(cfg, timeout=600)
    rows = _rows(tmp_path)
    learned = [r for r in rows if r["stream"] == "learned"]
    classical = [r for r in rows if r["stream"] == "classical"]
    assert len(learned) == 7 and len(classical) == 7
    assert [r["status"] for r in learned] == ["ok"] * 7, (tmp_path / "rx.log").read_text()[-3000:]
    # metrics are sane
    for r in learned:
        assert 5 < float(r["psnr"]) < 60 and 5 < float(r["viewport_psnr"]) < 60
        assert abs(float(r["cqi_db"]) - 12.0) < 1.5          # the receiver's CQI tracks the channel
        assert 0.005 < float(r["cbr"]) < 0.2
    # the feedback loop changes the TX's choices: frame 0 used the initial guess of 2 dB,
    # later frames the receiver's CQI; the classical MCS follows it upward
    used = [float(r["cqi_used"]) for r in sorted(learned, key=lambda r: int(r["frame_id"]))]
    assert used[0] == 2.0 and abs(used[-1] - 12.0) < 1.5
    mcs = [int(r["mcs"]) for r in sorted(classical, key=lambda r: int(r["frame_id"]))]
    assert mcs[-1] > mcs[0]
    assert all(r["olla_margin_db"] != "" for r in classical)  # OLLA on by default
    assert summary["streams"]["learned"]["frames"] == 7
    # both chains report their per-frame budget; the TX's capture/read/prep/send are the learned frame's
    learned_budget, classical_budget = (summary["streams"][s]["budget_ms"] for s in ("learned", "classical"))
    assert learned_budget["encode"] > 0 and learned_budget["tx_prep"] is not None
    assert classical_budget["encode"] > 0 and classical_budget["decode"] > 0
    assert classical_budget["tx_prep"] is None
    assert summary["model"]["weights"] == "weights/ntscc_plus_small.safetensors"  # the TX/RX model, recorded
    assert json.loads((tmp_path / "summary.json").read_text())["flowgraph_restarts"] == 0
    assert (tmp_path / "plots.png").exists()
