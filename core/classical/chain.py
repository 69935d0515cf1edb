"""The classical separation-based chain: codec -> 5G NR LDPC -> QAM -> channel -> back.

Schemes (names as in ``ntscc-xr eval``): ``<codec>+ldpc`` -> :class:`ClassicalChain`,
``<codec>+capacity`` -> :class:`CapacityChain`; build either with :func:`make_scheme`.

Budget: a CBR rho allows ``floor(rho * 3 * H * W)`` complex channel uses (``budget_uses``).
The transport block carries a 32-bit length field + the codec bitstream (+ CRCs); the frame
uses ``layout.num_symbols <= budget`` symbols, the rest of the budget stays idle.

Policies
--------
* Appendix A (offline, "oracle"): :meth:`ClassicalChain.sweep` tries every MCS; for each, the
  highest-rate QP whose transport block fits the budget, transmitted ``trials`` times over
  the channel; a failed frame counts as the per-channel mean image.  :meth:`best` keeps the
  MCS with the lowest average MSE for one image; :func:`select_dataset_mcs` keeps the one with
  the lowest MSE averaged over a data set (the paper's "best performing configuration ... at
  each SNR"; per-image selection with few trials is optimistic).
* Live: :meth:`ClassicalChain.plan` with ``cqi_db``: the highest MCS whose frame error rate
  at the CQI is <= ``bler_target`` (default 10 %; the live TX, without HARQ, uses 1 %:
  ``core.classical.mcs.LIVE_FRAME_ERROR_TARGET``) (:meth:`ClassicalChain.select_mcs`: measured code-block BLER
  curves, per-block target 1 - 0.9^(1/C) for a frame of C code blocks -- a 10 % *code-block*
  BLER would lose nearly every frame of 100+ blocks), then the largest-rate QP that fits.

Live split over the real PHY: ``tx = chain.symbols_for(rgb, cbr, cqi_db=...)`` gives the QAM
symbols and a small JSON-able ``tx.meta`` (the control information: MCS, QP, layout, size);
``chain.receive(y_equalised, noise_var, tx.meta)`` decodes what came back.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np

from . import mcs as M
from .codecs import BitstreamCache, Codec, CodecError, get_codec, image_key, largest_fitting, mean_image
from .codecs import mse as _mse
from .ldpc import CB_LEN_DEFAULT, TBLayout, TransportBlockCoder, max_payload_bits, quantised_payload_bits, tb_layout

__all__ = [
    "ClassicalChain", "CapacityChain", "ChainResult", "EncodedFrame", "McsOutcome",
    "make_scheme", "budget_uses", "select_dataset_mcs", "awgn_channel", "ChannelFn",
    "HEADER_BITS", "GRANT_BYTES", "grant_channel_uses",
]

#: length field in front of the bitstream inside the transport block
HEADER_BITS = 32

#: the control information a receiver needs besides the transport block (what a PDCCH grant
#: carries here): MCS (5 bits), QP (6), the per-channel mean colour shown on a failure (24),
#: the transport block's length in symbols (24) -> 59 bits, 8 bytes. Evaluations count it like
#: the learned chain's side information (``core.codec.sideinfo.side_channel_uses`` at the SNR).
GRANT_BYTES = 8


def grant_channel_uses(snr_db: float) -> int:
    """Complex channel uses of the classical grant at CQI ``snr_db`` (same rule as the
    learned side information)."""
    from core.codec.sideinfo import side_channel_uses
    return side_channel_uses(GRANT_BYTES, snr_db)

#: ``channel_fn(symbols, rng) -> (equalised symbols, noise variance (scalar or per symbol))``
ChannelFn = Callable[[np.ndarray, np.random.Generator], tuple]


def budget_uses(shape: Sequence[int], cbr: float) -> int:
    """Complex channel uses allowed by CBR ``cbr`` for an HxW RGB image."""
    return int(math.floor(float(cbr) * 3 * int(shape[0]) * int(shape[1]) + 1e-9))


def awgn_channel(snr_db: float) -> ChannelFn:
    """AWGN at Es/N0 = ``snr_db`` as a ``channel_fn``."""
    def fn(x, rng):
        return M.awgn(x, snr_db, rng)
    return fn


def _psnr_from_mse(m: float) -> float:
    return float("inf") if m <= 0 else 10.0 * math.log10(255.0 ** 2 / m)


@dataclass
class ChainResult:
    """One transmitted image."""
    scheme: str
    recon: np.ndarray = field(repr=False)
    success: bool
    codec: str
    param: object                 #: QP / quality used (None if nothing fits the budget)
    mcs: int | None
    source_bits: int              #: codec bitstream, bits
    channel_uses: int             #: complex symbols actually sent
    budget_uses: int              #: complex symbols allowed by the CBR
    cbr_budget: float
    snr_db: float | None = None
    mse: float | None = None      #: vs the original, when known
    layout: dict | None = None
    blocks: int = 0               #: code blocks in the transport block
    blocks_failed: int = 0        #: code blocks whose CRC failed (among those decoded)
    timings: dict = field(default_factory=dict)

    @property
    def psnr(self) -> float | None:
        return None if self.mse is None else _psnr_from_mse(self.mse)

    @property
    def cbr_used(self) -> float:
        h, w = self.recon.shape[:2]
        return self.channel_uses / (3 * h * w)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("recon")
        d["psnr"] = self.psnr
        d["cbr_used"] = self.cbr_used
        return d


@dataclass
class EncodedFrame:
    """The transmitter's output for one image: QAM symbols + control info (``meta``)."""
    symbols: np.ndarray           #: complex64 [num_symbols], unit average energy
    meta: dict                    #: JSON-able: scheme, codec, param, mcs, layout, shape, ...
    source_bits: int
    timings: dict = field(default_factory=dict)
    payload_bits: np.ndarray | None = field(default=None, repr=False)  #: header + bitstream

    @property
    def mcs(self) -> int:
        return int(self.meta["mcs"])

    @property
    def param(self):
        return self.meta["param"]


