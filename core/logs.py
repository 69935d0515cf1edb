"""Logging for every ntscc-xr process: one format, one level, handed down to child processes.

``ntscc-xr --log-level debug demo`` sets the level of the command's own process and exports it
as ``NTSCC_LOG_LEVEL``; the processes a session starts (flowgraph, RX, TX: each an ``ntscc-xr``
subcommand) and the flowgraph's ``/usr/bin/python3`` inherit the variable and log at the same
level. Diagnostics go to stderr through :mod:`logging` (in a session: each process's
``<name>.log`` in the run folder); a command's actual output (a report, JSON) stays on stdout.

Stdlib only: the flowgraph process imports it.
"""
from __future__ import annotations

import logging
import os

ENV = "NTSCC_LOG_LEVEL"
LEVELS = ("debug", "info", "warning", "error", "critical")
DEFAULT = "info"
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DATE_FORMAT = "%H:%M:%S"


def level_name(level: str | None = None) -> str:
    """The level to use: ``level``, else ``$NTSCC_LOG_LEVEL``, else ``info`` (unknown names too)."""
    name = (level or os.environ.get(ENV) or DEFAULT).strip().lower()
    return name if name in LEVELS else DEFAULT


def setup(level: str | None = None, export: bool = True) -> str:
    """Configure the root logger (stderr, :data:`FORMAT`) at ``level`` (see :func:`level_name`);
    with ``export`` the level goes to ``$NTSCC_LOG_LEVEL`` for child processes. Returns it."""
    name = level_name(level)
    logging.basicConfig(level=name.upper(), format=FORMAT, datefmt=DATE_FORMAT, force=True)
    if export:
        os.environ[ENV] = name
    return name
