"""Channel-emulator settings: state, multipath taps, fractional delay, SNR traces.

numpy + stdlib only (imported by the flowgraph under Debian's python3 and by the tests).
The GNU Radio blocks that apply these settings live in :mod:`flowgraphs.ofdm_link`.

SNR convention: ``snr_db`` is the per-resource-element Es/N0 of the OFDM link (what each
payload symbol sees on average). The emulator keeps the noise fixed (unit variance per
sample) and scales the transmitted frame, exactly from the frame's first sample, so a change
of SNR -- by the control socket or by the trace -- applies to whole frames.
"""
from __future__ import annotations

import csv
import math
import threading
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

CHANNELS = ("awgn", "rayleigh", "rician", "multipath", "trace")
FADING_CHANNELS = ("rayleigh", "rician")
DEFAULT_TRACE = Path(__file__).resolve().parent / "traces" / "cost2100_like.csv"

#: 3-tap frequency-selective profile: delays in samples, powers in dB, fixed phases (rad).
MULTIPATH_DELAYS = (0, 3, 7)
MULTIPATH_POWERS_DB = (0.0, -3.0, -6.0)
MULTIPATH_PHASES = (0.0, -0.44, 0.55)  # deepest notch in the band: -17 dB

FRAC_DELAY_HALF = 6  # half length of the fractional-delay FIR


def multipath_taps(delays=MULTIPATH_DELAYS, powers_db=MULTIPATH_POWERS_DB,
                   phases=MULTIPATH_PHASES) -> np.ndarray:
    """Static multipath impulse response, unit energy.

    Output: complex64 array of length max(delays) + 1.
    """
    h = np.zeros(max(delays) + 1, np.complex128)
    for d, p, ph in zip(delays, powers_db, phases):
        h[d] += 10 ** (p / 20) * np.exp(1j * ph)
    return (h / np.linalg.norm(h)).astype(np.complex64)


def fractional_delay(frac: float, half: int = FRAC_DELAY_HALF) -> np.ndarray:
    """Windowed-sinc FIR delaying by ``half + frac`` samples (0 <= frac < 1), unit DC gain."""
    if abs(frac) < 1e-9:
        h = np.zeros(2 * half + 1)
        h[half] = 1.0
        return h
    n = np.arange(2 * half + 2, dtype=np.float64)
    c = half + frac
    w = 0.5 + 0.5 * np.cos(np.pi * (n - c) / (half + 1.5))  # Hann centred on the delay
    h = np.sinc(n - c) * w
    return h / h.sum()


@dataclass
class ChannelState:
    """What the emulator applies; changed at run time through the control socket.

    Parameters
    ----------
    channel : str
        One of :data:`CHANNELS`.
    snr_db : float
        Average per-RE SNR (for ``trace``: the mean the trace is shifted to).
    cfo_hz : float
        Carrier frequency offset in Hz (divided by ``samp_rate``).
    timing_offset : float
        Extra delay in samples (integer part: a delay line; fraction: a windowed-sinc FIR).
    doppler_hz : float
        Maximum Doppler of the fading channels.
    k_factor : float
        Rician K (linear).
    sco_ppm : float
        Sample-clock offset between TX and RX, parts per million.
    samp_rate : float
        Nominal sample rate (Hz) used to normalise cfo_hz and doppler_hz.
    multipath : bool
        Add the 3-tap profile (always on for ``channel == "multipath"``).
    trace : str
        CSV trace path for ``channel == "trace"``.
    """

    channel: str = "awgn"
    snr_db: float = 10.0
    cfo_hz: float = 0.0
    timing_offset: float = 0.0
    doppler_hz: float = 50.0
    k_factor: float = 4.0
    sco_ppm: float = 0.0
    samp_rate: float = 5e6
    multipath: bool = False
    trace: str = str(DEFAULT_TRACE)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}

    def update(self, **kw) -> dict:
        """Apply settings (unknown keys raise ValueError); returns what changed."""
        aliases = {"snr": "snr_db", "cfo": "cfo_hz", "doppler": "doppler_hz", "k": "k_factor",
                   "timing": "timing_offset"}
        changed = {}
        with self._lock:
            for key, value in kw.items():
                key = aliases.get(key, key)
                if key.startswith("_") or not hasattr(self, key):
                    raise ValueError(f"unknown channel setting {key!r}")
                if key == "channel" and value not in CHANNELS:
                    raise ValueError(f"channel must be one of {CHANNELS}")
                old = getattr(self, key)
                if isinstance(old, bool):
                    value = bool(value)
                elif isinstance(old, float):
                    value = float(value)
                    if not math.isfinite(value):
                        raise ValueError(f"{key} must be finite")
                elif isinstance(old, str):
                    value = str(value)
                if value != old:
                    setattr(self, key, value)
                    changed[key] = value
        return changed

    # -- derived quantities
    @property
    def fading(self) -> bool:
        return self.channel in FADING_CHANNELS

    def taps(self) -> np.ndarray:
        """FIR of the channel_model block: multipath profile convolved with the fractional
        part of the timing offset."""
        h = np.ones(1, np.complex128)
        if self.channel == "multipath" or self.multipath:
            h = multipath_taps().astype(np.complex128)
        frac = self.timing_offset - math.floor(self.timing_offset)
        if frac > 1e-9:
            h = np.convolve(h, fractional_delay(frac))
        return h.astype(np.complex64)

    def integer_delay(self) -> int:
        return max(0, int(math.floor(self.timing_offset)))

    def normalised_cfo(self) -> float:
        return self.cfo_hz / self.samp_rate

    def normalised_doppler(self) -> float:
        return self.doppler_hz / self.samp_rate


class SnrTrace:
    """Per-frame SNR trace (CSV with a ``snr_db`` column, one row per frame; '#' comments).

    Frame ``i`` gets ``snr_db[i % len]`` shifted so the trace mean equals the requested mean.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        rows = []
        with open(self.path, newline="") as fh:
            lines = (ln for ln in fh if ln.strip() and not ln.lstrip().startswith("#"))
            for row in csv.DictReader(lines):
                rows.append(float(row["snr_db"]))
        if not rows:
            raise ValueError(f"trace {self.path} has no snr_db rows")
        self.snr_db = np.asarray(rows, np.float64)
        self.mean_db = float(self.snr_db.mean())

    def __len__(self) -> int:
        return self.snr_db.size

    def snr_for(self, frame_index: int, mean_db: float) -> float:
        return float(self.snr_db[frame_index % self.snr_db.size] - self.mean_db + mean_db)
