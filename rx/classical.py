"""The classical chain on the live link (receiver side): LLRs from the equalised symbols,
layered min-sum LDPC decoding, codec decoding; a failed frame shows the per-channel mean
image (the paper's rule) — the cliff."""
from __future__ import annotations

import json
import math

import numpy as np

from core.classical.chain import make_scheme


class ClassicalReceiver:
    def __init__(self):
        self._chains: dict[str, object] = {}

    def _chain(self, scheme: str):
        if scheme not in self._chains:
            self._chains[scheme] = make_scheme(scheme)
        return self._chains[scheme]

    def decode(self, symbols: np.ndarray, meta: dict, grant: bytes, cqi_db: float):
        """Returns (reconstruction, {"ok", "mcs", "blocks_failed"})."""
        g = json.loads(grant)
        snr = cqi_db if math.isfinite(cqi_db) else float(meta.get("cqi_used", 10.0))
        noise_var = 10 ** (-snr / 10)
        layout = g.get("layout") or {}
        need = layout["num_cbs"] * layout["e_cb"] // layout["qm"] if layout else 0
        y = np.zeros(max(need, symbols.size), np.complex64)  # missing symbols are erasures
        y[:symbols.size] = np.nan_to_num(symbols)
        res = self._chain(g["scheme"]).receive(y, noise_var, g, snr_db=snr)
        return res.recon, {"ok": bool(res.success), "mcs": res.mcs,
                           "blocks_failed": getattr(res, "blocks_failed", None)}
