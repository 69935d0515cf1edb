"""``ntscc-xr tx|rx|flowgraph --restart-on-failure``: a per-host supervisor.

On a real deployment each host runs one part (TX, radio, RX) and restarts it when it dies,
exactly what ``Restart=on-failure`` does in a systemd unit (see ``docs/deploy/``). This module
is the same thing without systemd: it runs the subcommand as a child (``python -m core.cli
<the same arguments, without the flag>``) in its own process group and

* restarts it whenever it exits with a failure (non-zero code, or killed by a signal) after
  ``--restart-delay`` seconds, doubling on quick successive failures (capped at 10 s, reset
  once a child has run for 30 s);
* kills what is left of the child's process group first (the flowgraph launcher's GNU Radio
  process, say), so a restarted part never finds its ports held by an orphan;
* stops for good when the child exits with 0 (a TX that sent all its frames) or when the
  supervisor itself gets SIGINT/SIGTERM (passed on to the child as SIGINT, SIGKILL after 10 s).

Each start and exit is one JSON line on stderr (``{"supervisor": "start", ...}``). Torch-free.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

FLAG = "--restart-on-failure"
DELAY_FLAG = "--restart-delay"
MAX_DELAY_S = 10.0
STABLE_S = 30.0


def child_argv(argv: list[str]) -> list[str]:
    """The subcommand's arguments without the supervisor's own options."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == FLAG:
            continue
        if a == DELAY_FLAG:
            skip = True
            continue
        if a.startswith(DELAY_FLAG + "="):
            continue
        out.append(a)
    return out


def _log(event: str, **kw) -> None:
    print(json.dumps({"supervisor": event, "t": time.time(), **kw}), file=sys.stderr, flush=True)


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def supervise(argv: list[str], delay: float = 1.0) -> int:
    """Run ``core.cli`` with ``argv`` until it succeeds or we are told to stop."""
    cmd = [sys.executable, "-m", "core.cli", *child_argv(argv)]
    stopping = False
    child: subprocess.Popen | None = None

    def on_signal(signum, _frame):
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            _kill_group(child.pid, signal.SIGINT)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    restarts, wait = 0, delay
    while True:
        t0 = time.monotonic()
        env = dict(os.environ, NTSCC_RESTARTS=str(restarts))
        child = subprocess.Popen(cmd, env=env, start_new_session=True)
        _log("start", pid=child.pid, restarts=restarts, argv=cmd[3:])
        kill_at = None
        while True:  # poll, so that a stop request is noticed even while we wait
            try:
                rc = child.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if stopping and kill_at is None:
                    kill_at = time.monotonic() + 10.0
                if kill_at is not None and time.monotonic() > kill_at:
                    _kill_group(child.pid, signal.SIGKILL)  # deaf to SIGINT for 10 s
        _kill_group(child.pid, signal.SIGKILL)  # orphans of the dead child (its own group)
        ran = time.monotonic() - t0
        _log("exit", pid=child.pid, rc=rc, ran_s=round(ran, 3))
        if stopping:
            return 0
        if rc == 0:
            return 0
        wait = delay if ran >= STABLE_S else (wait if restarts == 0 else min(MAX_DELAY_S, wait * 2))
        wait = max(wait, delay)
        restarts += 1
        deadline = time.monotonic() + wait
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.05)
        if stopping:
            return 0


def add_arguments(p) -> None:
    """The supervisor's options, added to the subcommands it can run (tx, rx, flowgraph)."""
    g = p.add_argument_group("supervision (per-host deployment)")
    g.add_argument(FLAG, action="store_true",
                   help="run under a supervisor that restarts this part whenever it fails "
                        "(exit code != 0 or killed); a clean exit or Ctrl-C/SIGTERM ends it")
    g.add_argument(DELAY_FLAG, type=float, default=1.0, metavar="SECONDS",
                   help="wait before a restart; doubles on quick successive failures, up to 10 s "
                        "(default: 1)")
