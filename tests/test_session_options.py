"""The session options table (core.session.options) and everything derived from it: the tx/rx/demo
parsers, SessionConfig and the children's command lines, the viewer's controls, bad-input checks."""
from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import build_parser
from core.session.options import (
    OPTIONS,
    PARSED,
    PROCESSES,
    SessionConfig,
    SessionOptionError,
    config_values,
    options_for,
    to_argv,
    validate,
)
from flowgraphs.options import CHANNEL_CHOICES, add_flowgraph_arguments
from tests.helpers import REPO

#: flags the ntscc-xr command adds to every (supervised) subcommand: process-wide, not session settings
CLI_FLAGS = {"--log-level", "--restart-on-failure", "--restart-delay", "-h", "--help"}


def module_parser(process: str) -> argparse.ArgumentParser:
    """The parser a process's own module builds (what scripts and the viewer use)."""
    import rx.app
    import tx.app
    import tx.demo
    p = argparse.ArgumentParser()
    {"tx": tx.app, "rx": rx.app, "demo": tx.demo}[process].add_arguments(p)
    return p


def flags_of(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.option_strings[0]: a for a in parser._actions if a.option_strings}


def parse_child(process: str, argv: list[str]) -> argparse.Namespace:
    """``argv`` through the real parser of the child ``process`` (the flowgraph: its own table)."""
    if process == "flowgraph":
        p = argparse.ArgumentParser()
        add_flowgraph_arguments(p)
        return p.parse_args(argv)
    return build_parser(process).parse_args([process, *argv])


class TestTableToParsers:
    @pytest.mark.parametrize("process", PARSED)
    def test_parser_has_exactly_the_rows_of_its_process(self, process):
        flags = set(flags_of(module_parser(process))) - CLI_FLAGS
        assert flags == {o.option_string for o in options_for(process)}

    @pytest.mark.parametrize("process", PARSED)
    def test_defaults_and_dests_come_from_the_table(self, process):
        args = module_parser(process).parse_args([])
        for o in options_for(process):
            assert getattr(args, o.dest) == o.default, o.name

    def test_flags_and_defaults_scripts_rely_on(self):
        tx = module_parser("tx").parse_args([])
        assert (tx.resolution, tx.frames, tx.cbr, tx.lam, tx.cqi_init, tx.classical_bler_target) == \
            ("512x256", 60, 0.04, 0.18, 10.0, 0.01)
        assert (tx.trajectory, tx.classical_mode, tx.threads, tx.base_port) == ("scripted", "sync", 1, 5600)
        rx = module_parser("rx").parse_args(["--no-exit-on-end", "--metrics-append"])
        assert (rx.loss_timeout, rx.save_every, rx.msssim_every, rx.exit_on_end, rx.metrics_append) == \
            (1.5, 10, 5, False, True)
        demo = module_parser("demo").parse_args(["--snr", "3", "--doppler", "20", "--no-roi"])
        assert (demo.snr, demo.doppler, demo.roi, demo.timeout, demo.headless) == (3.0, 20.0, False, 1800, False)

    def test_choices_are_enforced_and_help_renders(self):
        with pytest.raises(SystemExit):
            module_parser("demo").parse_args(["--channel", "fog"])
        for process in PARSED:  # every help text formats (no stray %), link flags in their group
            assert "link endpoints (ZeroMQ):\n  --base-port" in module_parser(process).format_help()