@dataclass
class McsOutcome:
    """Appendix-A sweep result of one MCS for one image."""
    mcs: int
    param: object                 #: QP used, None if no ladder point fits
    source_bits: int
    channel_uses: int
    trials: int
    successes: int
    codec_mse: float              #: MSE when the frame arrives
    fail_mse: float               #: MSE of the mean image
    simulated: bool = True        #: False: outcome taken from the threshold table (pruned)

    @property
    def success_rate(self) -> float:
        return self.successes / self.trials if self.trials else 0.0

    @property
    def mean_mse(self) -> float:
        if self.param is None:
            return self.fail_mse
        s = self.success_rate
        return s * self.codec_mse + (1 - s) * self.fail_mse

    @property
    def mean_psnr(self) -> float:
        """PSNR of the average MSE."""
        return _psnr_from_mse(self.mean_mse)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(mean_mse=self.mean_mse, mean_psnr=self.mean_psnr, success_rate=self.success_rate)
        return d


def select_dataset_mcs(outcomes_per_image: Sequence[Sequence[McsOutcome]]) -> int:
    """The MCS with the lowest MSE averaged over images (each inner list from
    :meth:`ClassicalChain.sweep` of one image, same CBR and SNR)."""
    acc: dict[int, list[float]] = {}
    for outs in outcomes_per_image:
        for o in outs:
            acc.setdefault(o.mcs, []).append(o.mean_mse)
    n = len(outcomes_per_image)
    full = {m: float(np.mean(v)) for m, v in acc.items() if len(v) == n}
    if not full:
        raise ValueError("no MCS was evaluated on every image")
    return min(full, key=lambda m: (full[m], -m))


def _bits_from_bytes(data: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(data, np.uint8))


def _split_scheme(name: str) -> tuple[str, str]:
    if "+" not in name:
        raise ValueError(f"scheme {name!r} is not '<codec>+ldpc' or '<codec>+capacity'")
    codec, channel = name.rsplit("+", 1)
    return codec, channel


