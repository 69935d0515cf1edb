"""TS 38.214 MCS table, 38.211 QAM mapping, max-log demapping, AWGN, and MCS selection.

QAM is our own vectorised numpy rather than sionna's ``Mapper``/``Demapper``: those are torch
blocks that compute distances to all 2^Qm points; the live receiver wants plain numpy (no torch
round trip per frame), per-symbol noise variances after OFDM equalisation, and Gray-coded
square QAM separates into two PAMs, so a demapper over sqrt(M) levels per dimension gives the
exact same max-log (or exact APP) LLRs at a fraction of the work.  The mapping follows
TS 38.211 5.1 (identical labelling to sionna's "qam" constellation; tested against it).

``select_mcs`` uses SNR thresholds measured with *our* LDPC decoder and stored in
``mcs_thresholds.json`` next to this file; regenerate with

    python -m core.classical.mcs measure

LLR convention: ``log p(b=1)/p(b=0)`` (sionna's), as in :mod:`core.classical.ldpc`.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = [
    "MCS_TABLE", "McsEntry", "mcs_entry", "num_mcs",
    "constellation", "modulate", "demodulate", "awgn", "noise_var_from_snr",
    "load_thresholds", "mcs_threshold_db", "select_mcs", "simulate_bler", "cb_target",
    "OuterLoopLinkAdaptation", "THRESHOLDS_PATH", "LIVE_FRAME_ERROR_TARGET",
]

# TS 38.214 Table 5.1.3.1-1 (MCS index table 1 for PDSCH): (Qm, target code rate x 1024,
# spectral efficiency).  Indices 29-31 are reserved (retransmissions) and not listed.
MCS_TABLE: tuple[tuple[int, float, float], ...] = (
    (2, 120, 0.2344), (2, 157, 0.3066), (2, 193, 0.3770), (2, 251, 0.4902),
    (2, 308, 0.6016), (2, 379, 0.7402), (2, 449, 0.8770), (2, 526, 1.0273),
    (2, 602, 1.1758), (2, 679, 1.3262), (4, 340, 1.3281), (4, 378, 1.4766),
    (4, 434, 1.6953), (4, 490, 1.9141), (4, 553, 2.1602), (4, 616, 2.4063),
    (4, 658, 2.5703), (6, 438, 2.5664), (6, 466, 2.7305), (6, 517, 3.0293),
    (6, 567, 3.3223), (6, 616, 3.6094), (6, 666, 3.9023), (6, 719, 4.2129),
    (6, 772, 4.5234), (6, 822, 4.8164), (6, 873, 5.1152), (6, 910, 5.3320),
    (6, 948, 5.5547),
)

THRESHOLDS_PATH = Path(__file__).with_name("mcs_thresholds.json")

#: frame error rate the live (CQI-driven) classical chain aims at: there is no HARQ, so every
#: frame error is a cliff; a 5G scheduler's 10 % presumes HARQ repairs the failures
LIVE_FRAME_ERROR_TARGET = 0.01


@dataclass(frozen=True)
class McsEntry:
    index: int
    qm: int              #: modulation order (bits per QAM symbol)
    r1024: float         #: target code rate x 1024
    se: float            #: spectral efficiency (bit per channel use) from the table

    @property
    def rate(self) -> float:
        return self.r1024 / 1024.0

    @property
    def modulation(self) -> str:
        return {2: "QPSK", 4: "16QAM", 6: "64QAM", 8: "256QAM"}[self.qm]


def num_mcs() -> int:
    return len(MCS_TABLE)


def mcs_entry(index: int) -> McsEntry:
    qm, r, se = MCS_TABLE[int(index)]
    return McsEntry(int(index), qm, float(r), se)


# ----------------------------------------------------------------------------------------------
# QAM (TS 38.211 5.1)
# ----------------------------------------------------------------------------------------------

@lru_cache(maxsize=8)
def _pam(qm: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-dimension PAM of square 2^qm-QAM: (levels [2^m] for the label c0..c_{m-1} read as
    an MSB-first integer, label bits [2^m, m], normalisation 1/sqrt(E))."""
    if qm not in (2, 4, 6, 8):
        raise ValueError(f"unsupported modulation order {qm}")
    m = qm // 2
    labels = ((np.arange(2 ** m)[:, None] >> np.arange(m - 1, -1, -1)[None, :]) & 1)
    # 38.211: a(c) = (1-2c0) (2^{m-1} - (1-2c1) (2^{m-2} - (1-2c2) (...)))
    inner = np.ones(2 ** m)
    for i in range(m - 1, 0, -1):
        inner = 2 ** (m - i) - (1 - 2 * labels[:, i]) * inner
    levels = (1 - 2 * labels[:, 0]) * inner
    norm = 1.0 / math.sqrt(2.0 * np.mean(levels ** 2))
    return levels.astype(np.float64), labels.astype(np.uint8), norm