class TestSessionConfigRoundTrip:
    def test_fields_and_defaults_come_from_the_table(self):
        session_rows = [o for o in OPTIONS.values() if o.session]
        names = [f.name for f in dataclasses.fields(SessionConfig)]
        assert names == [o.name for o in session_rows] + ["log_level", "extra_fg_args"]
        cfg = SessionConfig()
        assert all(getattr(cfg, o.name) == o.config_default for o in session_rows)
        assert cfg.out == Path("runs/demo") and cfg.cqi_init is None and cfg.endpoints.metrics.endswith(":5612")

    @pytest.mark.parametrize("process", ("tx", "rx", "flowgraph"))
    @pytest.mark.parametrize("kw", [
        {},
        dict(frames=7, resolution="256x128", source=str(REPO / "data" / "erp"), channel="trace", snr_db=3.5,
             trace="t.csv", cbr=0.02, lam=0.72, roi=False, edit_steps=3, classical=False, classical_olla=False,
             classical_bler_target=0.1, fps=2.0, device="cpu", base_port=6100, trajectory="static",
             cqi_init=2.0, classical_mode="async", drop_rate=0.3),
        dict(channel="rayleigh", doppler_hz=30.0),
    ])
    def test_config_to_argv_and_back_through_the_real_parser(self, process, kw, tmp_path):
        cfg = SessionConfig(out=tmp_path, **kw)
        back = config_values(parse_child(process, to_argv(cfg, process)))
        sent = {o.name for o in options_for(process) if o.session and (o.forward_if is None or o.forward_if(cfg))}
        assert set(back) >= sent
        for name in sent:
            want = getattr(cfg, name)
            want = cfg.snr_db if want is None and name == "cqi_init" else want  # the table's fallback
            assert back[name] == (str(want) if name == "out" else want), name

    def test_session_commands_are_built_from_the_table(self, tmp_path):
        from tx.session import Session
        cfg = SessionConfig(out=tmp_path, classical=False, extra_fg_args=["--seed", "3"])
        s = Session(cfg)
        assert s.tx_command()[3:] == ["tx", *to_argv(cfg, "tx")]
        assert s.rx_command()[3:] == ["rx", *to_argv(cfg, "rx"), "--idle-exit", "600", "--no-classical-preload"]
        assert s.flowgraph_command()[3:] == ["flowgraph", *to_argv(cfg, "flowgraph"), "--seed", "3"]

    def test_doppler_reaches_the_flowgraph_only_where_it_applies(self, tmp_path):
        # 0 or a non-rayleigh channel: the flowgraph keeps its own Doppler (50 Hz), as always
        for kw in (dict(channel="rayleigh", doppler_hz=0.0), dict(channel="awgn", doppler_hz=30.0)):
            assert parse_child("flowgraph", to_argv(SessionConfig(**kw), "flowgraph")).doppler == 50.0
        assert parse_child("flowgraph", to_argv(SessionConfig(channel="rayleigh", doppler_hz=30.0),
                                                "flowgraph")).doppler == 30.0

    def test_demo_command_line_becomes_the_session_and_reaches_the_tx(self, tmp_path):
        from tx.demo import config_from
        args = module_parser("demo").parse_args(["--out", str(tmp_path), "--snr", "7", "--cbr", "0.05",
                                                 "--no-classical", "--frames", "9"])
        cfg = config_from(args)
        assert (cfg.out, cfg.snr_db, cfg.cbr, cfg.classical, cfg.frames) == (tmp_path, 7.0, 0.05, False, 9)
        tx = parse_child("tx", to_argv(cfg, "tx"))
        assert (tx.cqi_init, tx.cbr, tx.classical, tx.frames) == (7.0, 0.05, False, 9)


class TestBadInputBeforeAnyProcess:
    @pytest.fixture
    def no_process(self, monkeypatch):
        def refuse(*_a, **_k):
            raise AssertionError("a process was started for bad input")
        monkeypatch.setattr(subprocess, "Popen", refuse)

    @pytest.mark.parametrize("kw, hint", [
        (dict(resolution="500x250"), "argument --resolution: resolution 500x250: width and height must be"),
        (dict(resolution="512"), "argument --resolution: resolution '512' is not WIDTHxHEIGHT"),
        (dict(source="/nonexistent"), "argument --source: content /nonexistent does not exist"),
        (dict(frames="five"), "argument --frames: invalid int value: 'five'"),
    ])
    def test_session_refuses_a_bad_config_in_one_line(self, kw, hint, tmp_path, no_process):
        from tx.session import Session
        out = tmp_path / "run"
        with pytest.raises(SessionOptionError) as err:
            Session(SessionConfig(out=out, **kw))
        assert hint in str(err.value) and "\n" not in str(err.value)
        assert not out.exists()  # nothing written either

    def test_command_line_and_config_say_the_same(self, capsys, no_process):
        from core.cli import main
        with pytest.raises(SystemExit):
            main(["demo", "--headless", "--resolution", "100x33"])
        cli_line = capsys.readouterr().err
        with pytest.raises(SessionOptionError) as err:
            validate(SessionConfig(resolution="100x33"))
        assert str(err.value) in cli_line

    def test_good_configs_pass(self):
        validate(SessionConfig())
        validate(SessionConfig(channel="rician", source=str(REPO / "data" / "erp")))  # flowgraph-only channel


