"""Viewer responsiveness benchmark and screenshot: GUI event-loop latency while streaming.

Opens the real :class:`gui.viewer.ViewerWindow` (attached to a :class:`tx.session.Session`
that is not started: pose and channel commands go out on the session's real sockets) and
feeds it from a stand-in link process (``python -m gui.replay``: real content, RX message
format, 512x256 by default) or from a live session (``--live``). A LoopProbe timer is due every
10 ms; how late it fires is the GUI event-loop latency. Measured twice: window open without
a stream (idle baseline) and while streaming; the presenter also "looks around" during the
stream (a pose change every 100 ms), as in the demo.

For comparison the same receive+render work is also run on the GUI thread (a QTimer
polling the socket), alternating with the threaded viewer so that load drift hits both.

    Xvfb :99 -screen 0 1600x960x24 &
    DISPLAY=:99 python -m gui.bench --json docs/results/gui_latency.json --figure docs/img/gui_latency.png
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def _free_base_port() -> int:
    import socket
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + 14 > 65000:
            continue
        try:
            for off in range(14):
                with socket.socket() as t:
                    t.bind(("127.0.0.1", base + off))
            return base
        except OSError:
            continue
    raise RuntimeError("no free port range")


def _spin(app, seconds: float, every=None, period_ms: int = 100) -> None:
    """Run the real Qt event loop for ``seconds`` (optionally calling ``every`` on a timer)."""
    from PyQt5.QtCore import QTimer
    timer = None
    if every is not None:
        timer = QTimer()
        timer.timeout.connect(every)
        timer.start(period_ms)
    QTimer.singleShot(int(seconds * 1000), app.quit)
    app.exec_()
    if timer is not None:
        timer.stop()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m gui.bench", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=10.0, help="length of one measurement phase")
    p.add_argument("--rounds", type=int, default=2,
                   help="phases per mode, alternated (threaded, inline, threaded, ...) so load drift hits both")
    p.add_argument("--no-inline", action="store_true",
                   help="skip the comparison with receive+render on the GUI thread")
    p.add_argument("--idle-seconds", type=float, default=5.0, help="idle baseline length")
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--first-frame-timeout", type=float, default=60.0,
                   help="after the warm-up, wait up to this long for the first frame before measuring")
    p.add_argument("--fps", type=float, default=10.0, help="stand-in stream rate (frames/s per chain)")
    p.add_argument("--resolution", default="512x256")
    p.add_argument("--source", default=None)
    p.add_argument("--size", default="1600x960", help="window size")
    p.add_argument("--no-look", action="store_true", help="do not move the viewport during the run")
    p.add_argument("--live", action="store_true",
                   help="measure against a running session at --base-port instead of the stand-in")
    p.add_argument("--base-port", type=int, default=None)
    p.add_argument("--json", default=None, help="write the statistics here")
    p.add_argument("--figure", default=None, help="write the latency figure (PNG) here")
    p.add_argument("--screenshot", default=None, help="save a screenshot of the running window here")
    return p


class ReceiveMode:
    """Moves the viewer's receive+render work between its worker thread ("threaded", as the
    viewer runs) and the GUI thread ("inline": a QTimer polling the same socket, for comparison)."""

    def __init__(self, worker) -> None:
        self.worker = worker
        self.sock = self.timer = None

    def set(self, mode: str) -> None:
        from PyQt5.QtCore import QTimer
        if mode == "inline" and self.sock is None:
            self.worker.stop()                      # the receive/render thread ends ...
            self.sock = self.worker.open_socket()
            self.timer = QTimer()                   # ... and the same work runs on the GUI thread
            self.timer.timeout.connect(lambda: self.worker.pump(self.sock, 0))
            self.timer.start(20)
        elif mode == "threaded" and self.sock is not None:
            self.timer.stop()
            self.sock.close(0)
            self.sock = self.timer = None
            self.worker._stop.clear()
            self.worker.start()


def _process_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def _latency_stats(samples) -> dict:
    s = np.asarray(samples, float)
    if not s.size:
        return {"n": 0}
    return {"n": int(s.size), "p50_ms": round(float(np.percentile(s, 50)), 2),
            "p95_ms": round(float(np.percentile(s, 95)), 2),
            "p99_ms": round(float(np.percentile(s, 99)), 2), "max_ms": round(float(s.max()), 2)}


def _wait_first_frame(app, worker, timeout_s: float) -> float | None:
    """Seconds until the first message arrived (None: none within ``timeout_s``). The stand-in
    (or live session) may take a while to start on a loaded machine: the phases are measured
    once the stream flows, not on a clock started before it."""
    t_wait = time.monotonic()
    while worker.counters.received == 0 and time.monotonic() - t_wait < timeout_s:
        _spin(app, 0.2)
    return round(time.monotonic() - t_wait, 2) if worker.counters.received else None


def _measure_phases(app, win, args, modes: list[str], samples: dict, loads: dict) -> dict:
    """Alternate the receive modes for ``args.rounds`` rounds of ``args.seconds`` each, adding
    each phase's timer lateness to ``samples`` and load to ``loads``; returns per mode the
    seconds measured, messages received and the viewer's CPU seconds."""
    worker, mode_switch = win.worker, ReceiveMode(win.worker)
    stream = {m: {"seconds": 0.0, "received": 0, "cpu_s": 0.0} for m in modes}
    steps = itertools.count(1)

    def look_around():
        k = next(steps)
        win.set_pose(60 * math.sin(k / 15), 15 * math.sin(k / 7))
    every = None if args.no_look else look_around
    for _ in range(args.rounds):
        for mode in modes:
            mode_switch.set(mode)
            _spin(app, 1.0, every)  # settle
            c0 = worker.counters.received
            win.probe.reset()
            t0, cpu0 = time.monotonic(), _process_cpu_s()
            _spin(app, args.seconds, every)
            stream[mode]["cpu_s"] += _process_cpu_s() - cpu0
            stream[mode]["seconds"] += time.monotonic() - t0
            stream[mode]["received"] += worker.counters.received - c0
            samples.setdefault(mode, []).extend(win.probe.samples)
            loads.setdefault(mode, []).append(os.getloadavg()[0])
    mode_switch.set("threaded")
    return stream