def constellation(qm: int) -> np.ndarray:
    """All 2^qm points, index = label b0 b1 ... b_{qm-1} read MSB-first (unit energy)."""
    levels, _, norm = _pam(qm)
    m = qm // 2
    idx = np.arange(2 ** qm)
    bits = (idx[:, None] >> np.arange(qm - 1, -1, -1)[None, :]) & 1
    wi = (bits[:, 0::2] * (1 << np.arange(m - 1, -1, -1))).sum(1)
    wq = (bits[:, 1::2] * (1 << np.arange(m - 1, -1, -1))).sum(1)
    return ((levels[wi] + 1j * levels[wq]) * norm).astype(np.complex64)


def modulate(bits: np.ndarray, qm: int) -> np.ndarray:
    """Bits (length multiple of qm) -> complex64 unit-energy symbols (38.211 5.1)."""
    b = np.asarray(bits, np.uint8).reshape(-1, qm)
    levels, _, norm = _pam(qm)
    m = qm // 2
    w = 1 << np.arange(m - 1, -1, -1)
    ii = (b[:, 0::2].astype(np.int64) * w).sum(1)
    qq = (b[:, 1::2].astype(np.int64) * w).sum(1)
    lv = (levels * norm).astype(np.float32)
    return (lv[ii] + 1j * lv[qq]).astype(np.complex64)


def demodulate(y: np.ndarray, qm: int, noise_var, method: str = "maxlog",
               chunk: int = 1 << 18) -> np.ndarray:
    """Soft demapping: complex symbols -> LLRs ``log p(b=1)/p(b=0)``, length ``len(y) * qm``.

    ``noise_var``: complex noise variance N0 per symbol (scalar or per-symbol array, e.g. the
    post-equalisation variance of each OFDM resource element).  ``method``: ``"maxlog"`` or
    ``"app"`` (exact log-sum-exp).
    """
    y = np.asarray(y).reshape(-1)
    nv = np.broadcast_to(np.asarray(noise_var, np.float64), y.shape)
    levels, labels, norm = _pam(qm)
    m = qm // 2
    lv = levels * norm
    out = np.empty((y.size, qm), np.float32)
    for s in range(0, y.size, chunk):
        e = min(y.size, s + chunk)
        inv = 1.0 / np.maximum(nv[s:e], 1e-12)
        for dim, comp in ((0, y[s:e].real), (1, y[s:e].imag)):
            d2 = (comp.astype(np.float64)[:, None] - lv[None, :]) ** 2 * inv[:, None]
            for i in range(m):
                one = labels[:, i].astype(bool)
                if method == "maxlog":
                    llr = d2[:, ~one].min(1) - d2[:, one].min(1)
                elif method == "app":
                    llr = _lse(-d2[:, one]) - _lse(-d2[:, ~one])
                else:
                    raise ValueError(method)
                out[s:e, 2 * i + dim] = llr
    return out.reshape(-1)


def _lse(x: np.ndarray) -> np.ndarray:
    mx = x.max(1)
    return mx + np.log(np.exp(x - mx[:, None]).sum(1))


def noise_var_from_snr(snr_db: float) -> float:
    """N0 for unit-energy symbols at Es/N0 = ``snr_db``."""
    return float(10.0 ** (-float(snr_db) / 10.0))


def awgn(x: np.ndarray, snr_db: float, rng: np.random.Generator | None = None):
    """Complex AWGN at Es/N0 = ``snr_db`` (unit-energy input assumed): returns (y, N0)."""
    rng = rng or np.random.default_rng()
    n0 = noise_var_from_snr(snr_db)
    x = np.asarray(x)
    noise = rng.standard_normal((2,) + x.shape, dtype=np.float32) * np.float32(math.sqrt(n0 / 2))
    return (x + noise[0] + 1j * noise[1]).astype(np.complex64), n0


