"""Rolling per-frame plots (pyqtgraph): quality, SNR vs CQI, CBR, classical MCS/QP, the
constellation of the received symbols and the per-subcarrier SNR.

:class:`History` keeps the last ``window`` rows per stream (numpy-free appends, bounded);
:class:`PlotsPanel` redraws from it, one plot group per call if asked.
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QGridLayout, QWidget

from core.link.messages import num

STREAMS = ("learned", "classical")
KEYS = ("frame_id", "psnr", "ws_psnr", "viewport_psnr", "snr_true_db", "cqi_db", "cbr", "mcs",
        "qp", "olla_margin_db", "t_recv", "encode_ms", "air_ms", "decode_ms", "viewport_msssim")
COLORS = {"psnr": (80, 160, 255), "ws_psnr": (255, 170, 40), "viewport_psnr": (90, 220, 120)}
STREAM_COLOR = {"learned": (80, 170, 255), "classical": (255, 140, 50)}
LABEL = {"learned": "NTSCC+", "classical": "classical"}


class History:
    """Bounded per-stream columns of the metric rows."""

    def __init__(self, window: int = 300):
        self.window = window
        self.cols = {s: {k: deque(maxlen=window) for k in KEYS} for s in STREAMS}
        self.total = 0

    def add(self, row: dict) -> None:
        stream = row.get("stream", "learned")
        if stream not in self.cols:
            return
        cols = self.cols[stream]
        fid = num(row.get("frame_id"))
        if cols["frame_id"] and fid < cols["frame_id"][-1] - 10:
            for d in cols.values():  # the stream restarted from frame 0: a new run
                d.clear()
        for k in KEYS:
            cols[k].append(num(row.get(k)))
        self.total += 1

    def array(self, stream: str, key: str) -> np.ndarray:
        return np.fromiter(self.cols[stream][key], float, len(self.cols[stream][key]))

    def recent(self, stream: str, key: str, n: int = 10) -> float:
        """Mean of the last n finite values (NaN if none)."""
        v = self.array(stream, key)[-n:]
        v = v[np.isfinite(v)]
        return float(v.mean()) if v.size else float("nan")

    def fps(self, stream: str = "learned", span_s: float = 5.0) -> float:
        t = self.array(stream, "t_recv")
        if t.size < 2:
            return float("nan")
        t = t[t >= t[-1] - span_s]
        return (t.size - 1) / (t[-1] - t[0]) if t.size > 1 and t[-1] > t[0] else float("nan")


X_STEP_MIN = 5  # the frame axis moves in steps of >= 5 frames (about a tenth of its span)


def _nice_step(span: float) -> float:
    """A round tick-like step about a tenth of ``span`` (1, 2, 5 x 10^k)."""
    span = max(span, 1e-6)
    k = 10 ** math.floor(math.log10(span / 10))
    return next(m * k for m in (1, 2, 5, 10) if m * k >= span / 10)


def _pen(color, style=Qt.SolidLine, width=1):
    return pg.mkPen(color=color, width=width, style=style)


class PlotsPanel(QWidget):
    """Six small plot widgets. Each is its own QGraphicsView, so the window can redraw them
    one at a time (:meth:`refresh` with a group name) and no single paint is long enough to
    make the GUI stutter."""

    GROUPS = ("quality", "snr", "cbr", "mcs", "link")

    def __init__(self, history: History, parent=None):
        super().__init__(parent)
        self.history = history
        self.curves: dict[str, pg.GraphicsObject] = {}
        self.widgets: dict[str, pg.PlotWidget] = {}
        self.link_frames: dict = {}
        self._ranges: dict[str, tuple] = {}
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(2)
        self.setMinimumHeight(300)

        q = self._plot("quality", 0, 0, "quality: solid NTSCC+, dashed classical", "dB")
        for stream in STREAMS:
            style = Qt.SolidLine if stream == "learned" else Qt.DashLine
            for key, name in (("psnr", "PSNR"), ("ws_psnr", "WS-PSNR"), ("viewport_psnr", "viewport")):
                self.curves[f"{stream}.{key}"] = q.plot(
                    pen=_pen(COLORS[key], style), name=name if stream == "learned" else None,
                    connect="finite")
            # sampled every few frames by the RX: markers, in dB (-10·log10(1 - MS-SSIM))
            self.curves[f"{stream}.msssim"] = q.plot(
                pen=None, symbol="o" if stream == "learned" else "s", symbolSize=5,
                symbolBrush=(230, 90, 200), symbolPen=None,
                name="viewport MS-SSIM (dB)" if stream == "learned" else None)
        s = self._plot("snr", 0, 1, "channel SNR (set) vs CQI (estimated)", "dB")
        self.curves["snr_true"] = s.plot(pen=_pen((200, 200, 200)), name="true SNR", connect="finite")
        self.curves["cqi"] = s.plot(pen=None, symbol="o", symbolSize=4, symbolBrush=(255, 220, 60),
                                    symbolPen=None, name="CQI")
        c = self._plot("cbr", 0, 2, "CBR per frame", "")
        for stream in STREAMS:
            self.curves[f"{stream}.cbr"] = c.plot(pen=_pen(STREAM_COLOR[stream]), name=LABEL[stream],
                                                  connect="finite")
        self.budget_line = pg.InfiniteLine(angle=0, pen=_pen((220, 220, 220), Qt.DotLine))
        c.addItem(self.budget_line)
        m = self._plot("mcs", 1, 0, "classical MCS index / QP / OLLA back-off (dB)", "")
        self.curves["mcs"] = m.plot(pen=_pen((255, 140, 50)), name="MCS", connect="finite")
        self.curves["qp"] = m.plot(pen=_pen((190, 120, 255)), name="QP", connect="finite")
        self.curves["olla"] = m.plot(pen=_pen((120, 220, 120), Qt.DashLine), name="OLLA dB",
                                     connect="finite")
        k = self._plot("const", 1, 1, "received constellation (equalised)", "")
        k.setRange(xRange=(-1.8, 1.8), yRange=(-1.8, 1.8), padding=0)
        k.disableAutoRange()
        k.setLabel("bottom", "I")
        k.setLabel("left", "Q")
        for stream in STREAMS:
            self.curves[f"{stream}.const"] = pg.ScatterPlotItem(
                size=3, pen=None, brush=pg.mkBrush(*STREAM_COLOR[stream], 150), name=LABEL[stream])
            k.addItem(self.curves[f"{stream}.const"])
        sc = self._plot("sc", 1, 2, "per-subcarrier SNR (latest frame)", "dB")
        sc.setLabel("bottom", "subcarrier")
        for stream in STREAMS:
            self.curves[f"{stream}.sc"] = sc.plot(pen=_pen(STREAM_COLOR[stream]), name=LABEL[stream])
        self.plots = {name: w.getPlotItem() for name, w in self.widgets.items()}
        for p in self.plots.values():
            p.disableAutoRange()

    def _plot(self, name: str, row: int, col: int, title: str, unit: str) -> pg.PlotItem:
        w = pg.PlotWidget(title=title)
        w.setMinimumSize(120, 100)
        self.widgets[name] = w
        self.layout().addWidget(w, row, col)
        p = w.getPlotItem()
        p.showGrid(x=True, y=True, alpha=0.2)
        p.addLegend(offset=(-5, 5), labelTextSize="8pt", brush=(17, 17, 17, 170))
        p.setMenuEnabled(False)
        if unit:
            p.setLabel("left", unit)
        p.setLabel("bottom", "frame")
        return p

    def _fit(self, name: str, xs: list, ys: list) -> None:
        """Set the view range ourselves, and only when the data leaves it: a range change
        costs several repaints in pyqtgraph (axes, grid), new points within it one."""
        x = np.concatenate([np.asarray(v, float).ravel() for v in xs]) if xs else np.zeros(0)
        y = np.concatenate([np.asarray(v, float).ravel() for v in ys]) if ys else np.zeros(0)
        x, y = x[np.isfinite(x)], y[np.isfinite(y)]
        if x.size == 0 or y.size == 0:
            return
        q = max(X_STEP_MIN, _nice_step(x.max() - x.min())) if name != "sc" else 1
        x0, x1 = math.floor(x.min() / q) * q, math.ceil((x.max() + 1) / q) * q
        y0, y1 = float(y.min()), float(y.max())
        old = self._ranges.get(name)
        if old is not None:
            (ox0, ox1), (oy0, oy1) = old
            span = max(oy1 - oy0, 1e-9)
            inside = oy0 <= y0 and y1 <= oy1 and (y1 - y0) > 0.4 * span
            if (ox0, ox1) == (x0, x1) and inside:
                return
        step = _nice_step(y1 - y0)
        y0, y1 = math.floor(y0 / step) * step - step, math.ceil(y1 / step) * step + step
        self._ranges[name] = ((x0, x1), (y0, y1))
        self.plots[name].setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)

    def refresh(self, group: str | None = None) -> None:
        """Redraw the rolling plots from the history (one group, or all)."""
        h = self.history
        if group in (None, "quality", "cbr"):
            keys = {"quality": ("psnr", "ws_psnr", "viewport_psnr"), "cbr": ("cbr",),
                    None: ("psnr", "ws_psnr", "viewport_psnr", "cbr")}[group]
            fit: dict[str, tuple[list, list]] = {}
            for stream in STREAMS:
                x = h.array(stream, "frame_id")
                for key in keys:
                    y = h.array(stream, key)
                    y[~np.isfinite(y)] = np.nan  # inf PSNR (identical frames) is not drawable
                    self.curves[f"{stream}.{key}"].setData(x, y)
                    xs, ys = fit.setdefault("cbr" if key == "cbr" else "quality", ([], []))
                    xs.append(x)
                    ys.append(y)
            if group in (None, "quality"):
                for stream in STREAMS:
                    x = h.array(stream, "frame_id")
                    v = h.array(stream, "viewport_msssim")
                    ok = np.isfinite(v) & (v < 1)
                    y = -10 * np.log10(1 - v[ok])
                    self.curves[f"{stream}.msssim"].setData(x[ok], y)
                    xs, ys = fit.setdefault("quality", ([], []))
                    xs.append(x[ok])
                    ys.append(y)
            for name, (xs, ys) in fit.items():
                if name == "cbr":
                    ys.append([self.budget_line.value()])
                self._fit(name, xs, ys)
        if group in (None, "snr"):
            x = h.array("learned", "frame_id")
            snr = h.array("learned", "snr_true_db")
            ok = np.isfinite(snr)  # NaN over a real radio / lost frames: draw the known points
            self.curves["snr_true"].setData(x[ok], snr[ok])
            cqi = h.array("learned", "cqi_db")
            ok = np.isfinite(cqi)
            self.curves["cqi"].setData(x[ok], cqi[ok])
            self._fit("snr", [x], [snr[np.isfinite(snr)], cqi])
        if group in (None, "mcs"):
            x = h.array("classical", "frame_id")
            qp, mcs = h.array("classical", "qp"), h.array("classical", "mcs")
            olla = h.array("classical", "olla_margin_db")
            self.curves["mcs"].setData(x, mcs)
            self.curves["qp"].setData(x, qp)
            self.curves["olla"].setData(x, olla)
            self._fit("mcs", [x], [mcs, qp, olla])
        if group in (None, "link"):
            self._draw_link()

    def set_budget(self, cbr: float) -> None:
        self.budget_line.setValue(cbr)

    def set_link(self, frames: dict) -> None:
        """Constellation and per-subcarrier SNR of the frames on display (drawn on refresh)."""
        self.link_frames = frames

    def _draw_link(self) -> None:
        for stream in STREAMS:
            msg = self.link_frames.get(stream)
            sym = msg.symbols if msg is not None else np.zeros(0, np.complex64)
            sym = sym[np.isfinite(sym)]
            self.curves[f"{stream}.const"].setData(x=sym.real, y=sym.imag)
            sc = msg.subcarrier_snr_db if msg is not None else np.zeros(0, np.float32)
            self.curves[f"{stream}.sc"].setData(np.arange(sc.size), sc)
        scs = [m.subcarrier_snr_db for m in self.link_frames.values() if m is not None]
        if any(v.size for v in scs):
            self._fit("sc", [np.arange(max(v.size for v in scs))], scs)
