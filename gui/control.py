"""Session calls that may block, off the GUI thread.

``Session.start()`` waits for the flowgraph (up to a minute), ``set_channel`` waits up to 2 s
for the flowgraph's reply and ``supervise()`` restarts a dead flowgraph. :class:`SessionWorker`
runs all of them in one QThread, in order, and reports back with signals. Channel changes
are coalesced (a dragged slider yields one command with the newest values, not a backlog).
``send_control`` never blocks (a PUSH with NOBLOCK) and stays on the GUI thread.

The session may be a :class:`tx.session.Session` or any object with ``set_channel(**kw)``
and optionally ``start()``, ``supervise()``, ``procs`` (name -> Popen), ``restarts`` and
``cfg.out``.
"""
from __future__ import annotations

import queue
import threading
import time

from PyQt5.QtCore import QThread, pyqtSignal

SUPERVISE_S = 1.0
PING_S = 2.0
PING_TIMEOUT_MS = 500


class SessionWorker(QThread):
    started_ok = pyqtSignal()
    start_failed = pyqtSignal(str)
    channel_reply = pyqtSignal(dict, object)   # params sent, reply dict or None (no answer)
    processes = pyqtSignal(dict)               # name -> None (running) | exit code
    restarted = pyqtSignal(int)                # flowgraph restarts so far
    fg_alive = pyqtSignal(bool)                # the flowgraph answered a ping

    def __init__(self, session, start: bool = False, parent=None):
        super().__init__(parent)
        self.session = session
        self._start = start
        self._q: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self.running = not start  # an attached session is "running" from the start
        self._restarts = int(getattr(session, "restarts", 0) or 0)

    # ------------------------------------------------------------------ GUI-thread API
    def set_channel(self, **params) -> None:
        self._q.put(("channel", params))

    def request_stop(self) -> None:
        self._stop.set()
        self._q.put(("wake", None))

    def stop(self, timeout_ms: int = 3000) -> None:
        self.request_stop()
        self.wait(timeout_ms)

    # ------------------------------------------------------------------ thread
    def run(self) -> None:
        if self._start and not self._stop.is_set():
            try:
                self.session.start()
                self.running = True
                self.started_ok.emit()
            except Exception as exc:  # report any start failure in the window
                self.start_failed.emit(str(exc))
        next_supervise = time.monotonic()
        self._next_ping = time.monotonic()
        while not self._stop.is_set():
            try:
                kind, payload = self._q.get(timeout=max(0.0, next_supervise - time.monotonic()))
            except queue.Empty:
                kind, payload = None, None
            if self._stop.is_set():
                break
            if kind == "channel":
                self._channel(payload)
            if time.monotonic() >= next_supervise:
                self._supervise()
                next_supervise = time.monotonic() + SUPERVISE_S

    def _channel(self, params: dict) -> None:
        merged = dict(params)
        while True:  # coalesce everything already queued: newest value per key wins
            try:
                kind, payload = self._q.get_nowait()
            except queue.Empty:
                break
            if kind == "channel":
                merged.update(payload)
        try:
            reply = self.session.set_channel(**merged)
        except Exception as exc:
            reply = {"error": str(exc)}
        self.channel_reply.emit(merged, reply if isinstance(reply, dict) else None)

    def _supervise(self) -> None:
        if not self.running:
            return
        supervise = getattr(self.session, "supervise", None)
        if callable(supervise):
            try:
                supervise()
            except Exception:
                pass
        restarts = int(getattr(self.session, "restarts", 0) or 0)
        if restarts != self._restarts:
            self._restarts = restarts
            self.restarted.emit(restarts)
        ping = getattr(self.session, "flowgraph_control", None)
        if callable(ping) and time.monotonic() >= self._next_ping:
            self._next_ping = time.monotonic() + PING_S
            try:
                self.fg_alive.emit(ping({"cmd": "ping"}, timeout_ms=PING_TIMEOUT_MS) is not None)
            except Exception:
                self.fg_alive.emit(False)
        procs = getattr(self.session, "procs", None)
        if isinstance(procs, dict) and procs:
            self.processes.emit({name: p.poll() for name, p in list(procs.items())})
