"""The classical chain end to end: real codecs, real 5G LDPC, QAM, AWGN -- and the cliff."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.classical import mcs as M
from core.classical.chain import CapacityChain, ClassicalChain, budget_uses, make_scheme, select_dataset_mcs
from core.classical.codecs import BitstreamCache, mean_image, psnr

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def img():
    return np.asarray(Image.open(FIX / "baseline_erp_petra_128x64.png").convert("RGB"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return BitstreamCache(tmp_path_factory.mktemp("codec-cache"))


def test_make_scheme(cache):
    c = make_scheme("vvc+ldpc", cache=cache, codec_options={"preset": "faster"})
    assert isinstance(c, ClassicalChain) and c.name == "vvc+ldpc" and c.codec.preset == "faster"
    assert isinstance(make_scheme("jpeg+capacity", cache=cache), CapacityChain)
    with pytest.raises(ValueError):
        make_scheme("vvc+turbo")
    assert budget_uses((512, 768), 0.04) == 47185


@pytest.mark.parametrize("mcs", [5, 16])
def test_cliff(img, cache, mcs):
    """Below the MCS threshold the frame is lost (mean image), above it the codec PSNR."""
    chain = ClassicalChain("jpeg", cache=cache)
    thr = M.mcs_threshold_db(mcs)
    rng = np.random.default_rng(mcs)
    good = chain.transmit(img, 0.25, snr_db=thr + 2.0, mcs=mcs, rng=rng)
    assert good.success and good.mcs == mcs and good.param is not None
    pt = chain.cache.point(chain.codec, img, good.param)
    assert abs(good.psnr - pt.psnr) < 1e-9
    assert good.channel_uses <= good.budget_uses == budget_uses(img.shape, 0.25)
    assert good.source_bits == pt.bits
    bad = chain.transmit(img, 0.25, snr_db=thr - 2.0, mcs=mcs, rng=rng)
    assert not bad.success and bad.blocks_failed >= 1
    assert np.array_equal(bad.recon, mean_image(img))
    assert bad.psnr < good.psnr - 5


def test_live_policy_and_split(img, cache):
    chain = ClassicalChain("jpeg", cache=cache)
    rng = np.random.default_rng(3)
    tx = chain.symbols_for(img, 0.3, cqi_db=12.0)
    budget = budget_uses(img.shape, 0.3)
    assert tx.mcs == chain.select_mcs(12.0, budget)
    nb = chain.blocks_at(budget, tx.mcs)
    assert M.mcs_threshold_db(tx.mcs, M.cb_target(0.1, nb)) <= 12.0
    assert tx.mcs == 28 or M.mcs_threshold_db(
        tx.mcs + 1, M.cb_target(0.1, chain.blocks_at(budget, tx.mcs + 1))) > 12.0
    assert chain.select_mcs(12.0, budget) <= M.select_mcs(12.0)
    assert tx.symbols.dtype == np.complex64
    assert tx.symbols.size <= budget_uses(img.shape, 0.3)
    # the chosen QP is the largest-rate one that fits: the next ladder point does not
    lad = list(chain.codec.ladder)
    i = lad.index(tx.param)
    if i + 1 < len(lad):
        nxt = chain.cache.bits(chain.codec, img, lad[i + 1])
        assert nxt > chain.max_source_bits(budget_uses(img.shape, 0.3), tx.mcs)
    # per-symbol noise variances, as after OFDM equalisation
    nv = np.full(tx.symbols.size, M.noise_var_from_snr(14.0))
    y = tx.symbols + (rng.standard_normal(tx.symbols.size)
                      + 1j * rng.standard_normal(tx.symbols.size)) * np.sqrt(nv / 2)
    import json
    meta = json.loads(json.dumps(tx.meta))            # must survive a JSON frame header
    res = chain.receive(y.astype(np.complex64), nv, meta, original=img)
    assert res.success and res.psnr > 25
    # a truncated burst (symbols lost): a failed frame, not an exception
    short = chain.receive(y[: y.size // 2].astype(np.complex64), nv[: y.size // 2], meta,
                          original=img)
    assert not short.success
    # a corrupted frame: hold the last good one when asked
    hold = ClassicalChain("jpeg", cache=cache, fallback="hold")
    res2 = hold.receive(np.zeros_like(y), 1.0, meta, original=img, last_good=res.recon)
    assert not res2.success and np.array_equal(res2.recon, res.recon)


def test_nothing_fits(img, cache):
    res = ClassicalChain("jpeg", cache=cache).transmit(img, 0.001, snr_db=10, mcs=0)
    assert not res.success and res.param is None and res.channel_uses == 0
    assert np.array_equal(res.recon, mean_image(img))


def test_vvc_ldpc_end_to_end(img, cache):
    chain = make_scheme("vvc+ldpc", cache=cache, codec_options={"preset": "faster"})
    res = chain.transmit(img, 0.1, snr_db=15.0, rng=np.random.default_rng(0))
    assert res.success and res.psnr > 27
    assert res.mcs == chain.select_mcs(15.0, budget_uses(img.shape, 0.1))


def test_appendix_a_sweep(img, cache):
    chain = ClassicalChain("jpeg", cache=cache)
    rng = np.random.default_rng(11)
    best, outs = chain.best(img, 0.25, snr_db=8.0, trials=2, rng=rng)
    assert best.mean_mse == min(o.mean_mse for o in outs)
    assert best.success_rate == 1.0
    # MCS far above the SNR never arrive, those far below always do
    by = {o.mcs: o for o in outs}
    assert by[28].successes == 0
    low = [o for o in outs if o.param is not None and M.mcs_threshold_db(o.mcs) < 8.0 - 2]
    assert low and all(o.successes == o.trials for o in low)
    # pruning keeps the winner
    best2, outs2 = chain.best(img, 0.25, snr_db=8.0, trials=2, rng=rng, prune_db=2.0)
    assert best2.mcs == best.mcs and len(outs2) < len(outs)
    assert select_dataset_mcs([outs, outs2]) == best.mcs
    # the oracle transmit uses the sweep's choice
    res = chain.transmit(img, 0.25, snr_db=8.0, policy="oracle", trials=1, rng=rng)
    assert res.success


def test_capacity_bound(img, cache):
    cap = make_scheme("jpeg+capacity", cache=cache)
    ldpc = ClassicalChain("jpeg", cache=cache)
    budget = budget_uses(img.shape, 0.25)
    prev = -1.0
    for snr in (4.0, 8.0, 12.0):
        r = cap.transmit(img, 0.25, snr_db=snr)
        assert r.success and r.source_bits <= budget * math.log2(1 + 10 ** (snr / 10))
        assert r.psnr >= prev
        prev = r.psnr
        # a capacity-achieving code is never worse than the real chain
        best, _ = ldpc.best(img, 0.25, snr_db=snr, trials=1, rng=np.random.default_rng(1),
                            prune_db=2.0)
        assert r.psnr >= best.mean_psnr - 1e-9
    # fading: per-use SNRs
    r = cap.transmit(img, 0.25, snr_per_use_db=np.array([0.0, 20.0]))
    assert r.success
    assert abs(psnr(img, r.recon) - r.psnr) < 1e-9


def test_evaluate_uniform_api(img, cache):
    import json
    for name in ("jpeg+ldpc", "jpeg+capacity"):
        d = make_scheme(name, cache=cache).evaluate(img, 0.25, 10.0, trials=1,
                                                    rng=np.random.default_rng(2))
        json.dumps(d)
        assert d["scheme"] == name and d["psnr"] > 20 and d["channel_uses"] <= d["budget_uses"]


def test_outer_loop_link_adaptation_reaches_the_bler_target():
    """OLLA against a CQI that is 2 dB optimistic with 1 dB jitter: a frame fails when the
    CQI error exceeds the back-off. The back-off must settle where 10 % of frames fail,
    i.e. near 2 + 1.28 dB, whatever the initial margin."""
    rng = np.random.default_rng(0)
    olla = M.OuterLoopLinkAdaptation(bler_target=0.1, step_db=0.5)
    fails, margins = [], []
    for i in range(6000):
        ok = 2.0 + rng.standard_normal() <= olla.margin_db
        olla.observe(ok)
        if i >= 1000:
            fails.append(not ok); margins.append(olla.margin_db)
    assert 0.08 < np.mean(fails) < 0.12
    assert abs(np.mean(margins) - 3.28) < 0.3
    with pytest.raises(ValueError):
        M.OuterLoopLinkAdaptation(bler_target=1.0)
    fresh = M.OuterLoopLinkAdaptation(step_db=1.0)
    fresh.observe(False)
    assert fresh.margin_db == 1.0 and fresh.effective_cqi(10.0) == 9.0


def test_live_policy_aims_at_one_percent_frame_errors_without_harq():
    """No HARQ on the live link: the TX's default frame-error target is 1 %, the MCS it picks
    is never above the 10 % one, and the policy is stated for the viewer and the report."""
    import argparse

    from tx.app import add_arguments
    from tx.classical import LIVE_FRAME_ERROR_TARGET, policy_text
    p = argparse.ArgumentParser()
    add_arguments(p)
    assert p.parse_args([]).classical_bler_target == LIVE_FRAME_ERROR_TARGET == 0.01
    budget = budget_uses((256, 512), 0.04)
    strict = ClassicalChain("jpeg", bler_target=0.01)
    loose = ClassicalChain("jpeg", bler_target=0.1)
    picks = [(strict.select_mcs(s, budget), loose.select_mcs(s, budget)) for s in (6, 8, 10, 12)]
    assert all(a <= b for a, b in picks) and any(a < b for a, b in picks)
    assert policy_text(0.01, True) == "no HARQ, frame-error target 1 % (OLLA)"
    assert policy_text(0.01, False, "hevc") == "x265 ultrafast · no HARQ, frame-error target 1 %"


def test_live_receiver_llrs_use_the_per_subcarrier_snr_on_multipath(img, cache):
    """Through the real numpy OFDM modem (pilot channel estimate, per-RE equaliser, the PHY's
    own per-carrier SNR) over the static 3-tap multipath channel at 8 dB: LLRs weighted with
    each carrier's variance decode every code block; one scalar variance (the frame SNR)
    loses most of them -- real LDPC decoding, no mocks."""
    import json

    from core.phy.ofdm import DEFAULT_CONFIG as cfg
    from flowgraphs.channel import multipath_taps
    from flowgraphs.ofdm_dsp import FrameModulator, StreamReceiver
    from rx.classical import ClassicalReceiver, per_symbol_noise_var

    chain = ClassicalChain("jpeg", cache=cache)
    txs = [chain.symbols_for(img, 0.3, mcs=10) for _ in range(2)]
    rng = np.random.default_rng(5)
    a = np.sqrt(10 ** (8.0 / 10) * cfg.n_occupied / cfg.fft_size)
    mod = FrameModulator(cfg)
    parts = [np.zeros(500, np.complex64)]
    for i, tx in enumerate(txs):
        parts += [a * mod.modulate(tx.symbols, i, 1), np.zeros(300, np.complex64)]
    sig = np.convolve(np.concatenate(parts + [np.zeros(4000, np.complex64)]), multipath_taps())
    sig = (sig + (rng.standard_normal(sig.size) + 1j * rng.standard_normal(sig.size))
           / np.sqrt(2)).astype(np.complex64)
    frames = StreamReceiver(cfg).feed(sig)
    assert len(frames) == 2
    fails = {True: 0, False: 0}
    blocks = 0
    for f in frames:
        tx = txs[f.header.frame_id]
        blocks += tx.meta["layout"]["num_cbs"]
        nv = per_symbol_noise_var(f.symbols.size, f.subcarrier_snr_db)
        assert nv is not None and nv.max() / nv.min() > 10        # the notch is seen
        for per_sc in (True, False):
            rec, extra = ClassicalReceiver(per_subcarrier=per_sc).decode(
                f.symbols, {}, json.dumps(tx.meta).encode(), f.cqi_db, f.subcarrier_snr_db)
            assert extra["llr_noise"] == ("per-subcarrier" if per_sc else "scalar")
            fails[per_sc] += extra["blocks_failed"]
    assert fails[True] == 0 and fails[False] >= blocks // 2
    # no usable report (missing / wrong length / NaN): the scalar stands in
    assert per_symbol_noise_var(10, None) is None
    assert per_symbol_noise_var(10, np.zeros(7)) is None
    assert per_symbol_noise_var(10, np.full(cfg.n_occupied, np.nan)) is None
