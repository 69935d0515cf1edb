"""5G NR LDPC, transport blocks, MCS and QAM -- against sionna as the reference."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core.classical import ldpc as L
from core.classical import mcs as M


def _bpsk_llr(c, snr_db, rng):
    """BPSK (+1 for bit 0) over real AWGN at Es/N0 = snr_db: logit p1/p0 LLRs."""
    sig2 = 0.5 * 10 ** (-snr_db / 10)
    y = (1 - 2 * c.astype(np.float32)) + math.sqrt(sig2) * rng.standard_normal(c.shape).astype(np.float32)
    return (-2 * y / sig2).astype(np.float32)


# ------------------------------------------------------------------------------- CRC / scrambler

@pytest.mark.parametrize("poly,fn", [("CRC24A", L.crc24a), ("CRC24B", L.crc24b)])
def test_crc_matches_sionna(poly, fn):
    from sionna.phy.fec.crc import CRCEncoder
    x = np.random.default_rng(0).integers(0, 2, (4, 517)).astype(np.uint8)
    ref = CRCEncoder(poly)(torch.from_numpy(x.astype(np.float32))).numpy()[:, -24:]
    assert np.array_equal(ref.astype(np.uint8), fn(x))


def test_scrambler_matches_sionna():
    from sionna.phy.nr.utils import generate_prng_seq
    c_init = (7 << 15) + 3
    assert np.array_equal(generate_prng_seq(3000, c_init).astype(np.uint8),
                          L.scrambling_sequence(3000, n_rnti=7, n_id=3))


# ------------------------------------------------------------------------------- code blocks

CODES = [  # (k, n, qm): BG2 mid rate, BG1 high rate, BG2 with repetition (R < 1/5), 64QAM
    (2048, 4096, 4), (3600, 4096, 2), (480, 4096, 2), (1500, 2400, 6)]


@pytest.mark.parametrize("k,n,qm", CODES)
def test_zero_errors_at_high_snr(k, n, qm):
    rng = np.random.default_rng(k)
    code = L.get_code(k, n, qm)
    u = rng.integers(0, 2, (16, k), dtype=np.uint8)
    c = code.encode(u)
    assert c.shape == (16, n) and set(np.unique(c)) <= {0, 1}
    res = code.decode(_bpsk_llr(c, 8.0, rng))
    assert np.array_equal(res.bits, u)
    assert res.converged.all() and res.iterations.max() <= 5


@pytest.mark.parametrize("k,n,qm", CODES + [(24, 48, 2), (300, 1000, 2), (8000, 8648, 2)])
def test_encoder_bit_exact_with_sionna(k, n, qm):
    code = L.LDPC5GCode(k, n, qm)
    u = np.random.default_rng(n).integers(0, 2, (8, k), dtype=np.uint8)
    assert np.array_equal(code.encode(u, engine="numba"), code.encode(u, engine="sionna"))


def test_bg_and_repetition_structure():
    assert L.get_code(2048, 4096).bg == "bg2"
    assert L.get_code(3600, 4096).bg == "bg1"
    rep = L.get_code(480, 4096, 2)
    assert rep.n_mother < rep.n and rep.n_mother <= 5 * rep.k


@pytest.mark.parametrize("k,n,snr", [(2048, 4096, -1.0), (3400, 4096, 3.0)])
def test_agrees_with_sionna_decoder(k, n, snr):
    """Same LLRs into sionna's LDPC5GDecoder and ours: identical info bits (= sent)."""
    rng = np.random.default_rng(5)
    code = L.get_code(k, n)
    u = rng.integers(0, 2, (6, k), dtype=np.uint8)
    llr = _bpsk_llr(code.encode(u), snr, rng)
    ref = code.sionna_decoder(num_iter=20)(torch.from_numpy(llr)).numpy().astype(np.uint8)
    ours = code.decode(llr).bits
    assert np.array_equal(ref, u)
    assert np.array_equal(ours, ref)


def test_not_worse_than_sionna_near_threshold():
    """At an SNR where sionna's flooding BP fails often, layered min-sum fails no more often."""
    rng = np.random.default_rng(9)
    code = L.get_code(3400, 4096)
    u = rng.integers(0, 2, (32, 3400), dtype=np.uint8)
    llr = _bpsk_llr(code.encode(u), 2.0, rng)
    ref = code.sionna_decoder(num_iter=20)(torch.from_numpy(llr)).numpy().astype(np.uint8)
    fer_ref = np.mean(np.any(ref != u, 1))
    fer = np.mean(np.any(code.decode(llr).bits != u, 1))
    assert 0.2 < fer_ref < 1.0
    assert fer <= fer_ref + 0.05


# ------------------------------------------------------------------------------- transport blocks

