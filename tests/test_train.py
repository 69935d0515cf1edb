"""`ntscc-xr train` end to end on the tiny config: all three stages, log + curves, resume."""
from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import pytest

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


def test_eta_range_widens_on_resume_and_is_recorded_for_inference(tmp_path):
    """--eta-range on a resumed run draws η in the new range and writes it into the exported
    config; a resume without it keeps the checkpoint's; evaluation sweeps follow it."""
    from core.experiments.evaluate import model_etas
    r = _train(tmp_path, "0,0,2")
    assert r.returncode == 0, r.stderr[-2000:]
    assert load_model(tmp_path / "w.safetensors").cfg.eta_range == (0.05, 0.4)
    r = subprocess.run(cli("train", "--config", "tiny", "--data", str(FIXTURES), "--out", str(tmp_path),
                           "--stage-steps", "0,0,12", "--crop", "64", "--batch", "2", "--ckpt-every", "2",
                           "--export", str(tmp_path / "w.safetensors"), "--eta-range", "0.5,0.7"),
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "resuming" in r.stderr, r.stderr[-2000:]
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))[2:]
    assert len(rows) == 10 and all(0.5 <= float(row["eta"]) <= 0.7 for row in rows)
    cfg = load_model(tmp_path / "w.safetensors").cfg
    assert cfg.eta_range == (0.5, 0.7)
    assert model_etas(cfg) == [0.5, 0.6, 0.7]
    r = _train(tmp_path, "0,0,14")  # no --eta-range: the checkpoint's range goes on
    assert r.returncode == 0, r.stderr[-2000:]
    assert load_model(tmp_path / "w.safetensors").cfg.eta_range == (0.5, 0.7)


