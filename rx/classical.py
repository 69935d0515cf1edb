"""The classical chain on the live link (receiver side): LLRs from the equalised symbols,
layered min-sum LDPC decoding, codec decoding; a failed frame shows the per-channel mean
image (the paper's rule) — the cliff.

LLR weights: the OFDM receiver equalises each resource element by its own channel estimate
(unbiased, X = Y/H), so the noise left on a symbol is N0/|H_k|^2 — large on a faded carrier.
The PHY reports the per-carrier SNR |H_k|^2/N0 (``RxFrame.subcarrier_snr_db``); each symbol
is demapped with the variance of the carrier it rode on (:func:`per_symbol_noise_var`). Only
when that report is missing or malformed does the scalar frame SNR stand in.
"""
from __future__ import annotations

import json
import math

import numpy as np

from core.classical.chain import make_scheme
from core.phy.ofdm import DEFAULT_CONFIG, OfdmConfig


def per_symbol_noise_var(n_symbols: int, subcarrier_snr_db, config: OfdmConfig = DEFAULT_CONFIG,
                         offset: int = 0):
    """Post-equalisation noise variance of each of ``n_symbols`` payload symbols that start
    ``offset`` symbols into the frame's payload (after the digital side part), from the PHY's
    per-carrier SNR (dB, one value per occupied carrier); None when that is unusable."""
    sc = np.asarray(subcarrier_snr_db if subcarrier_snr_db is not None else [], np.float64).reshape(-1)
    if n_symbols <= 0 or sc.size != config.n_occupied or not np.all(np.isfinite(sc)):
        return None
    sc = np.clip(sc, -30.0, 60.0)
    return (10.0 ** (-sc / 10.0))[config.payload_carriers(offset + n_symbols)[offset:]]


class ClassicalReceiver:
    def __init__(self, per_subcarrier: bool = True):
        self._chains: dict[str, object] = {}
        self.per_subcarrier = per_subcarrier

    def _chain(self, scheme: str):
        if scheme not in self._chains:
            self._chains[scheme] = make_scheme(scheme)
        return self._chains[scheme]

    def decode(self, symbols: np.ndarray, meta: dict, grant: bytes, cqi_db: float,
               subcarrier_snr_db=None, offset: int = 0):
        """Returns (reconstruction, {"ok", "mcs", "blocks_failed", "llr_noise"})."""
        g = json.loads(grant)
        snr = cqi_db if math.isfinite(cqi_db) else float(meta.get("cqi_used", 10.0))
        layout = g.get("layout") or {}
        need = layout["num_cbs"] * layout["e_cb"] // layout["qm"] if layout else 0
        y = np.zeros(max(need, symbols.size), np.complex64)  # missing symbols are erasures
        y[:symbols.size] = np.nan_to_num(symbols)
        noise_var = 10 ** (-snr / 10)
        nv = per_symbol_noise_var(symbols.size, subcarrier_snr_db, offset=offset) if self.per_subcarrier else None
        if nv is not None:
            # symbols that never arrived (zeros) keep the scalar variance, as before
            noise_var = np.concatenate([nv, np.full(y.size - nv.size, noise_var)])
        res = self._chain(g["scheme"]).receive(y, noise_var, g, snr_db=snr)
        return res.recon, {"ok": bool(res.success), "mcs": res.mcs,
                           "blocks_failed": getattr(res, "blocks_failed", None),
                           "llr_noise": "per-subcarrier" if nv is not None else "scalar"}