class _ChainBase:
    channel_code = ""

    def __init__(self, codec: str | Codec = "vvc", cache: BitstreamCache | str | None = None,
                 codec_options: dict | None = None):
        self.codec = codec if isinstance(codec, Codec) else get_codec(codec, **(codec_options or {}))
        if isinstance(cache, BitstreamCache):
            self.cache = cache
        else:
            self.cache = BitstreamCache(cache)

    @property
    def name(self) -> str:
        return f"{self.codec.name}+{self.channel_code}"

    def _fit(self, rgb, max_source_bits: int, key: str, qp=None, qp_hint=None, rate_control=None):
        """Codec point: the given ``qp`` (None if it does not fit), the live rate control's
        prediction (``rate_control``: a :class:`~core.classical.ratecontrol.LiveRateControl`),
        or the largest fitting (exact search)."""
        if max_source_bits < 0:
            return None
        if rate_control is not None and qp is None:
            return rate_control.fit(rgb, max_source_bits)
        if qp is not None:
            pt = self.cache.point(self.codec, rgb, qp, key, with_data=True)
            return pt if pt.bits <= max_source_bits else None
        return largest_fitting(self.codec, rgb, max_source_bits, self.cache, key,
                               qp_hint=qp_hint)


class ClassicalChain(_ChainBase):
    """``<codec>+ldpc``: codec bitstream in one 5G NR transport block (CRC24A, code blocks of
    ~``n_cb`` coded bits with CRC24B, LDPC, rate matching, interleaving, scrambling), QAM per
    the MCS, any channel, max-log demapping, layered min-sum decoding, codec decoding.

    ``fallback``: what a failed frame shows -- ``"mean"`` (per-channel mean image, the paper)
    or ``"hold"`` (``last_good`` passed to :meth:`receive`, else the mean image).
    """
    channel_code = "ldpc"

    def __init__(self, codec: str | Codec = "vvc", cache: BitstreamCache | str | None = None,
                 codec_options: dict | None = None, n_cb: int = CB_LEN_DEFAULT,
                 max_iter: int = 20, bler_target: float = 0.1, fallback: str = "mean",
                 scramble: bool = True, thresholds_path=None):
        super().__init__(codec, cache, codec_options)
        self.n_cb = int(n_cb)
        self.max_iter = int(max_iter)
        self.bler_target = float(bler_target)
        if fallback not in ("mean", "hold"):
            raise ValueError("fallback must be 'mean' or 'hold'")
        self.fallback = fallback
        self.scramble = bool(scramble)
        self.thresholds_path = thresholds_path

    # ------------------------------------------------------------------------------ planning
    def max_source_bits(self, budget: int, mcs: int) -> int:
        """Largest codec bitstream (bits) that fits ``budget`` channel uses at ``mcs``."""
        e = M.mcs_entry(mcs)
        cap = max_payload_bits(budget, e.qm, e.rate, self.n_cb)
        return cap - HEADER_BITS if cap >= 0 else -1

    def layout_for(self, source_bits: int, mcs: int, budget: int | None = None) -> TBLayout:
        """Transport block for ``source_bits`` at ``mcs``: the exact fit, or with ``budget``
        (the live path) the size rounded up on the TBS grid
        (:func:`~core.classical.ldpc.quantised_payload_bits`) while it still fits ``budget``."""
        e = M.mcs_entry(mcs)
        exact = tb_layout(source_bits + HEADER_BITS, e.qm, e.rate, self.n_cb)
        if budget is None:
            return exact
        grid = tb_layout(quantised_payload_bits(source_bits + HEADER_BITS), e.qm, e.rate, self.n_cb)
        return grid if grid.num_symbols <= budget else exact

    def blocks_at(self, budget: int, mcs: int) -> int:
        """Code blocks of a transport block filling ``budget`` channel uses at ``mcs``."""
        e = M.mcs_entry(mcs)
        cap = max_payload_bits(budget, e.qm, e.rate, self.n_cb)
        return tb_layout(max(cap, 0), e.qm, e.rate, self.n_cb).num_cbs

    def select_mcs(self, cqi_db: float, budget: int | None = None,
                   bler_target: float | None = None) -> int:
        """Live policy: the highest MCS whose *frame* error rate at ``cqi_db`` is at most
        ``bler_target`` (default the chain's, 10 %).  A frame of C code blocks is lost if any
        block is, so the per-block target is 1 - (1 - target)^(1/C), C from ``budget``
        (None: C = 1, i.e. the plain code-block BLER threshold)."""
        t = self.bler_target if bler_target is None else bler_target
        nb = (lambda m: self.blocks_at(budget, m)) if budget else 1
        return M.select_mcs(cqi_db, t, path=self.thresholds_path, num_blocks=nb)

    def plan(self, rgb: np.ndarray, cbr: float, mcs: int | None = None, qp=None,
             cqi_db: float | None = None, qp_hint=None, rate_control=None):
        """(mcs, codec point or None, budget): the live policy when ``mcs`` is None
        (MCS from ``cqi_db``), then the given ``qp``, the ``rate_control``'s prediction, or the
        largest-rate one that fits."""
        budget = budget_uses(rgb.shape, cbr)
        if mcs is None:
            if cqi_db is None:
                raise ValueError("give mcs or cqi_db")
            mcs = self.select_mcs(cqi_db, budget)
        key = None if rate_control is not None else image_key(rgb)   # live frames are not cached
        pt = self._fit(rgb, self.max_source_bits(budget, mcs), key, qp, qp_hint, rate_control)
        return int(mcs), pt, budget

    # ------------------------------------------------------------------------------ TX / RX
    def symbols_for(self, rgb: np.ndarray, cbr: float, mcs: int | None = None, qp=None,
                    cqi_db: float | None = None, qp_hint=None, rate_control=None) -> EncodedFrame:
        """Encode one image into QAM symbols (live policy if ``mcs`` is None).  When no QP
        fits, the frame carries no symbols and ``meta['param']`` is None (the receiver
        shows the fallback)."""
        t0 = time.perf_counter()
        rgb = np.ascontiguousarray(rgb)
        mcs, pt, budget = self.plan(rgb, cbr, mcs, qp, cqi_db, qp_hint, rate_control)
        t1 = time.perf_counter()
        e = M.mcs_entry(mcs)
        meta = {"scheme": self.name, "codec": self.codec.name, "codec_tag": self.codec.tag,
                "mcs": mcs, "qm": e.qm, "shape": [int(rgb.shape[0]), int(rgb.shape[1])],
                "mean_rgb": mean_image(rgb)[0, 0].tolist(), "budget": budget,
                "cbr": float(cbr), "param": None, "layout": None, "scramble": self.scramble}
        if pt is None:
            return EncodedFrame(np.zeros(0, np.complex64), meta, 0, {"source_s": t1 - t0})
        data = pt.data
        header = np.unpackbits(np.array([len(data) * 8], ">u4").view(np.uint8))
        payload = np.concatenate([header, _bits_from_bytes(data)])
        # live frames (rate control) use the TBS grid: their LDPC codes repeat, so TX and RX
        # build each once (the offline tables keep the exact fit)
        lay = self.layout_for(len(data) * 8, mcs, budget if rate_control is not None else None)
        coded = TransportBlockCoder(lay, scramble=self.scramble).encode(payload)
        t2 = time.perf_counter()
        sym = M.modulate(coded, e.qm)
        t3 = time.perf_counter()
        meta.update(param=pt.param, layout=lay.to_dict(), source_bits=pt.bits,
                    codec_mse=pt.mse if math.isfinite(pt.mse) else None)
        return EncodedFrame(sym, meta, pt.bits,
                            {"source_s": t1 - t0, "ldpc_encode_s": t2 - t1, "modulate_s": t3 - t2},
                            payload)

    def receive(self, y: np.ndarray, noise_var, meta: dict, original: np.ndarray | None = None,
                last_good: np.ndarray | None = None, stop_on_failure: bool = False,
                snr_db: float | None = None) -> ChainResult:
        """Decode equalised symbols ``y`` (``noise_var`` scalar or per symbol) of a frame
        described by ``meta`` (from :meth:`symbols_for`)."""
        t0 = time.perf_counter()
        if meta["codec"] != self.codec.name:
            raise ValueError(f"frame coded with {meta['codec']!r}, this chain decodes "
                             f"{self.codec.name!r}")
        shape = (meta["shape"][0], meta["shape"][1], 3)
        fallback = (last_good if (self.fallback == "hold" and last_good is not None)
                    else np.broadcast_to(np.asarray(meta["mean_rgb"], np.uint8), shape).copy())
        res = ChainResult(scheme=self.name, recon=fallback, success=False, codec=meta["codec"],
                          param=meta["param"], mcs=meta["mcs"], source_bits=0,
                          channel_uses=0, budget_uses=meta["budget"], cbr_budget=meta["cbr"],
                          snr_db=snr_db, layout=meta["layout"])
        if meta["param"] is not None:
            lay = TBLayout(**meta["layout"])
            res.channel_uses = lay.num_symbols
            res.blocks = lay.num_cbs
            yy = np.asarray(y).reshape(-1)[:lay.num_symbols]
            nv = (np.asarray(noise_var) if np.ndim(noise_var) == 0
                  else np.asarray(noise_var).reshape(-1)[:yy.size])
            llr = M.demodulate(yy, lay.qm, nv)
            if llr.size < lay.coded_bits:            # symbols lost on the way: erasures
                llr = np.concatenate([llr, np.zeros(lay.coded_bits - llr.size, np.float32)])
            t1 = time.perf_counter()
            tb = TransportBlockCoder(lay, scramble=meta.get("scramble", True))
            dec = tb.decode(llr, max_iter=self.max_iter, stop_on_failure=stop_on_failure)
            t2 = time.perf_counter()
            res.blocks_failed = int((~dec.cb_ok[:dec.blocks_decoded]).sum())
            res.timings.update(demod_s=t1 - t0, ldpc_decode_s=t2 - t1)
            if dec.ok:
                nbits = int(np.packbits(dec.payload[:HEADER_BITS]).view(">u4")[0])
                if 0 < nbits <= dec.payload.size - HEADER_BITS and nbits % 8 == 0:
                    data = np.packbits(dec.payload[HEADER_BITS:HEADER_BITS + nbits]).tobytes()
                    res.source_bits = nbits
                    try:
                        rec = self.codec.decode(data, shape)
                        res.recon, res.success = rec, True
                    except CodecError:
                        pass
                res.timings["codec_decode_s"] = time.perf_counter() - t2
        if original is not None:
            res.mse = _mse(original, res.recon)
        return res

    def transmit(self, rgb: np.ndarray, cbr: float, snr_db: float | None = None,
                 channel_fn: ChannelFn | None = None, mcs: int | None = None, qp=None,
                 cqi_db: float | None = None, policy: str = "cqi", trials: int = 1,
                 rng: np.random.Generator | None = None, last_good=None,
                 stop_on_failure: bool = False) -> ChainResult:
        """Send one image end to end over AWGN at ``snr_db`` or over ``channel_fn``.

        MCS: ``mcs`` if given; else ``policy="cqi"`` (live: from ``cqi_db``, default
        ``snr_db``) or ``policy="oracle"`` (Appendix A: :meth:`best` with ``trials``
        realisations, then one fresh transmission with the chosen MCS/QP).
        """
        rng = rng if rng is not None else np.random.default_rng()
        if channel_fn is None:
            if snr_db is None:
                raise ValueError("give snr_db or channel_fn")
            channel_fn = awgn_channel(snr_db)
        if mcs is None:
            if policy == "oracle":
                best, _ = self.best(rgb, cbr, snr_db=snr_db, channel_fn=channel_fn,
                                    trials=trials, rng=rng)
                mcs, qp = best.mcs, (best.param if qp is None else qp)
            elif policy == "cqi":
                cqi = cqi_db if cqi_db is not None else snr_db
                if cqi is None:
                    raise ValueError("policy 'cqi' needs cqi_db or snr_db")
                mcs = self.select_mcs(cqi, budget_uses(rgb.shape, cbr))
            else:
                raise ValueError("policy must be 'cqi' or 'oracle'")
        t0 = time.perf_counter()
        tx = self.symbols_for(rgb, cbr, mcs=mcs, qp=qp)
        t1 = time.perf_counter()
        if tx.symbols.size:
            y, nv = channel_fn(tx.symbols, rng)
        else:
            y, nv = tx.symbols, 1.0
        res = self.receive(y, nv, tx.meta, original=rgb, last_good=last_good,
                           stop_on_failure=stop_on_failure, snr_db=snr_db)
        res.timings = {**tx.timings, **res.timings, "tx_s": t1 - t0,
                       "rx_s": time.perf_counter() - t1}
        return res

    # ------------------------------------------------------------------------------ Appendix A
    def sweep(self, rgb: np.ndarray, cbr: float, snr_db: float | None = None,
              channel_fn: ChannelFn | None = None, trials: int = 1,
              rng: np.random.Generator | None = None, mcs_list: Sequence[int] | None = None,
              prune_db: float | None = None) -> list[McsOutcome]:
        """Appendix A for one image: every MCS (or ``mcs_list``) with its largest fitting QP,
        ``trials`` channel realisations each (decoding stops at the first failed code block:
        the frame is lost anyway).

        ``prune_db`` (needs ``snr_db``): skip MCSs whose measured threshold is more than
        ``prune_db`` above the SNR (certain failure: reported with ``simulated=False`` and 0
        successes, without encoding) and all but the highest of those more than ``prune_db``
        below it (certain success and dominated by that one)."""
        rng = rng if rng is not None else np.random.default_rng()
        rgb = np.ascontiguousarray(rgb)
        if channel_fn is None:
            if snr_db is None:
                raise ValueError("give snr_db or channel_fn")
            channel_fn = awgn_channel(snr_db)
        key = image_key(rgb)
        budget = budget_uses(rgb.shape, cbr)
        fail_mse = _mse(rgb, mean_image(rgb))
        todo = list(range(M.num_mcs())) if mcs_list is None else [int(m) for m in mcs_list]
        certain_fail: set[int] = set()
        if prune_db is not None and snr_db is not None:
            thr = {m: M.mcs_threshold_db(m, self.bler_target, self.thresholds_path) for m in todo}
            certain_fail = {m for m in todo if thr[m] > snr_db + prune_db}
            safe = [m for m in todo if thr[m] < snr_db - prune_db]
            if safe:
                top = max(safe)
                todo = [m for m in todo if m not in safe or m == top]
        outs: list[McsOutcome] = []
        for m in todo:
            if m in certain_fail:
                outs.append(McsOutcome(m, None, 0, 0, trials, 0, fail_mse, fail_mse, False))
                continue
            pt = self._fit(rgb, self.max_source_bits(budget, m), key)
            if pt is None:
                outs.append(McsOutcome(m, None, 0, 0, trials, 0, fail_mse, fail_mse))
                continue
            tx = self.symbols_for(rgb, cbr, mcs=m, qp=pt.param)
            lay = TBLayout(**tx.meta["layout"])
            tb = TransportBlockCoder(lay, scramble=self.scramble)
            sent = tx.payload_bits
            ok = 0
            for _ in range(trials):
                # a frame arrives iff its transport block decodes to exactly the bits sent
                # (the codec would then reproduce the cached reconstruction: skip ffmpeg)
                y, nv = channel_fn(tx.symbols, rng)
                llr = M.demodulate(y, lay.qm, nv)
                dec = tb.decode(llr, max_iter=self.max_iter, stop_on_failure=True)
                ok += int(dec.ok and np.array_equal(dec.payload[:sent.size], sent))
            outs.append(McsOutcome(m, pt.param, pt.bits, int(tx.symbols.size), trials, ok,
                                   pt.mse, fail_mse))
        return outs

    def best(self, rgb: np.ndarray, cbr: float, snr_db: float | None = None,
             channel_fn: ChannelFn | None = None, trials: int = 1,
             rng: np.random.Generator | None = None, **kw) -> tuple[McsOutcome, list[McsOutcome]]:
        """The sweep's outcome with the lowest average MSE (ties: the higher MCS)."""
        outs = self.sweep(rgb, cbr, snr_db, channel_fn, trials, rng, **kw)
        return min(outs, key=lambda o: (o.mean_mse, -o.mcs)), outs

    def evaluate(self, rgb: np.ndarray, cbr: float, snr_db: float, trials: int = 1,
                 rng: np.random.Generator | None = None, prune_db: float | None = 2.0,
                 channel_fn: ChannelFn | None = None) -> dict:
        """One RD point of one image (Appendix A, per-image best MCS): a JSON-able dict
        with ``psnr`` (of the average MSE), ``mse``, ``mcs``, ``param``, ``success_rate``,
        ``source_bits``, ``channel_uses``, ``budget_uses``, ``cbr`` and the full ``sweep``."""
        best, outs = self.best(rgb, cbr, snr_db=snr_db, channel_fn=channel_fn, trials=trials,
                               rng=rng, prune_db=prune_db)
        return {"scheme": self.name, "cbr": float(cbr), "snr_db": snr_db,
                "psnr": best.mean_psnr, "mse": best.mean_mse, "mcs": best.mcs,
                "param": best.param, "success_rate": best.success_rate,
                "source_bits": best.source_bits, "channel_uses": best.channel_uses,
                "budget_uses": budget_uses(rgb.shape, cbr),
                "sweep": [o.to_dict() for o in outs]}


