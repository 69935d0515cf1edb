"""Provenance of results: which model a result was made with (``core/codec/provenance.py``),
``tools/results_status.py`` finding the stale ones, and ``tools/promote_candidate.py`` refusing a
sweep of another model. Runs the real tools on the shipped checkpoint."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.codec.provenance import DEFAULT_WEIGHTS, markdown_line, parse_markdown_line, weights_identity

REPO = Path(__file__).resolve().parent.parent


def test_weights_identity_reads_the_shipped_checkpoints_step_and_hash():
    ident = weights_identity()
    assert ident["weights"] == "weights/ntscc_plus_small.safetensors"
    assert ident["config"] == "small" and isinstance(ident["step"], int) and ident["step"] > 0
    assert len(ident["sha256"]) == 16 and int(ident["sha256"], 16) >= 0
    assert weights_identity(DEFAULT_WEIGHTS) == ident


def test_markdown_line_round_trips_inside_a_table():
    ident = weights_identity()
    text = "| a | b |\n|---|---|\n| 1 | 2 |\n\n" + markdown_line(ident) + "\n"
    assert parse_markdown_line(text) == ident
    assert parse_markdown_line("| a | b |\n") is None


def _status(folder: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "tools" / "results_status.py"), "--results", str(folder),
                           *extra], capture_output=True, text=True, cwd=REPO)


def test_results_status_sorts_current_stale_record_and_unrecorded(tmp_path):
    current = weights_identity()
    other = {**current, "sha256": "ffffffffffffffff", "step": 1}
    files = {"fading.json": {"model": current}, "roi.json": {"model": other},
             "rd_learned_step1_kodak.json": {"model": other}, "ldpc.json": {"model": None},
             "latency.json": {"model": {**other, "depends_on": "config"}}, "old.json": {"curves": {}}}
    for name, data in files.items():
        (tmp_path / name).write_text(json.dumps(data))
    (tmp_path / "probe.md").write_text("| x |\n\n" + markdown_line(current) + "\n")
    run = _status(tmp_path, "--check", "--all")
    words = {line.split()[0]: line.split()[1] for line in run.stdout.splitlines()[2:] if line.strip()
             and not line[0].isdigit()}
    assert words == {"fading.json": "current", "roi.json": "stale", "rd_learned_step1_kodak.json": "record",
                     "ldpc.json": "no", "latency.json": "current", "old.json": "not", "probe.md": "current"}
    assert run.returncode == 1  # --check: roi.json is stale
    (tmp_path / "roi.json").write_text(json.dumps({"model": current}))
    assert _status(tmp_path, "--check").returncode == 0


def _promote_module():
    spec = importlib.util.spec_from_file_location("promote_candidate", REPO / "tools" / "promote_candidate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_promote_refuses_a_sweep_made_with_another_model(tmp_path):
    promote = _promote_module()
    front = [[0.01, 25.0], [0.02, 26.0]]
    sweep = tmp_path / "rd.json"
    sweep.write_text(json.dumps({"curves": {"compatible": front},
                                 "model": {**weights_identity(), "sha256": "ffffffffffffffff"}}))
    with pytest.raises(SystemExit, match="evaluate .* again or pass the right JSON"):
        promote.front_from_json(sweep, DEFAULT_WEIGHTS)
    sweep.write_text(json.dumps({"curves": {"compatible": front}, "model": weights_identity()}))
    assert promote.front_from_json(sweep, DEFAULT_WEIGHTS) == front


def test_promotion_score_reports_the_interpolated_front_beside_the_budget_rule():
    promote = _promote_module()
    front = [[0.01, 25.0], [0.02004, 26.6], [0.04, 27.4]]
    result = promote.score(front)
    assert result["psnr_at_budget"]["0.02"] == 25.0  # the point at 0.02004 does not fit 0.02
    assert result["psnr_interpolated"]["0.02"] == 26.594  # 25 + 1.6 · 0.01 / 0.01004
    assert result["psnr_interpolated"]["0.1"] is None  # beyond the front: no claim
    assert result["psnr_interpolated"]["0.04"] == 27.4


def test_model_history_lists_every_promotion_record_and_marks_the_shipped_model_shipped():
    spec = importlib.util.spec_from_file_location("model_history", REPO / "tools" / "model_history.py")
    history = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(history)
    text = history.markdown()
    records = sorted((REPO / "docs" / "results").glob("promote_step*.json"))
    assert records and all(f"]({p.name})" in text for p in records)
    shipped_step = f"{weights_identity()['step']:,}".replace(",", " ")
    row = next(line for line in text.splitlines() if line.startswith(f"| {shipped_step} |"))
    assert "| shipped |" in row
    # the committed table is the tool's output for the committed records
    assert (REPO / "docs" / "results" / "model_history.md").read_text() == text
