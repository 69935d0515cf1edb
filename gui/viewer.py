"""The live viewer: one PyQt5 + pyqtgraph window for the lab demo.

::

    ┌ controls ┐┌ source ERP + viewport outline + ROI ┬ NTSCC+ ERP ──────┬ classical ERP ────┐
    │ channel  ││ source viewport                      │ NTSCC+ viewport  │ classical viewport│
    │ TX       │├──────────────────────────────────────┴──────────────────┴───────────────────┤
    │ playback ││ quality | SNR vs CQI | CBR  /  MCS,QP | constellation | per-subcarrier SNR     │
    └──────────┘└ status: fps · encode/air/decode latency · link health ───────────────────────┘

Entry points: :func:`run_viewer` (``ntscc-xr demo`` with a display) and ``python -m
gui.viewer`` (the same, or ``--attach`` to a session started elsewhere).

:class:`ViewerWindow` takes the pipeline as arguments so tests can inject it: ``session`` is a
:class:`tx.session.Session` or any object with ``send_control(dict)`` and
``set_channel(**kw) -> dict | None`` (optionally ``start``, ``stop``, ``supervise``,
``flowgraph_control``, ``procs``, ``restarts``, ``cfg``); ``metrics_address`` is the RX's
metrics PUB endpoint. All blocking work runs in :class:`gui.stream.StreamWorker` (receive +
render) and :class:`gui.control.SessionWorker` (start / set_channel / supervise).
"""
from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # `python -m gui.viewer`: a live process, set before numpy loads its BLAS
    from core.machine import pace_blas_threads
    pace_blas_threads()

import numpy as np  # noqa: E402
from PyQt5.QtCore import QObject, Qt, QTimer, pyqtSignal
from PyQt5.QtGui import QColor, QPalette
from PyQt5.QtWidgets import QApplication, QGridLayout, QHBoxLayout, QLabel, QMainWindow, QSplitter, QWidget

from core.media.geometry import Viewport

from .control import SessionWorker
from .controls import ControlsPanel
from .latency import LoopProbe
from .panels import ErpPanel, ViewportPanel
from .plots import History, PlotsPanel
from .stream import StreamWorker

log = logging.getLogger(__name__)

POSE_SEND_MS = 50     # pose updates to the TX at most every 50 ms (coalesced)
HEALTH_MS = 500
MISSED_PINGS_DOWN = 2  # consecutive unanswered pings before the status says "not answering"
PLOT_MS = 50          # one plot group redrawn per tick, round robin (images: every frame)
PLOT_SCHEDULE = ("quality", "link", "snr", "cbr", "link", "mcs")  # each ≈3 Hz, link ≈7 Hz
KEY_STEP_DEG = 5.0
FOV_RANGE = (20.0, 150.0)


def fmt(v, spec: str = ".1f", unit: str = "") -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "–"
    return f"{v:{spec}}{unit}" if math.isfinite(v) else "–"


class LazyReference:
    """Frame id -> original ERP frame, from the session's own content (opened on first use,
    in the worker thread)."""

    def __init__(self, source, resolution: str):
        self.source, self.resolution = source, resolution
        self._ref = None
        self.error: str | None = None

    def __call__(self, frame_id: int):
        if self._ref is None and self.error is None:
            try:
                from core.media.source import parse_resolution

                from .reference import ReferenceFrames
                self._ref = ReferenceFrames(self.source, parse_resolution(self.resolution))
            except Exception as exc:
                self.error = str(exc)
        return self._ref.get(frame_id) if self._ref is not None else None