def _per_second(phase: dict, key: str) -> float:
    """A measured phase's ``key`` (messages, CPU seconds) per second of the phase."""
    return phase[key] / max(phase["seconds"], 1e-9)


def _result(args, argv, app, samples: dict, loads: dict, stream: dict, received: int,
            first_frame_s: float | None, shot) -> dict:
    return {
        "interval_ms": 10,
        "latency": {k: _latency_stats(v) for k, v in samples.items()},
        "loadavg_1m": {k: [round(x, 2) for x in v] for k, v in loads.items()},
        "stream": {"source": "live session" if args.live else "gui.replay stand-in (own process)",
                   "fps_per_chain": args.fps, "resolution": args.resolution,
                   "messages_per_s": {m: round(_per_second(v, "received"), 2) for m, v in stream.items()},
                   "messages_total": received, "first_frame_wait_s": first_frame_s,
                   "look_around_every_ms": None if args.no_look else 100},
        "viewer_cpu_percent": {m: round(100 * _per_second(v, "cpu_s"), 1) for m, v in stream.items()},
        "phases": {"idle_s": args.idle_seconds, "seconds_per_phase": args.seconds, "rounds": args.rounds},
        "window": args.size, "platform": app.platformName(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "screenshot": shot,
        "command": "python -m gui.bench " + " ".join(argv if argv is not None else sys.argv[1:]),
    }


def _start_stand_in(args, base: int) -> subprocess.Popen | None:
    """The stand-in link process (``gui.replay``), or None when measuring a live session."""
    if args.live:
        return None
    cmd = [sys.executable, "-m", "gui.replay", "--base-port", str(base), "--fps", str(args.fps),
           "--resolution", args.resolution] + (["--source", args.source] if args.source else [])
    return subprocess.Popen(cmd, cwd=REPO)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    from PyQt5.QtWidgets import QApplication

    from tx.session import Session, SessionConfig

    from .viewer import ViewerWindow, apply_style, save_screenshot

    base = args.base_port or _free_base_port()
    cfg = SessionConfig(out=Path(os.environ.get("TMPDIR", "/tmp")) / f"ntscc-gui-bench-{base}",
                        base_port=base, resolution=args.resolution, source=args.source)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    apply_style(app)
    win = ViewerWindow(Session(cfg), latency_probe_ms=10)
    w, h = (int(v) for v in args.size.split("x"))
    win.resize(w, h)
    win.show()
    _spin(app, 1.0)

    win.probe.reset()
    _spin(app, args.idle_seconds)
    samples, loads = {"idle": list(win.probe.samples)}, {"idle": [os.getloadavg()[0]]}
    modes = ["threaded"] if args.no_inline else ["threaded", "inline"]
    link = _start_stand_in(args, base)
    try:
        _spin(app, args.warmup)
        first_frame_s = _wait_first_frame(app, win.worker, args.first_frame_timeout)
        stream = _measure_phases(app, win, args, modes, samples, loads)
        shot = save_screenshot(app, win, args.screenshot) if args.screenshot else None
    finally:
        if link is not None:
            link.terminate()
            link.wait(10)
    result = _result(args, argv, app, samples, loads, stream, win.worker.counters.received,
                     first_frame_s, shot)
    win.close()
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if args.figure:
        plot(samples, result, Path(args.figure))
    return 0


LABELS = {"idle": "window open, no stream",
          "threaded": "streaming, receive+render in worker thread (viewer)",
          "inline": "streaming, receive+render on GUI thread (for comparison)"}


def plot(samples: dict, result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 2, figsize=(11, 3.8))
    for key, s in samples.items():
        s = np.sort(np.asarray(s, float))
        if s.size:
            ax[0].plot(s, np.arange(1, s.size + 1) / s.size,
                       label=f"{LABELS.get(key, key)}: p50 {np.percentile(s, 50):.1f}, "
                             f"p95 {np.percentile(s, 95):.1f} ms")
    ax[0].set_xscale("symlog", linthresh=1)
    ax[0].set_xlabel("lateness of a 10 ms timer (ms)")
    ax[0].set_ylabel("CDF")
    ax[0].grid(alpha=0.3)
    ax[0].legend(fontsize=7, loc="lower right")
    names = [k for k in samples if samples[k]]
    ax[1].boxplot([samples[k] for k in names], whis=(5, 95), showfliers=False)
    ax[1].set_xticks(range(1, len(names) + 1), names)
    ax[1].set_ylabel("lateness (ms), whiskers p5-p95")
    st = result["stream"]
    loads = [x for v in result["loadavg_1m"].values() for x in v]
    ax[1].set_title(f"{st['resolution']} ERP, {st['fps_per_chain']:g} fps x 2 chains, window "
                    f"{result['window']} ({result['platform']}), {result['machine']['cpus']} CPUs, "
                    f"load {min(loads):.1f}-{max(loads):.1f}", fontsize=8)
    ax[1].grid(alpha=0.3, axis="y")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