# ----------------------------------------------------------------------------------------------
# BLER and thresholds
# ----------------------------------------------------------------------------------------------

class _BlerSim:
    """Monte-Carlo code-block BLER of one MCS: one-code-block transport blocks of ~``n_cb``
    coded bits with CRC24A.  A pool of encoded blocks is reused with fresh noise for every
    batch (the noise is what is random; re-encoding is the slow part)."""

    def __init__(self, mcs: int, rng: np.random.Generator, pool: int = 256, n_cb: int = 4096,
                 max_iter: int = 20):
        from .ldpc import crc24a, get_code, tb_layout
        self.e = mcs_entry(mcs)
        self.rng = rng
        self.max_iter = max_iter
        k_max = int(math.floor(self.e.rate * n_cb))
        lay = tb_layout(k_max - 24, self.e.qm, self.e.rate, n_cb)
        assert lay.num_cbs == 1
        self.lay = lay
        self.code = get_code(lay.k_cb, lay.e_cb, self.e.qm)
        payload = rng.integers(0, 2, (pool, lay.k_cb - 24), dtype=np.uint8)
        self.u = np.concatenate([payload, crc24a(payload)], axis=1)
        self.x = modulate(self.code.encode(self.u).reshape(-1), self.e.qm)
        self._crc = crc24a

    def batch(self, snr_db: float, channel=None) -> tuple[int, int, float]:
        """One pass over the pool: (errors, blocks, mean iterations)."""
        y, nv = awgn(self.x, snr_db, self.rng) if channel is None else channel(self.x)
        llr = demodulate(y, self.e.qm, nv).reshape(len(self.u), self.lay.e_cb)
        res = self.code.decode(llr, max_iter=self.max_iter)
        ok = res.converged & np.all(self._crc(res.bits[:, :-24]) == res.bits[:, -24:], axis=1)
        return int((~ok).sum()), len(ok), float(res.iterations.mean())

    def run(self, snr_db: float, min_errors: int = 100, max_blocks: int = 6000,
            min_blocks: int = 0):
        err = n = 0
        its = []
        while n < max(min_blocks, 1) or (err < min_errors and n < max_blocks):
            e, b, it = self.batch(snr_db)
            err, n = err + e, n + b
            its.append(it)
        return err, n, float(np.mean(its))


def simulate_bler(mcs: int, snr_db: float, num_blocks: int, rng: np.random.Generator | None = None,
                  n_cb: int = 4096, max_iter: int = 20, channel=None) -> tuple[float, float]:
    """BLER of ``num_blocks`` one-code-block transport blocks (~``n_cb`` coded bits, CRC24A)
    at ``mcs`` over AWGN at ``snr_db`` (or ``channel(symbols) -> (y, noise_var)``).
    Returns (BLER, mean iterations)."""
    sim = _BlerSim(mcs, rng or np.random.default_rng(), pool=num_blocks, n_cb=n_cb,
                   max_iter=max_iter)
    e, n, it = sim.batch(snr_db, channel)
    return e / n, it