@pytest.mark.parametrize("payload,mcs", [(30, 5), (3000, 13), (40000, 20), (20000, 0)])
def test_tb_round_trip_and_failure_detection(payload, mcs):
    rng = np.random.default_rng(payload)
    e = M.mcs_entry(mcs)
    lay = L.tb_layout(payload, e.qm, e.rate)
    assert lay.payload_bits >= payload and lay.k_cb / lay.e_cb <= e.rate + 1e-9
    assert lay.e_cb <= 4096 + e.qm and lay.coded_bits % e.qm == 0
    tb = L.TransportBlockCoder(lay)
    p = rng.integers(0, 2, payload, dtype=np.uint8)
    c = tb.encode(p)
    assert c.size == lay.coded_bits
    llr = -8.0 * (1 - 2 * c.astype(np.float32))
    r = tb.decode(llr)
    assert r.ok and np.array_equal(r.payload[:payload], p) and r.cb_ok.all()
    # wipe the first code block: detected (CB CRC, or the TB CRC with one block)
    bad = llr.copy()
    bad[: lay.e_cb] = rng.standard_normal(lay.e_cb) * 8
    r2 = tb.decode(bad, stop_on_failure=True)
    assert not r2.ok and not r2.cb_ok[0]
    if lay.num_cbs > 4:
        assert r2.blocks_decoded < lay.num_cbs        # stopped early


def test_max_payload_fits():
    for mcs in (0, 9, 16, 28):
        e = M.mcs_entry(mcs)
        for uses in (500, 4000, 47186):
            a = L.max_payload_bits(uses, e.qm, e.rate)
            assert L.tb_layout(a, e.qm, e.rate).num_symbols <= uses
            assert L.tb_layout(a + 200, e.qm, e.rate).num_symbols > uses * 0.99


# ------------------------------------------------------------------------------- MCS / QAM

def test_mcs_table_matches_sionna():
    from sionna.phy.nr.utils import decode_mcs_index
    assert M.num_mcs() == 29
    for i in range(M.num_mcs()):
        qm, r = decode_mcs_index(i, table_index=1, is_pusch=False)
        e = M.mcs_entry(i)
        assert e.qm == int(qm) and abs(e.rate - float(r)) < 1e-6
        assert abs(e.se - e.qm * e.rate) < 1e-3


@pytest.mark.parametrize("qm", [2, 4, 6, 8])
def test_qam_matches_sionna(qm):
    from sionna.phy.mapping import Constellation, Demapper
    rng = np.random.default_rng(qm)
    pts = Constellation("qam", qm).points.numpy()
    assert np.allclose(M.constellation(qm), pts, atol=1e-6)
    bits = rng.integers(0, 2, qm * 500).astype(np.uint8)
    x = M.modulate(bits, qm)
    lab = (bits.reshape(-1, qm) * (1 << np.arange(qm - 1, -1, -1))).sum(1)
    assert np.allclose(x, pts[lab], atol=1e-6)
    assert abs(np.mean(np.abs(M.constellation(qm)) ** 2) - 1) < 1e-5
    y, nv = M.awgn(x, 8.0, rng)
    for method in ("maxlog", "app"):
        ref = Demapper(method, "qam", qm)(torch.from_numpy(y), torch.tensor(nv)).numpy()
        ours = M.demodulate(y, qm, nv, method=method)
        assert np.allclose(ours, ref, rtol=1e-4, atol=1e-3 * np.abs(ref).max())
    # per-symbol noise variance: same as scalar when constant
    assert np.allclose(M.demodulate(y, qm, np.full(y.size, nv)), M.demodulate(y, qm, nv))


def test_thresholds_monotone_and_near_shannon():
    thr = [M.mcs_threshold_db(i) for i in range(M.num_mcs())]
    assert np.all(np.diff(thr) > 0), thr
    for i, t in enumerate(thr):
        e = M.mcs_entry(i)
        shannon = 10 * math.log10(2 ** (e.qm * e.rate) - 1)
        assert 0.3 < t - shannon < 3.5, (i, t, shannon)
    assert M.select_mcs(-20) == 0 and M.select_mcs(40) == 28
    picks = [M.select_mcs(s) for s in np.arange(-8, 22, 0.5)]
    assert picks == sorted(picks)
    assert M.select_mcs(10.0, bler_target=0.01) <= M.select_mcs(10.0, bler_target=0.1)


@pytest.mark.parametrize("mcs", [4, 15, 22])
def test_bler_waterfall(mcs):
    """BLER falls from ~1 to ~0 within +-1.5 dB of the measured threshold."""
    rng = np.random.default_rng(mcs)
    thr = M.mcs_threshold_db(mcs)
    hi, _ = M.simulate_bler(mcs, thr - 1.5, 60, rng)
    mid, _ = M.simulate_bler(mcs, thr, 100, rng)
    lo, _ = M.simulate_bler(mcs, thr + 1.5, 60, rng)
    assert hi >= 0.9
    assert 0.0 < mid < 0.4
    assert lo <= 0.02
