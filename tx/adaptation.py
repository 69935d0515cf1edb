"""Transmitter-side adaptation of the learned chain to the CBR budget and the CQI.

The CQI goes straight into the SNR response network (the model's ν). The bandwidth factor η
(a scale on the ROI η map when ROI is on) is steered to the per-frame CBR budget by a
multiplicative controller: CBR is close to proportional to η for a given image, so the
last frame's CBR/η ratio predicts the η that meets the budget on the next one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class LearnedRateController:
    budget: float = 0.04
    eta_min: float = 0.05  # the model's trained η range (ModelConfig.eta_range), set by the TX
    eta_max: float = 0.4
    ratio: float = 0.2  # CBR per unit η, refined from every frame
    smoothing: float = 0.5

    def next_eta(self) -> float:
        return float(min(self.eta_max, max(self.eta_min, self.budget / self.ratio)))

    def observe(self, eta_used: float, cbr_achieved: float) -> None:
        if eta_used > 0 and cbr_achieved > 0 and math.isfinite(cbr_achieved):
            measured = cbr_achieved / eta_used
            self.ratio = math.exp((1 - self.smoothing) * math.log(measured)
                                  + self.smoothing * math.log(self.ratio))


@dataclass
class CqiTracker:
    """Latest CQI from the receiver's feedback, with a fallback before the first report."""

    value_db: float = 10.0
    reports: int = 0

    def update(self, cqi_db: float) -> None:
        if isinstance(cqi_db, (int, float)) and math.isfinite(cqi_db):
            self.value_db = float(min(30.0, max(-10.0, cqi_db)))
            self.reports += 1

    @property
    def for_model(self) -> float:
        """ν for the SNR response, clamped to the range the model was trained on."""
        return float(min(14.0, max(0.0, self.value_db)))
