"""Logging: ``--log-level`` before or after the subcommand, exported to the processes a
session starts (``$NTSCC_LOG_LEVEL``)."""
from __future__ import annotations

import logging
import os
import sys

import pytest

from core import logs
from core.cli import build_parser, selected_subcommand
from tx.session import Session, SessionConfig


@pytest.fixture
def restore_logging(monkeypatch):
    monkeypatch.delenv(logs.ENV, raising=False)  # set (and restored) by conftest's guard
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("argv", [["--log-level", "debug", "keys", "x"], ["keys", "x", "--log-level", "DEBUG"]])
def test_log_level_before_or_after_the_subcommand(argv):
    assert selected_subcommand(argv) == "keys"
    args = build_parser("keys").parse_args(argv)
    assert args.log_level == "debug" and args.command == "keys"


def test_log_level_default_and_rejects(capsys):
    assert build_parser("keys").parse_args(["keys", "x"]).log_level is None  # -> $NTSCC_LOG_LEVEL or info
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--log-level", "loud"])
    assert "--log-level" in capsys.readouterr().err


def test_setup_exports_the_level(restore_logging):
    assert logs.setup("warning") == "warning"
    assert os.environ[logs.ENV] == "warning" and logging.getLogger().level == logging.WARNING
    assert logs.setup(None) == "warning"  # children: the inherited variable
    assert logs.level_name("nonsense") == "info"


def test_session_children_get_the_level(tmp_path, restore_logging):
    cfg = SessionConfig(out=tmp_path, log_level="debug")
    code = f"import os; print(os.environ['{logs.ENV}'])"
    Session(cfg)._spawn("tx", [sys.executable, "-c", code]).wait(30)
    assert (tmp_path / "tx.log").read_text().split() == ["debug"]


def test_cli_sets_and_exports_the_level(tmp_path, restore_logging):
    from core.cli import main
    assert main(["--log-level", "error", "keys", str(tmp_path / "keys")]) == 0
    assert os.environ[logs.ENV] == "error" and logging.getLogger().level == logging.ERROR