def test_resuming_another_network_stops_before_training(tmp_path):
    r = _train(tmp_path, "0,0,2")
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run(cli("train", "--config", "small", "--data", str(FIXTURES), "--out", str(tmp_path),
                           "--stage-steps", "0,0,4"), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "another network" in r.stderr


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


def test_gpu_training_script_runs_on_cpu_from_a_numpy_pack(tmp_path):
    """tools/train_gpu.sh end to end with a few-second budget on the CPU: it packs nothing itself,
    reads a numpy pack (no Pillow needed), resumes from the shipped weights and writes the
    candidate and log to the folder it is given."""
    import os
    import sys
    pack = tmp_path / "pack.npz"
    r = subprocess.run([sys.executable, "tools/pack_train_data.py", "--data", str(FIXTURES),
                        "--out", str(pack), "--short-side", "64"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "gpu_out"
    env = dict(os.environ, PYTHON=sys.executable, DEVICE="cpu", DATA=str(pack), BATCH="2", CROP="64",
               RATE_SLOPE="0.5")
    r = subprocess.run(["bash", "tools/train_gpu.sh", str(out), "0.02", "--threads", "1"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert rows and int(rows[0]["step"]) > 24000  # the step count goes on from the shipped model's
    model = load_model(out / "candidate.safetensors")
    assert model.cfg.name == "small"
    g = model.rate_response.log_r_global.detach()
    assert float(g[0] - g[-1]) > 1.5  # RATE_SLOPE re-spread the flat shipped rate response (2.0 in log)


def test_lr_schedule_warms_up_then_drops_for_the_last_tenth():
    from core.experiments.train import lr_at
    assert lr_at(100, 1000, 1e-4, 1e-5, warmup_from=100, warmup=10) == 1e-4 / 10
    assert lr_at(110, 1000, 1e-4, 1e-5, warmup_from=100, warmup=10) == 1e-4
    assert lr_at(950, 1000, 1e-4, 1e-5) == 1e-5


def test_ema_tracks_the_weights_slowly():
    import torch

    from core.experiments.train import EMA
    net = torch.nn.Linear(2, 2)
    ema = EMA(net, 0.9)
    before = ema.state["weight"].clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net)
    assert torch.allclose(ema.state["weight"], before + 0.1)


def test_sigterm_checkpoints_before_stopping(tmp_path):
    """A ``kill`` (SIGTERM) mid-run lets the real training command finish its step, checkpoint
    and exit cleanly: no step since the last periodic checkpoint is lost."""
    import signal
    import time

    import torch
    proc = subprocess.Popen(cli("train", "--config", "tiny", "--data", str(FIXTURES), "--out", str(tmp_path),
                                "--stage-steps", "1,1,100000", "--crop", "64", "--batch", "2",
                                "--ckpt-every", "100000"),
                            cwd=REPO, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (tmp_path / "log.csv").exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(3)  # into the loop (its handler is set before the log's first row); no checkpoint yet
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "(SIGTERM)" in err
    step = torch.load(tmp_path / "last.pt", weights_only=True)["step"]
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert step >= 1 and int(rows[-1]["step"]) == step  # the only checkpoint is the signal's


def test_flat_crops_are_plain_colours_or_gentle_ramps():
    """``--flat-fraction``: the sampler swaps that share of crops for synthetic plain ones (a
    colour, or a ramp of at most 40 levels per channel), the rest stay photo crops."""
    from core.experiments.train import CropSampler
    flat = CropSampler(str(FIXTURES), 64, seed=0, flat_fraction=1.0).batch(16)
    assert flat.shape == (16, 3, 64, 64) and 0.0 <= float(flat.min()) and float(flat.max()) <= 1.0
    spread = (flat.amax(dim=(2, 3)) - flat.amin(dim=(2, 3))) * 255
    assert float(spread.max()) <= 40.5 and int((spread.amax(dim=1) < 0.5).sum()) >= 2  # some constant
    photos = CropSampler(str(FIXTURES), 64, seed=0, flat_fraction=0.0).batch(16)
    assert float(((photos.amax(dim=(2, 3)) - photos.amin(dim=(2, 3))) * 255).amax(dim=1).min()) > 40


def test_rate_response_tool_makes_the_knots_fall_with_lambda(tmp_path):
    """tools/rate_response.py --monotone on a checkpoint whose knot 0.36 sits above knot 0.18 (as
    step 37 600's did): that knot moves to its neighbours' log-λ interpolation, in the model and
    the EMA; the monotone knots stay as they were."""
    import sys

    import torch
    sys.path.insert(0, str(REPO / "tools"))
    import rate_response
    lambdas = [0.013, 0.0483, 0.18, 0.36, 0.72]
    drifted = [0.365, -0.318, -0.718, -0.635, -0.909]
    ckpt = {"config": {"lambdas": lambdas},
            "model": {rate_response.KEY: torch.tensor(drifted)}, "ema": {rate_response.KEY: torch.tensor(drifted)}}
    path = tmp_path / "last.pt"
    torch.save(ckpt, path)
    assert rate_response.main([str(path), "--monotone"]) == 0
    fixed = torch.load(path, weights_only=True)
    for name in ("model", "ema"):
        v = fixed[name][rate_response.KEY].tolist()
        assert all(a > b for a, b in zip(v, v[1:])), v
        assert v[3] == pytest.approx((-0.718 - 0.909) / 2, abs=1e-6)  # 0.36 is the geometric mean of its neighbours
        assert v[:3] + v[4:] == pytest.approx(drifted[:3] + drifted[4:])


def test_resume_keeps_this_runs_learning_rate_multiples_and_fused_adam():
    """A checkpoint's Adam state comes back, but the learning-rate multiple of r_global is the
    resumed run's (--rate-lr-mult 0 holds it), not the one the checkpoint was trained with, and so
    is the Adam implementation (fused)."""
    import torch

    from core.codec.config import get_config
    from core.codec.model import NTSCCPlus
    from core.experiments.train import param_groups, restore_optimizer
    model = NTSCCPlus(get_config("tiny"))
    before = torch.optim.Adam(param_groups(model, 1e-4, 30.0, rate_lr_mult=1.0), lr=1e-4)
    model.rate_response.log_r_global.grad = torch.ones_like(model.rate_response.log_r_global)
    before.step()
    resumed = torch.optim.Adam(param_groups(model, 1e-4, 30.0, rate_lr_mult=0.0), lr=1e-4, fused=True)
    restore_optimizer(resumed, before.state_dict())  # a checkpoint of an unfused Adam
    assert [g["lr_mult"] for g in resumed.param_groups] == [1.0, 30.0, 0.0]
    assert all(g["fused"] for g in resumed.param_groups)  # this run's implementation stays
    assert len(resumed.state) == len(before.state)  # the moments came back
    resumed.step()  # and the fused step runs on them


def test_mixed_precision_is_bf16_only_where_the_device_computes_it_natively():
    import torch

    from core.codec.fast import native_bf16
    from core.experiments.train import mixed_precision
    cpu = torch.device("cpu")
    assert mixed_precision("bf16", cpu) == (native_bf16(cpu), torch.bfloat16)
    assert mixed_precision("off", cpu)[0] is False
    assert mixed_precision("fp16", cpu)[0] is False  # fp16 needs CUDA's loss scaling


def test_resuming_a_checkpoint_from_before_the_jscc_bypass_keeps_its_ema_and_learns_the_bypass_fast():
    """The EMA of a checkpoint saved before the bypass existed resumes with the bypass at its
    initial zero (not a KeyError at the first update), and the bypass learns with the response
    scalars (it has to grow from zero beside trained weights)."""
    import torch

    from core.codec.config import get_config
    from core.codec.model import NTSCCPlus
    from core.experiments.train import EMA, param_groups
    model = NTSCCPlus(get_config("tiny"))
    saved = {k: v + 1.0 for k, v in model.state_dict().items() if ".bypass." not in k}
    ema = EMA(model, 0.9)
    ema.resume(saved)
    ema.update(model)
    assert torch.equal(ema.state["jscc.enc_a.bypass.weight"], torch.zeros_like(model.jscc.enc_a.bypass.weight))
    assert torch.allclose(ema.state["jscc.enc_a.inp.weight"], model.jscc.enc_a.inp.weight + 0.9)
    fast = param_groups(model, 1e-4, 30.0)[1]["params"]
    assert any(p is model.jscc.dec_na.bypass.weight for p in fast)


def test_a_run_may_extend_the_checkpoints_network_with_zero_initialised_parts_only():
    """`--config small_prior` resumes a `small` checkpoint (the prior's layers start at zero);
    the reverse, or another network, stops before any work."""
    import argparse

    from core.codec.config import get_config
    from core.experiments.train import training_config

    def run(config: str, trained: str):
        args = argparse.Namespace(config=config, out="runs/x", init_from=None, eta_range=None)
        return training_config(args, {"config": get_config(trained).to_dict()})

    cfg, source = run("small_prior", "small")
    assert cfg.jscc_prior and not source.jscc_prior
    for config, trained in (("small", "small_prior"), ("paper", "small")):
        with pytest.raises(SystemExit, match="another network"):
            run(config, trained)


def test_a_checkpoint_whose_groups_no_longer_fit_is_refused_so_the_run_starts_fresh_moments():
    """Parameters added since the checkpoint change a group's size: restore_optimizer raises
    ValueError, which the training loop turns into fresh Adam moments with a warm-up."""
    import torch

    from core.codec.config import get_config
    from core.codec.model import NTSCCPlus
    from core.experiments.train import param_groups, restore_optimizer
    model = NTSCCPlus(get_config("tiny"))
    fewer = [{**g, "params": [p for p in g["params"] if p is not model.jscc.enc_a.bypass.weight]}
             for g in param_groups(model, 1e-4, 30.0)]
    before = torch.optim.Adam(fewer, lr=1e-4)  # a checkpoint of the model before the bypass
    with pytest.raises(ValueError):
        restore_optimizer(torch.optim.Adam(param_groups(model, 1e-4, 30.0), lr=1e-4), before.state_dict())


def test_a_fresh_run_is_reproducible_from_its_seed(tmp_path):
    """The network's initial weights come from --seed too: two fresh runs log the same losses."""
    logs = []
    for name in ("a", "b"):
        r = _train(tmp_path / name, "1,1,1")
        assert r.returncode == 0, r.stderr[-2000:]
        logs.append([row[:8] for row in csv.reader(open(tmp_path / name / "log.csv"))])
    assert logs[0] == logs[1] and len(logs[0]) == 4