class CapacityChain(_ChainBase):
    """``<codec>+capacity``: the codec behind a capacity-achieving channel code -- the
    largest-rate QP with ``bits <= sum_i log2(1 + SNR_i)`` over the budget's channel uses
    arrives error-free (the paper's "VTM + Capacity" bound)."""
    channel_code = "capacity"

    @staticmethod
    def capacity_bits(budget: int, snr_db: float | None = None,
                      snr_per_use_db: np.ndarray | None = None) -> float:
        if snr_per_use_db is not None:
            s = 10.0 ** (np.asarray(snr_per_use_db, float) / 10.0)
            per = np.log2(1.0 + s)
            if per.size == 1:
                return float(budget * per.reshape(-1)[0])
            reps = -(-budget // per.size)
            return float(np.tile(per, reps)[:budget].sum())
        return float(budget * math.log2(1.0 + 10.0 ** (float(snr_db) / 10.0)))

    def transmit(self, rgb: np.ndarray, cbr: float, snr_db: float | None = None,
                 snr_per_use_db: np.ndarray | None = None, qp=None, **_ignored) -> ChainResult:
        """``snr_per_use_db``: SNR of each channel use (fading), cycled over the budget."""
        t0 = time.perf_counter()
        rgb = np.ascontiguousarray(rgb)
        budget = budget_uses(rgb.shape, cbr)
        cap = int(math.floor(self.capacity_bits(budget, snr_db, snr_per_use_db)))
        pt = self._fit(rgb, cap, image_key(rgb), qp)
        ok = pt is not None
        rec = self.codec.decode(pt.data, rgb.shape) if ok else mean_image(rgb)
        bits = pt.bits if ok else 0
        uses = budget if not ok else min(budget, int(math.ceil(
            budget * bits / max(cap, 1))))
        return ChainResult(scheme=self.name, recon=rec, success=ok, codec=self.codec.name,
                           param=pt.param if ok else None, mcs=None, source_bits=bits,
                           channel_uses=uses if ok else 0, budget_uses=budget,
                           cbr_budget=float(cbr), snr_db=snr_db, mse=_mse(rgb, rec),
                           timings={"total_s": time.perf_counter() - t0})

    def evaluate(self, rgb: np.ndarray, cbr: float, snr_db: float, **_ignored) -> dict:
        """Same signature and keys as :meth:`ClassicalChain.evaluate` (``mcs`` is None)."""
        r = self.transmit(rgb, cbr, snr_db=snr_db)
        return {"scheme": self.name, "cbr": float(cbr), "snr_db": snr_db, "psnr": r.psnr,
                "mse": r.mse, "mcs": None, "param": r.param, "success_rate": float(r.success),
                "source_bits": r.source_bits, "channel_uses": r.channel_uses,
                "budget_uses": r.budget_uses}


def make_scheme(name: str, cache: BitstreamCache | str | None = None,
                codec_options: dict | None = None, **options):
    """``"vvc+ldpc"`` -> :class:`ClassicalChain`, ``"jpeg+capacity"`` -> :class:`CapacityChain`.
    ``codec_options`` go to the codec (e.g. ``{"preset": "faster"}``), ``options`` to the
    chain."""
    codec, channel = _split_scheme(name)
    if channel == "ldpc":
        return ClassicalChain(codec, cache=cache, codec_options=codec_options, **options)
    if channel == "capacity":
        return CapacityChain(codec, cache=cache, codec_options=codec_options)
    raise ValueError(f"unknown channel code {channel!r} in {name!r} (ldpc or capacity)")
