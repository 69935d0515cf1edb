"""GUI event-loop latency probe: a timer due every ``interval_ms``; how late does it fire?

A precise single-shot QTimer is re-armed on every firing; lateness = fire time - (arm time +
interval). Anything that blocks the GUI thread (decoding, rendering, a blocking socket call)
shows up directly as lateness, which is what a presenter perceives as a sticky window.
"""
from __future__ import annotations

import time

import numpy as np
from PyQt5.QtCore import QObject, Qt, QTimer


class LoopProbe(QObject):
    def __init__(self, interval_ms: int = 10, keep: int = 100_000, parent=None):
        super().__init__(parent)
        self.interval_ms = interval_ms
        self.samples: list[float] = []   # lateness in ms
        self.keep = keep
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setTimerType(Qt.PreciseTimer)
        self._timer.timeout.connect(self._fire)
        self._armed = 0.0

    def start(self) -> None:
        self._arm()

    def stop(self) -> None:
        self._timer.stop()

    def reset(self) -> None:
        self.samples.clear()

    def _arm(self) -> None:
        self._armed = time.perf_counter()
        self._timer.start(self.interval_ms)

    def _fire(self) -> None:
        late = 1e3 * (time.perf_counter() - self._armed) - self.interval_ms
        if len(self.samples) < self.keep:
            self.samples.append(max(0.0, late))
        self._arm()

    def stats(self) -> dict:
        s = np.asarray(self.samples, float)
        if s.size == 0:
            return {"n": 0}
        return {"n": int(s.size), "p50_ms": float(np.percentile(s, 50)),
                "p95_ms": float(np.percentile(s, 95)), "p99_ms": float(np.percentile(s, 99)),
                "max_ms": float(s.max()), "mean_ms": float(s.mean())}