@lru_cache(maxsize=4)
def _load(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def _clear_threshold_caches() -> None:
    """After the thresholds file was rewritten in this process."""
    _load.cache_clear()
    _threshold_db.cache_clear()


def load_thresholds(path: str | Path | None = None) -> dict:
    """The measured BLER curves: ``{"curves": {mcs: {"snr_db": [...], "bler": [...]}}, ...}``."""
    return _load(str(path or THRESHOLDS_PATH))


def _curve(mcs: int, path=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cur = load_thresholds(path)["curves"][str(int(mcs))]
    snr = np.asarray(cur["snr_db"], float)
    bler = np.asarray(cur["bler"], float)
    blocks = np.asarray(cur.get("blocks", [300] * len(snr)), float)
    o = np.argsort(snr)
    return snr[o], np.minimum.accumulate(bler[o]), blocks[o]   # monotone (MC noise)


def mcs_threshold_db(mcs: int, bler_target: float = 0.1, path=None) -> float:
    """SNR (dB) at which the measured code-block BLER of ``mcs`` falls to ``bler_target``.

    Log-linear interpolation between measured points; below the smallest BLER measured
    with errors, the last decade-per-dB slope of the waterfall is extrapolated (and the
    result is never below the first SNR where no error was seen in the measured blocks,
    if that bound is the tighter one)."""
    # cached: the live TX and RX ask for every MCS of the table on every frame
    return _threshold_db(int(mcs), float(bler_target), str(path or THRESHOLDS_PATH))


@lru_cache(maxsize=1024)
def _threshold_db(mcs: int, bler_target: float, path: str) -> float:
    snr, bler, blocks = _curve(mcs, path)
    t = float(bler_target)
    if t >= 1.0:
        return float(snr[0])
    lt = math.log10(t)
    nz = bler > 0
    if not nz.any():
        return float(snr[0])
    if bler[0] <= t:
        return float(snr[0])
    ls = np.log10(np.where(nz, bler, 1.0))
    idx = np.nonzero(nz)[0]
    for a, b in zip(idx[:-1], idx[1:]):
        if bler[a] > t >= bler[b]:
            return float(snr[a] + (lt - ls[a]) * (snr[b] - snr[a]) / (ls[b] - ls[a]))
    # target below the last measured non-zero BLER: extrapolate the tail slope
    last = idx[-1]
    prev = idx[-2] if len(idx) > 1 else None
    slope = (ls[last] - ls[prev]) / (snr[last] - snr[prev]) if prev is not None else -4.0
    slope = min(slope, -1.0)                       # at least one decade per dB
    est = float(snr[last] + (lt - ls[last]) / slope)
    zero_after = np.nonzero(~nz & (np.arange(len(snr)) > last))[0]
    if zero_after.size and 1.0 / blocks[zero_after[0]] <= t:
        est = min(est, float(snr[zero_after[0]]))
    return est


def cb_target(frame_bler: float, num_blocks: int) -> float:
    """Per-code-block BLER for a transport-block (frame) BLER target with ``num_blocks``
    independent code blocks: 1 - (1 - frame_bler)^(1/C)."""
    c = max(1, int(num_blocks))
    return 1.0 - (1.0 - float(frame_bler)) ** (1.0 / c)


def select_mcs(cqi_db: float, bler_target: float = 0.1, margin_db: float = 0.0,
               path=None, num_blocks: int | Callable[[int], int] = 1) -> int:
    """Live link adaptation: the highest MCS whose measured SNR threshold for a frame BLER of
    ``bler_target`` is at most ``cqi_db - margin_db``; MCS 0 when none is.

    ``num_blocks``: code blocks per frame (an int, or a function of the MCS index); the
    per-block target is ``cb_target(bler_target, C)``.  With the default 1 the target is the
    code-block BLER (3GPP's usual 10 % BLER CQI definition)."""
    best = 0
    for i in range(num_mcs()):
        c = num_blocks(i) if callable(num_blocks) else num_blocks
        if mcs_threshold_db(i, cb_target(bler_target, c), path) <= cqi_db - margin_db:
            best = i
    return best


@dataclass
class OuterLoopLinkAdaptation:
    """OLLA: a CQI back-off (dB) steered by the frame acknowledgements, as a 5G scheduler does.

    After a failed frame the back-off grows by ``step_db``; after a good one it shrinks by
    ``step_db · t / (1 - t)``, so the long-run frame error rate settles at ``t =
    bler_target`` whatever bias or lag the reported CQI has (a stale CQI in a fading channel,
    an optimistic estimator). The inner loop (:func:`select_mcs`) then uses ``cqi - margin``.
    """

    bler_target: float = 0.1
    step_db: float = 1.0
    min_db: float = -3.0  # may turn optimistic when the inner loop's thresholds are cautious
    max_db: float = 10.0
    margin_db: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.bler_target < 1:
            raise ValueError(f"bler_target must lie in (0, 1), got {self.bler_target}")

    def observe(self, ok: bool) -> None:
        t = self.bler_target
        delta = -self.step_db * t / (1 - t) if ok else self.step_db
        self.margin_db = float(min(self.max_db, max(self.min_db, self.margin_db + delta)))

    def effective_cqi(self, cqi_db: float) -> float:
        return cqi_db - self.margin_db


def _measure(args) -> int:
    """Measure BLER curves for every MCS and write the JSON table."""
    rng = np.random.default_rng(args.seed)
    curves: dict[str, dict] = {}
    t0 = time.time()
    mcs_list = range(num_mcs()) if not args.mcs else [int(m) for m in args.mcs.split(",")]
    for i in mcs_list:
        e = mcs_entry(i)
        sim = _BlerSim(i, rng, pool=args.pool)
        shannon = 10 * math.log10(2 ** (e.rate * e.qm) - 1)
        pts: dict[float, tuple[int, int, float]] = {}

        def point(snr):
            snr = round(snr, 3)
            if snr not in pts:
                pts[snr] = sim.run(snr, args.min_errors, args.max_blocks)
            return pts[snr]

        # start near the Shannon limit, walk down until BLER >= 0.9 ...
        snr = round(shannon * 4) / 4 + 0.5
        while True:
            err, n, _ = point(snr)
            if err / n >= 0.9 or snr < shannon - 3:
                break
            snr -= args.step
        # ... then up until no error in max_blocks blocks (or 8 dB above Shannon)
        snr = max(pts) + args.step
        while snr < shannon + 8:
            err, n, _ = point(snr)
            if err == 0:
                break
            snr += args.step
        order = sorted(pts)
        curves[str(i)] = {"snr_db": order,
                          "bler": [pts[s][0] / pts[s][1] for s in order],
                          "errors": [pts[s][0] for s in order],
                          "blocks": [pts[s][1] for s in order],
                          "mean_iterations": [round(pts[s][2], 2) for s in order]}
        print(f"MCS {i:2d} {e.modulation:6s} R={e.r1024:.0f}/1024  shannon {shannon:6.2f} dB  "
              f"points {len(order)}  ({time.time() - t0:.0f} s)", flush=True)
    data = {
        "description": "code-block BLER vs Es/N0 over AWGN per MCS (TS 38.214 Table 5.1.3.1-1), "
                       "one code block of ~n_cb coded bits, CRC24A, 38.212 rate matching + "
                       "bit interleaver, max-log demapping, layered min-sum (core.classical.ldpc); "
                       "each point runs until min_errors block errors or max_blocks blocks",
        "command": "python -m core.classical.mcs measure " + " ".join(args.argv),
        "n_cb": 4096, "max_iter": 20, "seed": args.seed, "pool": args.pool,
        "min_errors": args.min_errors, "max_blocks": args.max_blocks, "step_db": args.step,
        "curves": curves,
    }
    if args.mcs and Path(args.out).exists():        # partial re-measurement: merge
        old = json.loads(Path(args.out).read_text())
        old["curves"].update(curves)
        data["curves"] = old["curves"]
    Path(args.out).write_text(json.dumps(data, indent=1))
    _clear_threshold_caches()
    for tgt in (0.1, 0.01, 0.001):
        data[f"threshold_db_bler{tgt:g}"] = {
            k: round(mcs_threshold_db(int(k), tgt, args.out), 3)
            for k in sorted(data["curves"], key=int)}
    Path(args.out).write_text(json.dumps(data, indent=1))
    _clear_threshold_caches()
    print(json.dumps(data["threshold_db_bler0.1"]))
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m core.classical.mcs", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure", help="measure BLER curves / thresholds with our decoder")
    m.add_argument("--pool", type=int, default=256, help="encoded blocks reused per batch")
    m.add_argument("--min-errors", type=int, default=100, help="stop a point at this many errors")
    m.add_argument("--max-blocks", type=int, default=5120, help="... or at this many blocks")
    m.add_argument("--step", type=float, default=0.2, help="SNR step (dB)")
    m.add_argument("--seed", type=int, default=2024)
    m.add_argument("--mcs", default="", help="comma-separated subset (default: all)")
    m.add_argument("--out", default=str(THRESHOLDS_PATH))
    t = sub.add_parser("table", help="print the MCS table with the measured thresholds")
    t.add_argument("--bler", type=float, default=0.1)
    args = p.parse_args(argv)
    args.argv = argv[1:]
    if args.cmd == "measure":
        return _measure(args)
    for i in range(num_mcs()):
        e = mcs_entry(i)
        print(f"{i:2d} {e.modulation:6s} R={e.r1024:4.0f}/1024 SE={e.se:.4f} "
              f"thr={mcs_threshold_db(i, args.bler):6.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