class ViewerWindow(QMainWindow):
    """The viewer window; see the module docstring for what ``session`` must provide."""

    def __init__(self, session, metrics_address: str | None = None, *, reference=None,
                 start_session: bool = False, own_session: bool = False, fov: float = 90.0,
                 stale_s: float = 3.0, viewport_px: int = 256, latency_probe_ms: int | None = None,
                 history: int = 300):
        super().__init__()
        self.session = session
        self.own_session = own_session
        self.stale_s = stale_s
        cfg = getattr(session, "cfg", None)
        if metrics_address is None:
            if cfg is None:
                raise ValueError("metrics_address is needed when the session has no cfg.endpoints")
            metrics_address = cfg.endpoints.metrics
        if reference is None and cfg is not None and hasattr(cfg, "resolution"):
            reference = LazyReference(getattr(cfg, "source", None), cfg.resolution)
        self.metrics_address = metrics_address
        self.reference = reference
        self.pose = Viewport(0.0, 0.0, fov)
        self.follow_tx = True          # follow the TX's scripted pose until the user looks around
        self.paused = False
        self._step_pending = False
        self._pose_dirty = False
        self._t_open = time.monotonic()
        self.fg_answering: bool | None = None
        self._ping_misses = 0  # consecutive unanswered pings of the flowgraph's control socket
        self.proc_state: dict[str, int | None] = {}
        self.start_error: str | None = None
        self.restarts = 0
        self.control_sent: list[dict] = []  # recent control messages to the TX
        self.channel_log: list[tuple[dict, dict | None]] = []  # recent (command, flowgraph reply)
        self.problems: list[str] = []

        self.setWindowTitle("ntscc-xr — NTSCC+ vs classical, live 360° link")
        self.history = History(history)
        self._build(cfg)

        self.worker = StreamWorker(metrics_address, reference, self.pose, viewport_px)
        self.worker.set_pose(self.pose, follow=True)
        self.worker.updated.connect(self._on_update)
        self._panel_sizes_changed()
        self.session_worker = SessionWorker(session, start=start_session)
        self.session_worker.channel_reply.connect(self._on_channel_reply)
        self.session_worker.processes.connect(self._on_processes)
        self.session_worker.restarted.connect(self._on_restart)
        self.session_worker.start_failed.connect(self._on_start_failed)
        self.session_worker.started_ok.connect(lambda: self.show_event_message("session started"))
        self.session_worker.fg_alive.connect(self._on_fg_alive)

        self._pose_timer = QTimer(self)
        self._pose_timer.setSingleShot(True)
        self._pose_timer.timeout.connect(self._send_pose)
        self._plots_dirty: set[str] = set()
        self._plot_tick = 0
        self._plot_timer = QTimer(self)
        self._plot_timer.timeout.connect(self._refresh_plots)
        self._plot_timer.start(PLOT_MS)
        self._health_timer = QTimer(self)
        self._health_timer.timeout.connect(self._check_health)
        self._health_timer.start(HEALTH_MS)
        self.probe = None
        if latency_probe_ms:
            self.probe = LoopProbe(latency_probe_ms, parent=self)
            self.probe.start()
        self._closed = False
        self.worker.start()
        self.session_worker.start()
        if start_session:
            self.show_event_message("starting flowgraph, receiver and transmitter…", 0)

    # ------------------------------------------------------------------ layout
    def _build(self, cfg) -> None:
        central = QWidget()
        outer = QHBoxLayout(central)
        outer.setContentsMargins(4, 4, 4, 4)
        self.controls = ControlsPanel(cfg)
        outer.addWidget(self.controls)
        split = QSplitter(Qt.Vertical)
        images = QWidget()
        grid = QGridLayout(images)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(4)
        self.erp_panels = {"source": ErpPanel("original (ERP)", interactive=True),
                           "learned": ErpPanel("NTSCC+ (learned)", interactive=True),
                           "classical": ErpPanel("classical codec + LDPC", interactive=True)}
        self.vp_panels = {"source": ViewportPanel("original viewport"),
                          "learned": ViewportPanel("NTSCC+ viewport"),
                          "classical": ViewportPanel("classical viewport")}
        for col, key in enumerate(("source", "learned", "classical")):
            grid.addWidget(self.erp_panels[key], 0, col)
            grid.addWidget(self.vp_panels[key], 1, col)
            self.erp_panels[key].look_at.connect(self._look_at)
            self.erp_panels[key].zoom.connect(self._zoom)
            self.vp_panels[key].turn.connect(self._turn)
            self.vp_panels[key].zoom.connect(self._zoom)
            self.erp_panels[key].set_overlay(self.pose, None)
            self.erp_panels[key].resized.connect(self._panel_sizes_changed)
            self.vp_panels[key].resized.connect(self._panel_sizes_changed)
        grid.setRowStretch(0, 1)
        grid.setRowStretch(1, 1)
        split.addWidget(images)
        self.plots = PlotsPanel(self.history)
        self.plots.set_budget(self.controls.cbr_spin.value())
        split.addWidget(self.plots)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([560, 380])
        self.splitter = split
        outer.addWidget(split, 1)
        self.setCentralWidget(central)

        sb = self.statusBar()
        self.fps_label = QLabel("– fps")
        self.latency_label = QLabel("latency –")
        self.link_label = QLabel("● starting")
        for w in (self.fps_label, self.latency_label, self.link_label):
            w.setContentsMargins(8, 0, 8, 0)
            sb.addPermanentWidget(w)
        self.controls.channel_changed.connect(self._on_channel_control)
        self.controls.tx_changed.connect(self._on_tx_control)
        self.controls.pause_toggled.connect(self.set_paused)
        self.controls.step_clicked.connect(self.step)
        self.resize(1600, 960)

    def _panel_sizes_changed(self) -> None:
        if hasattr(self, "worker"):
            sizes = {f"erp.{k}": p.image_size() for k, p in self.erp_panels.items()}
            sizes.update({f"vp.{k}": p.image_size() for k, p in self.vp_panels.items()})
            self.worker.set_sizes(sizes)

    # ------------------------------------------------------------------ pose
    def set_pose(self, yaw: float, pitch: float, fov: float | None = None) -> None:
        """The presenter looked somewhere: update overlays, re-render, tell the TX (coalesced)."""
        fov = self.pose.fov if fov is None else fov
        self.pose = Viewport(yaw, pitch, min(max(fov, FOV_RANGE[0]), FOV_RANGE[1])).clamped()
        self.follow_tx = False
        self.worker.set_pose(self.pose, follow=False)
        for p in self.erp_panels.values():
            p.set_overlay(self.pose, p.roi)
        for p in self.vp_panels.values():
            p.fov = self.pose.fov
        self._pose_dirty = True
        if not self._pose_timer.isActive():
            self._pose_timer.start(POSE_SEND_MS)

    def _look_at(self, yaw: float, pitch: float) -> None:
        self.set_pose(yaw, pitch)

    def _turn(self, dyaw: float, dpitch: float) -> None:
        self.set_pose(self.pose.yaw + dyaw, self.pose.pitch + dpitch)

    def _zoom(self, dfov: float) -> None:
        self.set_pose(self.pose.yaw, self.pose.pitch, self.pose.fov + dfov)

    def _send_pose(self) -> None:
        if self._pose_dirty:
            self._pose_dirty = False
            self.send_control({"yaw": round(self.pose.yaw, 2), "pitch": round(self.pose.pitch, 2),
                               "fov": round(self.pose.fov, 2)})

    def send_control(self, msg: dict) -> None:
        try:
            self.session.send_control(msg)
        except Exception as exc:  # never let a control hiccup take the window down
            self.show_event_message(f"could not send control to the transmitter: {exc}")
            return
        self.control_sent = (self.control_sent + [msg])[-20:]

    def keyPressEvent(self, e) -> None:
        step = 1.0 if e.modifiers() & Qt.ShiftModifier else KEY_STEP_DEG
        k = e.key()
        if k == Qt.Key_Left:
            self._turn(-step, 0.0)
        elif k == Qt.Key_Right:
            self._turn(step, 0.0)
        elif k == Qt.Key_Up:
            self._turn(0.0, step)
        elif k == Qt.Key_Down:
            self._turn(0.0, -step)
        elif k in (Qt.Key_Plus, Qt.Key_Equal):
            self._zoom(-step)
        elif k == Qt.Key_Minus:
            self._zoom(step)
        elif k == Qt.Key_Space:
            self.controls.pause_button.toggle()
        elif k == Qt.Key_N:
            if self.paused:
                self.step()
        elif k == Qt.Key_F:
            self.follow_tx = True
            self.worker.set_pose(self.pose, follow=True)
            self.show_event_message("following the transmitter's head trajectory", 3000)
        else:
            super().keyPressEvent(e)

    # ------------------------------------------------------------------ controls
    def _on_channel_control(self, params: dict) -> None:
        self.session_worker.set_channel(**params)

    def _on_tx_control(self, msg: dict) -> None:
        if "cbr" in msg:
            self.plots.set_budget(msg["cbr"])
        self.send_control(msg)

    def set_paused(self, paused: bool) -> None:
        if self.controls.pause_button.isChecked() != paused:
            self.controls.pause_button.setChecked(paused)  # re-enters through the signal
            return
        self.paused = paused
        self.worker.set_paused(paused)
        self.send_control({"pause": paused})
        self.show_event_message("paused: drag to look around the frozen frame, N steps"
                                if paused else "resumed", 3000)

    def step(self) -> None:
        self._step_pending = True
        self.worker.step()
        self.send_control({"pause": True, "step": 1})

    def _on_channel_reply(self, params: dict, reply) -> None:
        self.channel_log = (self.channel_log + [(params, reply)])[-20:]
        text = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
        if reply is None:
            self.fg_answering = False
            self.show_event_message(f"flowgraph did not answer ({text}): is it running?", 6000)
        elif reply.get("error") or reply.get("ok") is False:
            self.fg_answering = True
            self.show_event_message(f"flowgraph refused {text}: {reply.get('error', reply)}", 8000)
        else:
            self.fg_answering = True
            self.show_event_message(f"channel set: {text}", 3000)

    def _on_fg_alive(self, alive: bool) -> None:
        # Two missed pings in a row, not one: on a loaded machine a single 500 ms ping can time
        # out while the flowgraph is fine, and the status bar would flicker "not answering".
        self._ping_misses = 0 if alive else self._ping_misses + 1
        if alive or self._ping_misses >= MISSED_PINGS_DOWN:
            self.fg_answering = alive

    def _on_processes(self, state: dict) -> None:
        self.proc_state = state

    def _on_restart(self, n: int) -> None:
        self.restarts = n
        self.show_event_message(f"the flowgraph died and was restarted (restart #{n})", 8000)

    def _on_start_failed(self, text: str) -> None:
        self.start_error = text.strip().splitlines()[0] if text.strip() else "unknown error"
        self.show_event_message(f"session failed to start: {self.start_error}", 0)

    def show_event_message(self, text: str, timeout_ms: int = 5000) -> None:
        self.statusBar().showMessage(text, timeout_ms)

    # ------------------------------------------------------------------ updates
    def _on_update(self) -> None:
        state = self.worker.take_state()
        if state is not None:
            self._apply_state(state)
        if not self.paused or self._step_pending:
            self._step_pending = False
            rows = self.worker.take_rows()
            for row in rows:
                self.history.add(row)
            if rows:
                self._plots_dirty.update(("quality", "snr", "cbr", "mcs"))
                if self.problems:  # clear a stale "no metrics" at once, not at the next tick
                    self._check_health()

    def _refresh_plots(self) -> None:
        """One plot group per tick: short paints keep the event loop responsive."""
        group = PLOT_SCHEDULE[self._plot_tick % len(PLOT_SCHEDULE)]
        self._plot_tick += 1
        if group in self._plots_dirty:
            self._plots_dirty.discard(group)
            self.plots.refresh(group)

    def _apply_state(self, state) -> None:
        if self.follow_tx and state.pose != self.pose:
            self.pose = state.pose
            for p in self.vp_panels.values():
                p.fov = self.pose.fov
        for key, panel in self.erp_panels.items():
            panel.set_image(state.erp.get(key, panel.image))
            panel.set_overlay(self.pose, state.roi if key == "source" else None)
        for key, panel in self.vp_panels.items():
            panel.set_image(state.viewport.get(key, panel.image))
        learned, classical = state.frames.get("learned"), state.frames.get("classical")
        src = self.erp_panels["source"]
        if learned is not None or classical is not None:
            m = learned or classical
            src.set_text(f"frame {m.frame_id} · look yaw {self.pose.yaw:.0f}° pitch "
                         f"{self.pose.pitch:.0f}° fov {self.pose.fov:.0f}°"
                         + (" · ROI" if state.roi is not None else ""),
                         "" if "source" in state.erp else "original not available"
                         + (f": {self.reference.error}" if getattr(self.reference, "error", None) else ""))
        if learned is not None:
            r = learned.row
            self.erp_panels["learned"].set_text(
                f"PSNR {fmt(r.get('psnr'))} · WS {fmt(r.get('ws_psnr'))} dB · CBR {fmt(r.get('cbr'), '.3f')}"
                f" · λ {fmt(r.get('lam'), '.3f')}",
                "PHY frame lost: decoded from erasures" if learned.status == "lost" else "")
            self.vp_panels["learned"].set_text(f"viewport PSNR {fmt(r.get('viewport_psnr'))} dB"
                                               f" · ROI {fmt(r.get('roi_psnr'))} dB"
                                               + self._msssim_text("learned"))
        if classical is not None:
            r = classical.row
            banner = ""
            if state.classical_frozen_at is not None:
                what = "lost" if classical.status == "lost" else "decoding failed (cliff)"
                banner = (f"{what}: showing last good frame {state.classical_frozen_at}"
                          if state.classical_frozen_at >= 0 else f"{what}: no good frame yet")
            self.erp_panels["classical"].set_text(
                f"{r.get('codec') or 'codec'} · MCS {fmt(r.get('mcs'), '.0f')} · QP {fmt(r.get('qp'), '.0f')}"
                f" · PSNR {fmt(r.get('psnr'))} dB · CBR {fmt(r.get('cbr'), '.3f')}"
                + (f" · {r['policy']}" if r.get("policy") else ""), banner)
            self.vp_panels["classical"].set_text(f"viewport PSNR {fmt(r.get('viewport_psnr'))} dB"
                                                 + self._msssim_text("classical"), banner)
        self.plots.set_link(state.frames)
        self._plots_dirty.add("link")

    def _msssim_text(self, stream: str) -> str:
        """The latest viewport MS-SSIM (the RX samples it every few frames), or nothing."""
        v = self.history.array(stream, "viewport_msssim")
        v = v[np.isfinite(v)]
        return f" · MS-SSIM {v[-1]:.3f}" if v.size else ""

    # ------------------------------------------------------------------ health
    def health(self) -> list[str]:
        """What is wrong right now, in words (empty = streaming)."""
        out = []
        now = time.monotonic()
        if self.start_error:
            out.append(f"session failed to start: {self.start_error}")
        for name, code in sorted(self.proc_state.items()):
            if code is None:
                continue
            if name == "tx" and code == 0:
                out.append("transmitter finished its frames")
            elif name == "rx" and code == 0:
                out.append("receiver finished")
            elif name == "flowgraph":
                out.append(f"flowgraph exited (code {code}): restarting")
            else:
                out.append(f"{name} exited (code {code}); see {self._log_path(name)}")
        if self.fg_answering is False:
            out.append("flowgraph not answering its control socket")
        last = self.worker.counters.last_recv
        starting = not self.session_worker.running and not self.start_error
        if last == 0.0:
            if now - self._t_open > self.stale_s and not starting:
                out.append(f"no metrics from the receiver yet ({self.metrics_address})")
        elif now - last > self.stale_limit():
            out.append(f"no metrics for {now - last:.0f} s: receiver, transmitter or link down")
        return out

    def stale_limit(self) -> float:
        """Silence that counts as 'down': ``stale_s``, or 3 frame intervals when frames are
        slower than that (a CPU-only encoder may take seconds per frame)."""
        t = self.history.array("learned", "t_recv")[-8:]
        gaps = np.diff(t[np.isfinite(t)])
        return max(self.stale_s, 3.0 * float(np.median(gaps))) if gaps.size >= 2 else self.stale_s

    def _log_path(self, name: str) -> str:
        cfg = getattr(self.session, "cfg", None)
        return f"{cfg.out}/{name}.log" if cfg is not None and hasattr(cfg, "out") else f"the {name} log"

    def _check_health(self) -> None:
        self.problems = self.health()
        starting = not self.session_worker.running and not self.start_error
        if self.problems:
            self.link_label.setText("● " + " | ".join(self.problems))
            self.link_label.setStyleSheet("color: #ff5050; font-weight: bold;")
        elif starting:
            self.link_label.setText("● starting session…")
            self.link_label.setStyleSheet("color: #e0c040;")
        else:
            self.link_label.setText("● paused" if self.paused else "● streaming"
                                    + (f" (flowgraph restarts: {self.restarts})" if self.restarts else ""))
            self.link_label.setStyleSheet("color: #50e070; font-weight: bold;")
        h = self.history
        self.fps_label.setText(f"{fmt(h.fps('learned'))} fps NTSCC+ · {fmt(h.fps('classical'))} fps classical")
        lat = []
        for stream, name in (("learned", "NTSCC+"), ("classical", "classical")):
            vals = [h.recent(stream, k) for k in ("encode_ms", "air_ms", "decode_ms")]
            if any(math.isfinite(v) for v in vals):
                lat.append(f"{name} enc {fmt(vals[0], '.0f')} · air {fmt(vals[1], '.0f')} · "
                           f"dec {fmt(vals[2], '.0f')} ms")
        c = self.worker.counters
        if self.probe is not None and self.probe.samples:
            st = self.probe.stats()
            lat.append(f"UI lag p95 {st['p95_ms']:.1f} ms")
        self.latency_label.setText(" | ".join(lat) if lat else "latency –")
        self.latency_label.setToolTip(f"messages {c.received}, skipped {c.skipped}, "
                                      f"malformed {c.malformed}, renders {c.renders}")

    # ------------------------------------------------------------------ shutdown
    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._health_timer.stop()
        self._plot_timer.stop()
        if self.probe is not None:
            self.probe.stop()
        self.worker.stop()
        # No new session calls; stopping the processes also ends a start() or a flowgraph
        # restart that is waiting for the flowgraph; then stop whatever they spawned meanwhile.
        self.session_worker.request_stop()
        owned = self.own_session and hasattr(self.session, "stop")
        if owned:
            self.session.stop()
        self.session_worker.stop(timeout_ms=15000)
        if owned:
            self.session.stop()

    def closeEvent(self, e) -> None:
        self.shutdown()
        super().closeEvent(e)


