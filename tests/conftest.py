"""Shared fixtures. Plain helpers (the repo root, subprocess helpers) are in helpers.py."""
from __future__ import annotations

import pytest

from core import logs
from tests.helpers import free_base_port


@pytest.fixture(autouse=True)
def _keep_the_log_level(monkeypatch):
    """A test that runs ``ntscc-xr`` in process (``logs.setup``) exports its log level to
    ``$NTSCC_LOG_LEVEL``; without this, every process a later test starts would inherit it (a
    ``--log-level error`` test once hid the TX's INFO "sent" lines from the three-host analysis
    when the tests ran in another order)."""
    monkeypatch.setenv(logs.ENV, logs.DEFAULT)  # undone after the test, whatever it set


@pytest.fixture
def base_port() -> int:
    return free_base_port()
