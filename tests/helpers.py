"""Helpers the tests import (``from tests.helpers import ...``; pytest puts the repository
root on sys.path, see ``pythonpath`` in pyproject.toml): the repo root, free loopback ports,
subprocess helpers. Fixtures live in conftest.py."""
from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_base_port(span: int = 14) -> int:
    """A base port whose base..base+span range is free on 127.0.0.1."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + span > 65000:
            continue
        ok = True
        for off in range(span):
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", base + off))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port range")


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "core.cli", *args]


def spawn(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=REPO, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