# ---------------------------------------------------------------------- entry points
class _LogBridge(QObject):
    message = pyqtSignal(str)

    def log(self, text: str) -> None:
        logging.getLogger("tx.session").info(text)
        self.message.emit(text)


def apply_style(app: QApplication) -> None:
    """A dark theme (the demo runs in a dim lab) for widgets and plots."""
    import pyqtgraph as pg
    pg.setConfigOptions(background=(17, 17, 17), foreground=(210, 210, 210), antialias=False)
    app.setStyle("Fusion")
    pal = QPalette()
    for role, color in ((QPalette.Window, (35, 35, 38)), (QPalette.WindowText, (225, 225, 225)),
                        (QPalette.Base, (25, 25, 28)), (QPalette.AlternateBase, (45, 45, 48)),
                        (QPalette.Text, (225, 225, 225)), (QPalette.Button, (50, 50, 54)),
                        (QPalette.ButtonText, (225, 225, 225)), (QPalette.Highlight, (60, 120, 200)),
                        (QPalette.HighlightedText, (255, 255, 255)), (QPalette.ToolTipBase, (50, 50, 54)),
                        (QPalette.ToolTipText, (225, 225, 225))):
        pal.setColor(role, QColor(*color))
    app.setPalette(pal)


def run_viewer(cfg, attach: bool = False, screenshot: str | None = None,
               screenshot_frames: int = 20, quit_after: float | None = None) -> int:
    """Open the viewer for ``cfg`` (a :class:`tx.session.SessionConfig`): start flowgraph, RX
    and TX, show them live, stop them when the window closes. ``attach`` drives a session
    that is already running (started by another ``ntscc-xr`` or on other hosts).

    ``screenshot``: save a screenshot (the X root window when there is one) once
    ``screenshot_frames`` frames of every chain the session runs have been shown (on a fast CPU
    the learned chain can show 8 frames before the classical one shows its first; 4× as many
    learned frames end the wait), or at ``quit_after`` seconds;
    ``quit_after`` closes the window after that many seconds (for unattended checks).
    """
    from tx.session import Session
    app = QApplication.instance() or QApplication(sys.argv[:1])
    apply_style(app)
    bridge = _LogBridge()
    session = Session(cfg, log=bridge.log)
    win = ViewerWindow(session, start_session=not attach, own_session=not attach)
    bridge.message.connect(lambda text: win.show_event_message(text, 8000))
    _install_handlers(win)
    win.show()
    t0 = time.monotonic()
    shot = {"done": screenshot is None}

    streams = ("learned", "classical") if cfg.classical else ("learned",)

    def tick() -> None:
        n = min(len(win.history.cols[stream]["frame_id"]) for stream in streams)
        # a chain that never delivers (a failed classical encoder, say) must not hold the
        # screenshot forever: 4x the frames on the learned chain are enough waiting
        n_learned = len(win.history.cols["learned"]["frame_id"])
        late = quit_after is not None and time.monotonic() - t0 >= quit_after
        if not shot["done"] and (n >= screenshot_frames or n_learned >= 4 * screenshot_frames or late):
            shot["done"] = True
            save_screenshot(app, win, screenshot)
            log.info("screenshot saved to %s after %d frames", screenshot, n)
        if late or (screenshot is not None and shot["done"]):
            win.close()
    watch = QTimer()
    watch.timeout.connect(tick)
    if screenshot is not None or quit_after is not None:
        watch.start(500)
    try:
        return int(app.exec_())
    finally:
        watch.stop()
        win.shutdown()


