"""`ntscc-xr train` end to end on the tiny config: all three stages, log + curves, resume."""
from __future__ import annotations

import csv
import subprocess
from pathlib import Path

from core.codec.checkpoint import load_model
from tests.helpers import REPO, cli

FIXTURES = REPO / "tests" / "fixtures" / "train"


def _train(out: Path, steps: str) -> subprocess.CompletedProcess:
    return subprocess.run(cli("train", "--config", "tiny", "--data", str(FIXTURES), "--out", str(out),
                              "--stage-steps", steps, "--crop", "64", "--batch", "2",
                              "--ckpt-every", "2", "--export", str(out / "w.safetensors")),
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def test_staged_training_logs_and_resumes(tmp_path):
    r = _train(tmp_path, "2,2,2")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [row["stage"] for row in rows] == ["ntc"] * 2 + ["jscc"] * 2 + ["compat"] * 2
    assert (tmp_path / "curves.png").stat().st_size > 1000
    compat = rows[-2:]
    assert all(0.05 <= float(r["eta"]) <= 0.4 for r in compat)
    model = load_model(tmp_path / "w.safetensors")
    assert model.cfg.name == "tiny"
    r = _train(tmp_path, "2,2,4")  # longer schedule: resumes at step 6
    assert r.returncode == 0 and "resuming" in r.stderr
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [int(row["step"]) for row in rows] == list(range(1, 9))


def test_refuses_to_train_on_kodak(tmp_path):
    import pytest

    from core.experiments.train import CropSampler
    with pytest.raises(ValueError, match="Kodak"):
        CropSampler(str(tmp_path / "kodak"), 64, 0)


def test_trim_log_keeps_each_step_once_up_to_the_checkpoint(tmp_path):
    from core.experiments.train import trim_log
    log = tmp_path / "log.csv"
    log.write_text("step,stage\n1,ntc\n2,ntc\n3,ntc\n2,ntc\n4,ntc\n")  # an interrupted, overlapping run
    trim_log(log, 3)
    assert log.read_text().splitlines() == ["step,stage", "1,ntc", "2,ntc", "3,ntc"]
