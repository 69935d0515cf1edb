"""Helpers the tests import (``from tests.helpers import ...``; pytest puts the repository
root on sys.path, see ``pythonpath`` in pyproject.toml): the repo root, free loopback ports,
subprocess helpers. Fixtures live in conftest.py."""
from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


#: Ports the tests hand out lie below Linux's default ephemeral range (32768-60999), so an
#: outgoing connection (the other xdist worker's, say) can never take one between the check
#: here and the process that binds it seconds later; each xdist worker draws from its own block.
_PORT_FLOOR, _PORT_CEIL = 20000, 32000


def _port_block() -> tuple[int, int]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    count = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1))
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    size = (_PORT_CEIL - _PORT_FLOOR) // count
    lo = _PORT_FLOOR + (index % count) * size
    return lo, lo + size


def _range_free(base: int, span: int) -> bool:
    for port in range(base, base + span):
        with socket.socket() as t:
            try:
                t.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_base_port(span: int = 14) -> int:
    """A base port whose base..base+span range is free on 127.0.0.1 (below the ephemeral
    range, in this xdist worker's own block)."""
    lo, hi = _port_block()
    for _ in range(200):
        base = random.randrange(lo, hi - span)
        if _range_free(base, span):
            return base
    raise RuntimeError(f"no free range of {span} ports in {lo}-{hi}")


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "core.cli", *args]


def spawn(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=REPO, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