class TestEveryOptionAccountedFor:
    def test_every_row_is_used_by_a_known_process(self):
        for o in OPTIONS.values():
            assert o.uses and o.uses <= set(PROCESSES), o.name
            assert o.uses & {"tx", "rx", "demo"}, f"{o.name}: no command line takes it"

    def test_rows_forwarded_to_the_flowgraph_match_its_own_table(self):
        fg = flags_of(_flowgraph_parser())
        for o in options_for("flowgraph"):
            assert o.session and o.option_string in fg, o.name
        assert set(OPTIONS["channel"].choices) <= set(CHANNEL_CHOICES)

    def test_viewer_controls_start_at_the_table_defaults(self, qt_application):
        from gui import controls
        panel = controls.ControlsPanel()
        assert panel.channel_combo.currentText() == OPTIONS["channel"].default
        assert panel.snr_spin.value() == OPTIONS["snr_db"].default
        assert (panel.snr_spin.minimum(), panel.snr_spin.maximum()) == OPTIONS["snr_db"].span
        assert (panel.cbr_spin.value(), panel.steps_spin.value()) == (OPTIONS["cbr"].default, 0)
        assert (panel.cbr_spin.minimum(), panel.cbr_spin.maximum()) == OPTIONS["cbr"].span
        assert abs(panel.lam - OPTIONS["lam"].default) < 0.01 and panel.roi_check.isChecked()
        assert controls.CHANNELS == CHANNEL_CHOICES and set(OPTIONS["channel"].choices) <= set(controls.CHANNELS)
        for o in options_for("viewer"):
            assert o.session and (o.span is not None or o.type is None), o.name

    def test_no_session_flag_is_declared_outside_the_table(self):
        # tx/rx/demo declare nothing themselves; the link flags are rows too
        for path in ("tx/app.py", "rx/app.py", "tx/demo.py", "core/link/endpoints.py"):
            assert ".add_argument(" not in (REPO / path).read_text(), path


def _flowgraph_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_flowgraph_arguments(p)
    return p


@pytest.mark.parametrize("argv, expected", [
    (["tx", "--help"], "1"), (["link-test", "--help"], "1"),  # live: share the cores
    (["eval", "--help"], "None"),  # offline jobs keep numpy's default thread pool
])
def test_live_subcommands_load_numpy_blas_with_one_thread(argv, expected):
    """OpenBLAS reads OPENBLAS_NUM_THREADS when numpy loads it: ntscc-xr must set it before the
    subcommand's module is imported (a spinning BLAS pool cost the live chain a quarter of its fps)."""
    code = ("import os, sys\n"
            "seen = []\n"
            "class Spy:  # records the variable at the moment numpy is first imported\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'numpy' and not seen:\n"
            "            seen.append(os.environ.get('OPENBLAS_NUM_THREADS'))\n"
            "sys.meta_path.insert(0, Spy())\n"
            "from core.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "import numpy\nprint('BLAS', seen[0])")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    r = subprocess.run([sys.executable, "-c", code, *argv], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.stdout.strip().splitlines()[-1] == f"BLAS {expected}", r.stderr[-1500:]


def test_a_users_own_blas_thread_setting_is_kept():
    from core.machine import pace_blas_threads
    env = {"OPENBLAS_NUM_THREADS": "4"}
    pace_blas_threads(env)
    assert env == {"OPENBLAS_NUM_THREADS": "4"}
    env = {}
    pace_blas_threads(env)
    assert env == {"OPENBLAS_NUM_THREADS": "1"}
