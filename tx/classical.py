"""The classical chain on the live link (transmitter side): codec + 5G NR LDPC + QAM.

Live policy (``ClassicalChain.symbols_for`` with ``cqi_db``): the MCS from the CQI at a 10 %
BLER target, then the highest-rate QP whose transport block fits the frame's CBR budget.
The control information (MCS, QP, transport-block layout) travels on the side link, like a
PDCCH grant; the QAM symbols ride the same OFDM PHY as the learned chain's.
"""
from __future__ import annotations

import json
import time

import numpy as np

from core.classical.chain import make_scheme
from core.classical.ldpc import preload

#: presets fast enough for live streaming (the offline tables use medium/slower)
LIVE_CODEC_OPTIONS = {"vvc": {"preset": "faster"}, "hevc": {"preset": "ultrafast"}}


class ClassicalTransmitter:
    def __init__(self, codec: str = "hevc", cache=None):
        self.codec = codec
        self.chain = make_scheme(f"{codec}+ldpc", cache=cache,
                                 codec_options=LIVE_CODEC_OPTIONS.get(codec))
        self._qp_hint = None
        preload()  # at start-up, not on the first frame

    def encode(self, rgb: np.ndarray, cqi_db: float, budget: float) -> tuple[dict, np.ndarray]:
        """(side-link metadata incl. the JSON grant as ``payload``, QAM symbols)."""
        t0 = time.perf_counter()
        tx = self.chain.symbols_for(rgb, budget, cqi_db=cqi_db, qp_hint=self._qp_hint)
        self._qp_hint = tx.meta.get("param") or self._qp_hint  # start next search near this QP
        h, w = rgb.shape[:2]
        meta = {"codec": self.codec, "mcs": tx.meta["mcs"], "qp": tx.meta["param"],
                "cbr": tx.symbols.size / (3 * h * w), "budget": budget, "cqi_used": cqi_db,
                "n_symbols": int(tx.symbols.size), "encode_ms": 1e3 * (time.perf_counter() - t0),
                "payload": json.dumps(tx.meta).encode()}
        return meta, tx.symbols.astype(np.complex64)
