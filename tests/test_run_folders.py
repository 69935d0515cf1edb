"""Run folders: every run writes into its own folder; the viewer never into another run's report."""
from __future__ import annotations

import argparse

from core.paths import new_run_folder


def test_every_run_gets_its_own_folder(tmp_path):
    a = new_run_folder("demo", root=tmp_path)
    b = new_run_folder("demo", root=tmp_path)
    assert a != b and a.is_dir() and b.is_dir() and a.parent == b.parent == tmp_path / "demo"
    assert (tmp_path / "demo" / "latest").resolve() == b.resolve()


def test_demo_without_out_writes_a_new_folder(tmp_path, monkeypatch):
    from tx.demo import add_arguments, config_from
    monkeypatch.chdir(tmp_path)
    p = argparse.ArgumentParser()
    add_arguments(p)
    first, second = config_from(p.parse_args([])), config_from(p.parse_args([]), kind="viewer")
    assert first.out.parent.resolve() == (tmp_path / "runs" / "demo").resolve() and first.out.is_dir()
    assert second.out.parent.name == "viewer" and first.out != second.out


def test_viewer_refuses_another_runs_report(tmp_path, monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    from gui.viewer import main as viewer_main
    from gui.viewer import parse_args
    (tmp_path / "summary.json").write_text("{}")
    assert viewer_main(parse_args(["--out", str(tmp_path)])) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]  # nothing written there