def _install_handlers(win: ViewerWindow) -> None:
    """Ctrl-C / SIGTERM close the window (which stops the session's processes: they run in
    their own process groups and do not get the terminal's SIGINT), and an exception in a Qt
    slot is reported instead of aborting the process (PyQt5's default) with the link running."""
    import signal
    import traceback

    def close(*_):
        QTimer.singleShot(0, win.close)
    signal.signal(signal.SIGINT, close)
    signal.signal(signal.SIGTERM, close)

    def hook(kind, value, tb):
        traceback.print_exception(kind, value, tb)
        try:
            win.show_event_message(f"viewer error: {kind.__name__}: {value}", 10000)
        except Exception:
            pass
    sys.excepthook = hook


def save_screenshot(app: QApplication, win: QWidget, path) -> str:
    """Save what is on screen: the X server's root window under X11 (a real screenshot, e.g.
    under Xvfb), else the window's own rendering. Returns how it was taken."""
    from pathlib import Path
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if app.platformName() == "xcb":
        g = win.frameGeometry()
        app.primaryScreen().grabWindow(0, g.x(), g.y(), g.width(), g.height()).save(str(path))
        return "X server framebuffer (QScreen.grabWindow of the root window, cropped to the window)"
    win.grab().save(str(path))
    return f"QWidget.grab() on the {app.platformName()} platform"


