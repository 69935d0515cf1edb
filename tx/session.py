"""A streaming session: the flowgraph, the receiver and the transmitter as three processes.

:class:`Session` starts them (each as its own ``ntscc-xr`` subcommand, exactly as a lab would
start them on three hosts), supervises them — a crashed flowgraph is restarted and the
restart is reported — and stops them cleanly. The headless demo and the viewer both drive a
Session.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

import zmq

from core import logs
from core.link.messages import Control, FlowgraphReply, FlowgraphRequest
from core.paths import REPO_ROOT
from core.session.options import SessionConfig, to_argv, validate

__all__ = ["Session", "SessionConfig"]  # SessionConfig: built from core.session.options' table


def _cli() -> list[str]:
    return [sys.executable, "-m", "core.cli"]


class Session:
    """Starts and supervises flowgraph, RX and TX for one streaming run."""

    def __init__(self, cfg: SessionConfig, log=None):
        validate(cfg)  # bad input: one line now, not a child's exit 2 after the flowgraph started
        self.cfg = cfg
        self.log = log or logging.getLogger(__name__).info
        self.procs: dict[str, subprocess.Popen] = {}
        self._log_start: dict[str, int] = {}  # where each part's current run begins in its log
        self.restarts = 0
        self.events: list[dict] = []
        cfg.out.mkdir(parents=True, exist_ok=True)
        self._ctx = zmq.Context.instance()
        self._control = None

    # ------------------------------------------------------------------ commands
    def flowgraph_command(self) -> list[str]:
        return _cli() + ["flowgraph"] + to_argv(self.cfg, "flowgraph") + list(self.cfg.extra_fg_args)

    def rx_command(self) -> list[str]:
        # Not settings but how a session runs its RX: it exits after 10 idle minutes (an RX left
        # behind does not run forever); the preload flag (a no-op now, the RX always loads the
        # LDPC tables) follows the classical chain as it always did.
        preload = "--classical-preload" if self.cfg.classical else "--no-classical-preload"
        return _cli() + ["rx"] + to_argv(self.cfg, "rx") + ["--idle-exit", "600", preload]

    def tx_command(self) -> list[str]:
        return _cli() + ["tx"] + to_argv(self.cfg, "tx")

    # ------------------------------------------------------------------ processes
    def _spawn(self, name: str, cmd: list[str]) -> subprocess.Popen:
        # a fresh log per session; a restart within the session appends (the crash stays readable)
        log_file = open(self.cfg.out / f"{name}.log", "ab" if name in self.procs else "wb")
        self._log_start[name] = log_file.tell()
        # the children import the same packages as this process, wherever it was started
        path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=path,
                   **{logs.ENV: logs.level_name(self.cfg.log_level)})
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
        self.procs[name] = proc
        return proc

    def start(self, with_tx: bool = True) -> None:
        self.log(f"starting flowgraph ({self.cfg.channel}, {self.cfg.snr_db:g} dB)")
        self._spawn("flowgraph", self.flowgraph_command())
        self.wait_flowgraph_ready()
        self._spawn("rx", self.rx_command())
        self.wait_ready("rx")
        if with_tx:
            self._spawn("tx", self.tx_command())

    def wait_ready(self, name: str, timeout: float = 90.0) -> None:
        """Wait for the ``READY`` line a part prints once it listens (the receiver: connected to
        the flowgraph, whose frames are dropped while no receiver is there)."""
        t0, log_path = time.time(), self.cfg.out / f"{name}.log"
        while time.time() - t0 < timeout:
            if self.procs[name].poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
                raise RuntimeError(f"the {name} exited at start (code {self.procs[name].returncode}):\n{tail}")
            if any(line.startswith(b"READY ") for line in self._log_since_spawn(name).splitlines()):
                return
            time.sleep(0.2)
        raise RuntimeError(f"the {name} did not report READY within {timeout:.0f} s; see {log_path}")

    def _log_since_spawn(self, name: str) -> bytes:
        with open(self.cfg.out / f"{name}.log", "rb") as f:
            f.seek(self._log_start.get(name, 0))
            return f.read()

    def wait_flowgraph_ready(self, timeout: float = 60.0) -> None:
        """Wait until the flowgraph answers on its control socket."""
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.procs["flowgraph"].poll() is not None:
                tail = (self.cfg.out / "flowgraph.log").read_text(errors="replace")[-2000:]
                code = self.procs["flowgraph"].returncode
                raise RuntimeError(f"the flowgraph exited at start (code {code}):\n{tail}")
            if self.flowgraph_control({"cmd": "ping"}, timeout_ms=500) is not None:
                return
            time.sleep(0.3)
        raise RuntimeError(f"the flowgraph did not answer within {timeout:.0f} s; see {self.cfg.out / 'flowgraph.log'}")

    def flowgraph_control(self, msg: dict, timeout_ms: int = 2000) -> dict | None:
        """Send one command to the flowgraph's control socket (:class:`FlowgraphRequest`; a bad
        one raises MessageError); its reply as a dict, None when it does not answer."""
        request = FlowgraphRequest.from_dict(msg).to_bytes()
        sock = self._ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.cfg.endpoints.fg_ctrl)
        try:
            sock.send(request)
            if sock.poll(timeout_ms):
                return FlowgraphReply.parse(sock.recv()).as_dict()
            return None
        except (zmq.ZMQError, ValueError):
            return None
        finally:
            sock.close()

    def set_channel(self, **params) -> dict | None:
        return self.flowgraph_control(params)

    def send_control(self, msg: dict | Control) -> None:
        """Viewer -> TX control (pose, ROI, budget, λ, editing steps; :class:`Control`); never blocks."""
        data = (msg if isinstance(msg, Control) else Control.from_dict(msg)).to_bytes()
        if self._control is None:
            self._control = self._ctx.socket(zmq.PUSH)
            self._control.setsockopt(zmq.SNDHWM, 8)
            self._control.setsockopt(zmq.LINGER, 0)
            self._control.connect(self.cfg.endpoints.control)
        try:
            self._control.send(data, zmq.NOBLOCK)
        except zmq.Again:
            pass

    def supervise(self) -> None:
        """Restart a flowgraph that died (the TX/RX reconnect by themselves)."""
        fg = self.procs.get("flowgraph")
        if fg is not None and fg.poll() is not None:
            self.restarts += 1
            t0 = time.time()
            self.log(f"flowgraph exited (code {fg.returncode}); restarting (restart #{self.restarts})")
            self._spawn("flowgraph", self.flowgraph_command())
            try:
                self.wait_flowgraph_ready()
                self.events.append({"event": "flowgraph_restart", "t": t0, "seconds": time.time() - t0})
                self.log(f"flowgraph back after {time.time() - t0:.1f} s")
            except RuntimeError as exc:
                self.log(str(exc))

    def restart(self, name: str) -> None:
        """Start one part again (after a crash or :meth:`kill`)."""
        cmd = {"flowgraph": self.flowgraph_command, "rx": self.rx_command, "tx": self.tx_command}[name]()
        self._spawn(name, cmd)
        if name == "flowgraph":
            self.wait_flowgraph_ready()
        elif name == "rx":
            self.wait_ready("rx")

    def kill(self, name: str) -> None:
        """Fault injection: kill one process hard."""
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def wait_tx(self, timeout: float) -> bool:
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.procs["tx"].poll() is not None:
                return True
            self.supervise()
            time.sleep(0.2)
        return False

    def wait_rx(self, timeout: float) -> bool:
        try:
            self.procs["rx"].wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def stop(self) -> None:
        for name in ("tx", "rx", "flowgraph"):
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        if self._control is not None:
            self._control.close(0)
            self._control = None
