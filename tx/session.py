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
from dataclasses import dataclass, field
from pathlib import Path

import zmq

from core import logs
from core.link.endpoints import Endpoints
from core.link.messages import Control, FlowgraphReply, FlowgraphRequest
from core.paths import REPO_ROOT


@dataclass
class SessionConfig:
    out: Path = Path("runs/demo")
    frames: int = 60
    resolution: str = "512x256"
    source: str | None = None
    channel: str = "awgn"
    snr_db: float = 10.0
    doppler_hz: float = 0.0
    trace: str | None = None
    cbr: float = 0.04
    lam: float = 0.18
    roi: bool = True
    edit_steps: int = 0
    classical: bool = True
    classical_codec: str = "hevc"
    classical_olla: bool = True
    classical_bler_target: float | None = None  # None: the TX's default (1 %, no HARQ)
    fps: float = 0.0
    device: str = "auto"
    base_port: int = 5600
    trajectory: str = "scripted"
    cqi_init: float | None = None  # CQI the TX assumes before feedback (default: snr_db)
    classical_mode: str = "sync"
    drop_rate: float = 0.0
    log_level: str | None = None  # of the child processes (default: this process's, core.logs)
    extra_fg_args: list[str] = field(default_factory=list)

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints.from_base(self.base_port)


def _cli() -> list[str]:
    return [sys.executable, "-m", "core.cli"]


class Session:
    """Starts and supervises flowgraph, RX and TX for one streaming run."""

    def __init__(self, cfg: SessionConfig, log=None):
        self.cfg = cfg
        self.log = log or logging.getLogger(__name__).info
        self.procs: dict[str, subprocess.Popen] = {}
        self.restarts = 0
        self.events: list[dict] = []
        cfg.out.mkdir(parents=True, exist_ok=True)
        self._ctx = zmq.Context.instance()
        self._control = None

    # ------------------------------------------------------------------ commands
    def flowgraph_command(self) -> list[str]:
        c = self.cfg
        cmd = _cli() + ["flowgraph", "--base-port", str(c.base_port), "--channel", c.channel,
                        "--snr", str(c.snr_db)]
        if c.channel == "rayleigh" and c.doppler_hz:
            cmd += ["--doppler", str(c.doppler_hz)]
        if c.trace:
            cmd += ["--trace", c.trace]
        return cmd + list(c.extra_fg_args)

    def rx_command(self) -> list[str]:
        c = self.cfg
        return _cli() + ["rx", "--out", str(c.out), "--base-port", str(c.base_port),
                         "--device", c.device, "--idle-exit", "600",
                         "--classical-preload" if c.classical else "--no-classical-preload"]

    def tx_command(self) -> list[str]:
        c = self.cfg
        cmd = _cli() + ["tx", "--frames", str(c.frames), "--resolution", c.resolution,
                        "--cbr", str(c.cbr), "--lam", str(c.lam), "--edit-steps", str(c.edit_steps),
                        "--base-port", str(c.base_port), "--device", c.device,
                        "--fps", str(c.fps), "--classical-codec", c.classical_codec,
                        "--trajectory", c.trajectory, "--classical-mode", c.classical_mode,
                        "--cqi-init", str(c.snr_db if c.cqi_init is None else c.cqi_init)]
        if c.drop_rate:
            cmd += ["--drop-rate", str(c.drop_rate)]
        cmd.append("--roi" if c.roi else "--no-roi")
        cmd.append("--classical" if c.classical else "--no-classical")
        cmd.append("--classical-olla" if c.classical_olla else "--no-classical-olla")
        if c.classical_bler_target is not None:
            cmd += ["--classical-bler-target", str(c.classical_bler_target)]
        if c.source:
            cmd += ["--source", c.source]
        return cmd

    # ------------------------------------------------------------------ processes
    def _spawn(self, name: str, cmd: list[str]) -> subprocess.Popen:
        # a fresh log per session; a restart within the session appends (the crash stays readable)
        log_file = open(self.cfg.out / f"{name}.log", "ab" if name in self.procs else "wb")
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
        time.sleep(0.5)
        if with_tx:
            self._spawn("tx", self.tx_command())

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
