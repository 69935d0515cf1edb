"""Shared fixtures. Plain helpers (the repo root, subprocess helpers) are in helpers.py."""
from __future__ import annotations

import os

# Two xdist workers share two cores: one BLAS/OpenMP thread per test process (and per process a
# test starts, which inherits the environment). With torch's default of one thread per core, each
# worker's training and codec tests ran 2 threads beside the other worker's, and OpenMP's
# spin-waiting under that oversubscription made test_train.py 6x slower in the suite than alone.
# Set before anything imports torch; a value the caller set is kept.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import pytest  # noqa: E402

from core import logs  # noqa: E402
from tests.helpers import free_base_port  # noqa: E402


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


_QT_APPLICATION = None  # the process's one QApplication, alive until the interpreter exits


@pytest.fixture(scope="session")
def qt_application():
    """The one QApplication of the test process (offscreen unless a display is set).

    Why session-wide and held here: a QApplication owned by a module fixture or a test's local
    variable is destroyed when that goes out of scope, while widgets of that module may still be
    alive or be collected later; PyQt then crashes in the destructor (a segfault in a fixture
    teardown was seen once with two xdist workers). Created once, it is never destroyed before
    the process ends."""
    import os
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt5.QtWidgets import QApplication
    global _QT_APPLICATION
    if _QT_APPLICATION is None:
        _QT_APPLICATION = QApplication.instance() or QApplication(["ntscc-xr-tests"])
    return _QT_APPLICATION
