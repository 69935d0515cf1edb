"""Off-GUI-thread work: receive the receiver's metrics stream and render what the window shows.

:class:`StreamWorker` is a QThread that

* subscribes to the RX metrics PUB socket and drains it completely on every wake-up, keeping
  only the newest message per stream for display (slow frames are skipped, never queued: the
  SUB socket's receive queue is capped at a few messages and the GUI is handed one state at a
  time) while every row goes to a bounded deque for the plots;
* renders the viewports (original, learned, classical) for the viewer's current pose
  (:class:`gui.render.ViewportRenderer`, identical to ``core.media.geometry.render_viewport``), the
  ROI tint and the QImages at the panels' pixel sizes, re-making only what changed, so the GUI
  thread only copies pixels.

The GUI thread talks to it through :meth:`set_pose`, :meth:`set_paused`, :meth:`step`,
:meth:`take_state` and :meth:`take_rows` (all lock-protected) and is woken by ``updated``,
which is emitted at most once until the GUI has taken the state.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import zmq
from PyQt5.QtCore import QThread, pyqtSignal
from PyQt5.QtGui import QImage

from core.link.messages import METRICS_TOPIC, MessageError, MetricsMessage
from core.media.geometry import Viewport, roi_grid_mask

from .overlay import roi_rgba
from .render import ViewportRenderer

STREAMS = ("learned", "classical")
RCVHWM = 4          # messages ZeroMQ may hold for us: older ones are dropped by the PUB side
DRAIN_MAX = 256     # messages handled per wake-up before rendering once


def to_qimage(arr: np.ndarray) -> QImage:
    """(H, W, 3|4) uint8 -> a QImage that owns its pixels."""
    arr = np.ascontiguousarray(arr, np.uint8)
    h, w, c = arr.shape
    fmt = QImage.Format_RGB888 if c == 3 else QImage.Format_RGBA8888
    return QImage(arr.data, w, h, c * w, fmt).copy()


@dataclass
class DisplayState:
    """Everything the window paints for one update (built in the worker thread)."""

    seq: int
    pose: Viewport
    frames: dict[str, MetricsMessage]               # message shown per stream
    erp: dict[str, QImage] = field(default_factory=dict)       # 'source' | 'learned' | 'classical'
    viewport: dict[str, QImage] = field(default_factory=dict)  # same keys
    roi: QImage | None = None                     # (H/16, W/16) RGBA tint of the TX's ROI
    classical_frozen_at: int | None = None        # cliff/lost: showing the last good frame
    render_ms: float = 0.0


@dataclass
class Counters:
    received: int = 0
    malformed: int = 0
    skipped: int = 0        # messages superseded before the GUI showed them
    renders: int = 0
    last_recv: float = 0.0  # time.monotonic() of the newest message (0 = never)


class StreamWorker(QThread):
    updated = pyqtSignal()

    def __init__(self, address: str, reference: Callable[[int], np.ndarray | None] | None = None,
                 pose: Viewport | None = None, viewport_px: int = 256, history: int = 4000,
                 poll_ms: int = 20, context: zmq.Context | None = None, parent=None):
        super().__init__(parent)
        self.address = address
        self.reference = reference
        self.viewport_px = viewport_px
        self.poll_ms = poll_ms
        self._ctx = context or zmq.Context.instance()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pose = pose or Viewport()
        self._follow = False
        self._pose_version = 1
        self._rendered_pose_version = 0
        self._paused = False
        self._step = False
        self._step_id: int | None = None
        self._latest: dict[str, MetricsMessage] = {}
        self._display: dict[str, MetricsMessage] = {}
        self._display_dirty = False
        self._unrendered: set[str] = set()
        self._last_good_classical: MetricsMessage | None = None
        self._rows: deque[dict] = deque(maxlen=history)
        self._state: DisplayState | None = None
        self._notified = False
        self._seq = 0
        self._ref_cache: tuple[int, np.ndarray | None] | None = None
        self._renderer = ViewportRenderer()
        self._images: dict[str, tuple] = {}   # key -> (identity, QImage): render what changed only
        self._sizes: dict[str, tuple[int, int]] = {}  # panel image sizes (w, h): paint 1:1
        self.counters = Counters()

    # ------------------------------------------------------------------ GUI-thread API
    def set_pose(self, pose: Viewport, follow: bool = False) -> None:
        """Render viewports at ``pose``; with ``follow`` use the TX's pose of each learned frame
        (its scripted head trajectory) and take only the field of view from ``pose``."""
        with self._lock:
            self._pose = pose
            self._follow = follow
            self._pose_version += 1

    def set_sizes(self, sizes: dict[str, tuple[int, int]]) -> None:
        """Pixel sizes the panels draw at ('erp.learned', 'vp.source', ...): images are made at
        that size here, so the GUI thread paints them without scaling."""
        with self._lock:
            if sizes != self._sizes:
                self._sizes = dict(sizes)
                self._pose_version += 1  # re-render at the new size

    def set_paused(self, paused: bool) -> None:
        with self._lock:
            self._paused = paused
            self._step = False
            if not paused:
                self._display.update(self._latest)
                self._display_dirty = True

    def step(self) -> None:
        """While paused: show the next learned frame (and its classical twin) to arrive."""
        with self._lock:
            shown = self._display.get("learned")
            newest = self._latest.get("learned")
            if newest is not None and (shown is None or newest.frame_id != shown.frame_id):
                self._show_step(newest)  # frames arrived while paused: show the newest one
            else:
                self._step = True

    def take_state(self) -> DisplayState | None:
        with self._lock:
            state, self._state = self._state, None
            self._notified = False
            return state

    def take_rows(self) -> list[dict]:
        with self._lock:
            rows = list(self._rows)
            self._rows.clear()
            return rows

    def stop(self, timeout_ms: int = 3000) -> None:
        self._stop.set()
        self.wait(timeout_ms)

    # ------------------------------------------------------------------ thread
    def open_socket(self) -> zmq.Socket:
        sock = self._ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.RCVHWM, RCVHWM)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SUBSCRIBE, METRICS_TOPIC)
        sock.connect(self.address)
        return sock

    def pump(self, sock: zmq.Socket, timeout_ms: int) -> None:
        """One iteration: wait up to ``timeout_ms``, drain everything, render once if needed.
        (The thread loops on it; the latency benchmark also calls it on the GUI thread to
        show what doing this work there would cost.)"""
        if sock.poll(timeout_ms):
            for _ in range(DRAIN_MAX):
                try:
                    parts = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._accept(parts)
        if self._needs_render():
            self._render()

    def run(self) -> None:
        sock = self.open_socket()
        try:
            while not self._stop.is_set():
                self.pump(sock, self.poll_ms)
        finally:
            sock.close(0)

    def _accept(self, parts: list[bytes]) -> None:
        now = time.monotonic()
        try:
            msg = MetricsMessage.parse(parts, now)
        except MessageError:
            with self._lock:
                self.counters.malformed += 1
            return
        stream = msg.stream if msg.stream in STREAMS else "learned"
        row = dict(msg.row, t_recv=now)
        with self._lock:
            c = self.counters
            c.received += 1
            msg.extra["seq"] = c.received  # identity for the render cache
            c.last_recv = now
            self._rows.append(row)
            self._latest[stream] = msg
            if not self._paused:
                if stream in self._unrendered:
                    c.skipped += 1  # the previous one was never drawn: superseded
                self._display[stream] = msg
                self._unrendered.add(stream)
                self._display_dirty = True
            elif self._step and stream == "learned":
                self._step = False
                self._show_step(msg)
            elif stream == "classical" and self._step_id is not None and msg.frame_id == self._step_id:
                self._display[stream] = msg
                self._display_dirty = True

    def _show_step(self, learned: MetricsMessage) -> None:
        """(lock held) display ``learned`` and the classical frame of the same id if here."""
        self._display["learned"] = learned
        self._step_id = learned.frame_id
        cl = self._latest.get("classical")
        if cl is not None and cl.frame_id == learned.frame_id:
            self._display["classical"] = cl
        self._display_dirty = True

    def _needs_render(self) -> bool:
        with self._lock:
            return bool(self._display) and (self._display_dirty
                                            or self._pose_version != self._rendered_pose_version)

    # ------------------------------------------------------------------ rendering
    def _reference_for(self, msg: MetricsMessage) -> np.ndarray | None:
        if msg.reference is not None:
            return msg.reference
        if self._ref_cache is not None and self._ref_cache[0] == msg.frame_id:
            return self._ref_cache[1]
        ref = None
        if self.reference is not None:
            try:
                ref = self.reference(msg.frame_id)
            except Exception:  # content unreadable: show the rest, never die
                ref = None
        if ref is not None and msg.image is not None and ref.shape != msg.image.shape:
            ref = None  # another resolution than the stream: do not show a wrong original
        self._ref_cache = (msg.frame_id, ref)
        return ref

    def _cached(self, key: str, ident: tuple, make) -> QImage:
        """(worker thread) the QImage for ``key``, rebuilt only when ``ident`` changed."""
        hit = self._images.get(key)
        if hit is not None and hit[0] == ident:
            return hit[1]
        img = make()
        self._images[key] = (ident, img)
        return img

    def _render(self) -> None:
        t0 = time.perf_counter()
        with self._lock:
            frames = dict(self._display)
            pose = self._pose
            follow = self._follow
            sizes = dict(self._sizes)
            pose_version = self._pose_version
            self._display_dirty = False
            self._unrendered.clear()
        learned = frames.get("learned")
        if follow and learned is not None:
            yaw, pitch = learned.value("yaw"), learned.value("pitch")
            if np.isfinite(yaw) and np.isfinite(pitch):
                pose = Viewport(yaw, pitch, pose.fov).clamped()
        state = DisplayState(seq=self._seq + 1, pose=pose, frames=frames)
        classical = frames.get("classical")
        if classical is not None and classical.status == "ok" and classical.image is not None:
            self._last_good_classical = classical
        shown_classical = classical
        if classical is not None and (classical.status != "ok" or classical.image is None):
            shown_classical = self._last_good_classical
            state.classical_frozen_at = (shown_classical.frame_id if shown_classical is not None else -1)
        ref_msg = learned or classical
        ref = self._reference_for(ref_msg) if ref_msg is not None else None
        def seq(m):
            return None if m is None else m.extra.get("seq")
        ref_ident = None if ref_msg is None else (
            "ref", ref_msg.frame_id, seq(ref_msg) if ref_msg.reference is not None else None)
        sources = {"source": (ref, ref_ident),
                   "learned": (learned.image if learned is not None else None, seq(learned)),
                   "classical": (shown_classical.image if shown_classical is not None else None,
                                 seq(shown_classical))}
        pose_key = (round(pose.yaw, 3), round(pose.pitch, 3), round(pose.fov, 3))
        for key, (img, ident) in sources.items():
            if img is None:
                continue
            size = sizes.get(f"erp.{key}")
            state.erp[key] = self._cached(f"erp.{key}", (ident, size),
                                          lambda: to_qimage(fit(img, size)))
            side = sizes.get(f"vp.{key}", (self.viewport_px, self.viewport_px))[0] or self.viewport_px
            vp = replace(pose, out_hw=(side, side))
            state.viewport[key] = self._cached(f"vp.{key}", (ident, pose_key, side), lambda: to_qimage(
                self._renderer.render(img, vp, frame_key=(key, ident))))
        if learned is not None and learned.row.get("roi") and learned.image is not None:
            fov = learned.value("fov")
            tx_pose = Viewport(learned.value("yaw"), learned.value("pitch"),
                               fov if np.isfinite(fov) else pose.fov)
            if np.isfinite(tx_pose.yaw) and np.isfinite(tx_pose.pitch):
                hw = learned.image.shape[:2]
                state.roi = self._cached("roi", (tx_pose.yaw, tx_pose.pitch, tx_pose.fov, hw), lambda: to_qimage(
                    roi_rgba(roi_grid_mask(hw, [tx_pose]))))
        state.render_ms = 1e3 * (time.perf_counter() - t0)
        with self._lock:
            self._seq = state.seq
            self._rendered_pose_version = pose_version
            self._state = state
            self.counters.renders += 1
            notify = not self._notified
            self._notified = True
        if notify:
            self.updated.emit()


def fit(img: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Resize (H, W, 3) to ``size`` = (width, height) for 1:1 painting (None: as is)."""
    if not size or size[0] <= 0 or size[1] <= 0 or (img.shape[1], img.shape[0]) == tuple(size):
        return img
    try:
        import cv2
        down = size[0] < img.shape[1]
        return cv2.resize(np.ascontiguousarray(img), tuple(size),
                          interpolation=cv2.INTER_AREA if down else cv2.INTER_LINEAR)
    except ImportError:
        from PIL import Image
        return np.asarray(Image.fromarray(img).resize(tuple(size), Image.BILINEAR))
