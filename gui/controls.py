"""The presenter's controls: channel (to the flowgraph) and transmitter settings (to the TX).

Emits ``channel_changed(dict)`` with flowgraph control keys (``channel``, ``snr_db``,
``doppler_hz``) and ``tx_changed(dict)`` with TX control keys (``cbr``, ``roi``, ``lam``,
``edit_steps``); ``pause_toggled(bool)`` and ``step_clicked()`` drive pause / single step.
"""
from __future__ import annotations

import math

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core.session.options import OPTIONS
from flowgraphs.options import CHANNEL_CHOICES

# Defaults and ranges are the session options table's (core.session.options, rows tagged
# "viewer"). The channel list is the flowgraph's own: the combo changes the running flowgraph,
# which knows more channels (rician) than the demo's --channel offers.
CHANNELS = CHANNEL_CHOICES
LAM_MIN, LAM_MAX = OPTIONS["lam"].span
SNR_RANGE = OPTIONS["snr_db"].span


def lam_from_slider(pos: int) -> float:
    return LAM_MIN * (LAM_MAX / LAM_MIN) ** (pos / 100.0)


def slider_from_lam(lam: float) -> int:
    lam = min(max(lam, LAM_MIN), LAM_MAX)
    return int(round(100.0 * math.log(lam / LAM_MIN) / math.log(LAM_MAX / LAM_MIN)))


class ControlsPanel(QWidget):
    channel_changed = pyqtSignal(dict)
    tx_changed = pyqtSignal(dict)
    pause_toggled = pyqtSignal(bool)
    step_clicked = pyqtSignal()

    def __init__(self, cfg=None, parent=None):
        super().__init__(parent)
        def get(name: str):  # the session's value, else the table's default
            return getattr(cfg, name, OPTIONS[name].default)
        self.setFixedWidth(285)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)

        ch = QGroupBox("channel (flowgraph)")
        f = QFormLayout(ch)
        self.channel_combo = QComboBox()
        self.channel_combo.addItems(CHANNELS)
        self.channel_combo.setCurrentText(get("channel"))
        f.addRow("model", self.channel_combo)
        self.snr_spin = QDoubleSpinBox()
        self.snr_spin.setRange(*SNR_RANGE)
        self.snr_spin.setSingleStep(0.5)
        self.snr_spin.setSuffix(" dB")
        self.snr_spin.setKeyboardTracking(False)
        self.snr_spin.setValue(float(get("snr_db")))
        self.snr_slider = QSlider(Qt.Horizontal)
        self.snr_slider.setRange(int(SNR_RANGE[0] * 2), int(SNR_RANGE[1] * 2))
        self.snr_slider.setValue(int(round(self.snr_spin.value() * 2)))
        f.addRow("SNR", self.snr_spin)
        f.addRow("", self.snr_slider)
        self.doppler_spin = QDoubleSpinBox()
        self.doppler_spin.setRange(*OPTIONS["doppler_hz"].span)
        self.doppler_spin.setSingleStep(10.0)
        self.doppler_spin.setSuffix(" Hz")
        self.doppler_spin.setKeyboardTracking(False)
        self.doppler_spin.setValue(float(get("doppler_hz")))
        f.addRow("Doppler", self.doppler_spin)
        layout.addWidget(ch)

        tx = QGroupBox("transmitter")
        f = QFormLayout(tx)
        self.cbr_spin = QDoubleSpinBox()
        self.cbr_spin.setDecimals(3)
        self.cbr_spin.setRange(*OPTIONS["cbr"].span)
        self.cbr_spin.setSingleStep(0.005)
        self.cbr_spin.setKeyboardTracking(False)
        self.cbr_spin.setValue(float(get("cbr")))
        f.addRow("CBR budget", self.cbr_spin)
        self.roi_check = QCheckBox("viewport ROI")
        self.roi_check.setChecked(bool(get("roi")))
        f.addRow(self.roi_check)
        self.lam_slider = QSlider(Qt.Horizontal)
        self.lam_slider.setRange(0, 100)
        self.lam_slider.setValue(slider_from_lam(float(get("lam"))))
        self.lam_label = QLabel()
        lam_row = QHBoxLayout()
        lam_row.addWidget(self.lam_slider)
        lam_row.addWidget(self.lam_label)
        f.addRow("λ (SQI)", lam_row)
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(*OPTIONS["edit_steps"].span)
        self.steps_spin.setKeyboardTracking(False)
        self.steps_spin.setValue(int(get("edit_steps")))
        f.addRow("NTSCC++ steps T", self.steps_spin)
        layout.addWidget(tx)

        play = QGroupBox("playback")
        row = QHBoxLayout(play)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.step_button = QPushButton("Step")
        self.step_button.setEnabled(False)
        row.addWidget(self.pause_button)
        row.addWidget(self.step_button)
        layout.addWidget(play)

        self.help = QLabel("Look around: drag the source panel or a viewport, arrow keys "
                           "(Shift = fine), wheel or +/- for the field of view. Space pauses, "
                           "N steps.")
        self.help.setWordWrap(True)
        self.help.setStyleSheet("color: #999;")
        layout.addWidget(self.help)
        layout.addStretch(1)
        self._update_lam_label()

        self.channel_combo.currentTextChanged.connect(self._on_channel)
        self.snr_spin.valueChanged.connect(self._on_snr)
        self.snr_slider.valueChanged.connect(lambda v: self.snr_spin.setValue(v / 2.0))
        self.doppler_spin.valueChanged.connect(lambda v: self.channel_changed.emit({"doppler_hz": v}))
        self.cbr_spin.valueChanged.connect(lambda v: self.tx_changed.emit({"cbr": v}))
        self.roi_check.toggled.connect(lambda on: self.tx_changed.emit({"roi": bool(on)}))
        self.lam_slider.valueChanged.connect(self._on_lam)
        self.steps_spin.valueChanged.connect(lambda v: self.tx_changed.emit({"edit_steps": int(v)}))
        self.pause_button.toggled.connect(self._on_pause)
        self.step_button.clicked.connect(self.step_clicked.emit)

    @property
    def lam(self) -> float:
        return lam_from_slider(self.lam_slider.value())

    def _update_lam_label(self) -> None:
        self.lam_label.setText(f"{self.lam:.3f}")

    def _on_channel(self, name: str) -> None:
        # a model change carries the SNR and Doppler too, so the flowgraph never mixes settings
        self.channel_changed.emit({"channel": name, "snr_db": self.snr_spin.value(),
                                   "doppler_hz": self.doppler_spin.value()})

    def _on_snr(self, value: float) -> None:
        self.snr_slider.blockSignals(True)
        self.snr_slider.setValue(int(round(value * 2)))
        self.snr_slider.blockSignals(False)
        self.channel_changed.emit({"snr_db": float(value)})

    def _on_lam(self, _pos: int) -> None:
        self._update_lam_label()
        self.tx_changed.emit({"lam": round(self.lam, 4)})

    def _on_pause(self, paused: bool) -> None:
        self.pause_button.setText("Resume" if paused else "Pause")
        self.step_button.setEnabled(paused)
        self.pause_toggled.emit(paused)
