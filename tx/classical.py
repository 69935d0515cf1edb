"""The classical chain on the live link (transmitter side): codec + 5G NR LDPC + QAM.

Live policy (``ClassicalChain.symbols_for`` with ``cqi_db``): no HARQ, so the MCS is chosen
for a *frame* error rate of at most 1 % (``LIVE_FRAME_ERROR_TARGET``; the TX's OLLA steers its
CQI back-off to the same target), then the QP that the live rate control
(:class:`core.classical.ratecontrol.LiveRateControl`) predicts from the previous frames to be
the highest-rate one whose transport block fits the frame's CBR budget -- about one encode per
frame instead of the offline tables' search, with a fast preset (``LIVE_CODEC_OPTIONS``), and
transport blocks on the TBS grid so that LDPC codes are reused. A 5G scheduler aims at 10 %
because HARQ repairs the failures; a chain without HARQ at 10 % would cliff on ~1 frame in 10
on a channel that never changes. The grant (MCS, QP, transport-block layout, mean colour) rides
the frame's digital side part on the air; the QAM symbols ride the same OFDM PHY as the learned
chain's.
"""
from __future__ import annotations

import json
import time

import numpy as np

from core.classical.chain import make_scheme
from core.classical.ldpc import preload
from core.classical.mcs import LIVE_FRAME_ERROR_TARGET
from core.classical.ratecontrol import LiveRateControl

#: presets fast enough for live streaming (the offline tables use medium/slower); x265 codes
#: on the classical worker's own thread (no worker pool to wait for: ``HEVC.thread_pool``)
LIVE_CODEC_OPTIONS = {"vvc": {"preset": "faster"},
                      "hevc": {"preset": "ultrafast", "thread_pool": False}}


#: the library behind each live codec, as the viewer and the report name it with its preset
ENCODER_LIBRARY = {"vvc": "vvenc", "hevc": "x265"}


def live_encoder_text(codec: str) -> str:
    """E.g. "x265 ultrafast": the live encoder and its preset (the QP comes from the live rate
    control)."""
    preset = (LIVE_CODEC_OPTIONS.get(codec) or {}).get("preset", "")
    return f"{ENCODER_LIBRARY.get(codec, codec)} {preset}".strip()


def policy_text(bler_target: float, olla: bool, codec: str | None = None) -> str:
    """How the live classical link codes and adapts, as the viewer and the report state it."""
    encoder = f"{live_encoder_text(codec)} · " if codec else ""
    return (f"{encoder}no HARQ, frame-error target {100 * bler_target:g} %"
            + (" (OLLA)" if olla else ""))


class ClassicalTransmitter:
    def __init__(self, codec: str = "hevc", cache=None,
                 bler_target: float = LIVE_FRAME_ERROR_TARGET, olla: bool = True):
        self.codec = codec
        self.chain = make_scheme(f"{codec}+ldpc", cache=cache,
                                 codec_options=LIVE_CODEC_OPTIONS.get(codec),
                                 bler_target=bler_target)
        self.policy = policy_text(bler_target, olla, codec)
        self.rate_control = LiveRateControl(self.chain.codec)
        preload()  # at start-up, not on the first frame

    def encode(self, rgb: np.ndarray, cqi_db: float, budget: float) -> tuple[dict, np.ndarray]:
        """(side-link metadata incl. the JSON grant as ``payload``, QAM symbols)."""
        t0 = time.perf_counter()
        encodes_before = self.rate_control.stats.encodes
        tx = self.chain.symbols_for(rgb, budget, cqi_db=cqi_db, rate_control=self.rate_control)
        h, w = rgb.shape[:2]
        meta = {"codec": self.codec, "mcs": tx.meta["mcs"], "qp": tx.meta["param"],
                "cbr": tx.symbols.size / (3 * h * w), "budget": budget, "cqi_used": cqi_db,
                "n_symbols": int(tx.symbols.size), "encode_ms": 1e3 * (time.perf_counter() - t0),
                "codec_encodes": self.rate_control.stats.encodes - encodes_before,
                "policy": self.policy, "payload": json.dumps(tx.meta).encode()}
        return meta, tx.symbols.astype(np.complex64)