def main(args: argparse.Namespace) -> int:
    """``ntscc-xr demo`` with a display (the CLI chooses), or ``python -m gui.viewer``."""
    from tx.demo import config_from
    if args.out and (Path(args.out) / "summary.json").exists():
        # a headless report lives there: its metrics.csv and logs are not ours to overwrite
        print(f"ntscc-xr demo: --out {args.out} holds the report of another run; give a new folder "
              "(or leave --out out: the viewer then writes into a new runs/viewer/<date-time>)", file=sys.stderr)
        return 2
    cfg = config_from(args, kind="viewer")
    if "--frames" not in " ".join(sys.argv):
        cfg.frames = 0  # a live window streams until it is closed
    cfg.classical_mode = "async"  # keep the learned stream live; classical skips when busy
    return run_viewer(cfg, attach=getattr(args, "attach", False),
                      screenshot=getattr(args, "screenshot", None),
                      screenshot_frames=getattr(args, "screenshot_frames", 20),
                      quit_after=getattr(args, "quit_after", None))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from tx.demo import add_arguments
    p = argparse.ArgumentParser(prog="python -m gui.viewer", description=__doc__.split("\n")[0])
    add_arguments(p)
    p.add_argument("--attach", action="store_true",
                   help="do not start processes: view a session that is already running")
    p.add_argument("--screenshot", default=None, help="save a screenshot once frames are shown, then close")
    p.add_argument("--screenshot-frames", type=int, default=20)
    p.add_argument("--quit-after", type=float, default=None, help="close the window after this many seconds")
    return p.parse_args(argv)


if __name__ == "__main__":
    from core.logs import setup as setup_logging
    setup_logging()
    sys.exit(main(parse_args()))
