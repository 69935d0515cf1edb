"""QA of the OFDM configuration helpers (core/phy/ofdm.py) and the numpy modem
(flowgraphs/ofdm_dsp.py) without GNU Radio: known vectors, structure, and a numpy channel."""
from __future__ import annotations

import numpy as np
import pytest

from core.phy.ofdm import HEADER_BITS, OfdmConfig, PhyHeader, crc16_ccitt, prbs_bits
from flowgraphs.channel import DEFAULT_TRACE, ChannelState, SnrTrace, fractional_delay, multipath_taps
from flowgraphs.ofdm_dsp import FrameModulator, StreamReceiver, bessel_j0, doppler_from_correlation

CFG = OfdmConfig()


def _symbols(n, seed=0):
    rng = np.random.default_rng(seed)
    return ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)).astype(np.complex64)


# ------------------------------------------------------------------ config helpers
def test_occupied_carriers_dc_null_and_guards():
    k = CFG.occupied_carriers
    assert k.size == CFG.n_occupied and 0 not in k
    assert k.min() == -CFG.n_occupied // 2 and k.max() == CFG.n_occupied // 2
    assert np.all(np.diff(k) > 0)
    occ, null = set(CFG.occupied_bins.tolist()), set(CFG.null_bins.tolist())
    assert not occ & null and 0 not in null and 0 not in occ
    assert len(null) >= 40  # enough guard carriers for the noise estimate


def test_prbs_and_crc_known_vectors():
    b = prbs_bits(2 * 511, seed=0x1FF, order=9)
    np.testing.assert_array_equal(b[:511], b[511:])  # m-sequence period 2^9 - 1
    assert int(b[:511].sum()) == 256  # balance of an m-sequence
    assert all(not np.array_equal(b[:511], np.roll(b[:511], s)) for s in (1, 2, 100))
    assert crc16_ccitt(b"123456789") == 0x29B1  # CRC-16/CCITT-FALSE check value
    with pytest.raises(ValueError):
        prbs_bits(4, seed=0)


def test_pilot_pattern_scattered():
    n_sym = 24
    m = CFG.pilot_mask(n_sym)
    P = CFG.pilot_period
    assert P == CFG.pilot_spacing // CFG.pilot_shift == 4
    # only every pilot_shift-th carrier carries pilots, each exactly every P symbols
    cols = np.nonzero(m.any(axis=0))[0]
    np.testing.assert_array_equal(cols, CFG.pilot_carrier_index)
    for c, ph in zip(CFG.pilot_carrier_index, CFG.pilot_carrier_phase):
        np.testing.assert_array_equal(np.nonzero(m[:, c])[0], np.arange(ph, n_sym, P))
    # each symbol has one comb of spacing pilot_spacing; the comb moves by pilot_shift
    for n in range(n_sym):
        idx = np.nonzero(m[n])[0]
        assert np.all(np.diff(idx) == CFG.pilot_spacing)
        assert idx[0] == CFG.pilot_shift * (n % P)
    # first and last occupied carriers are covered within pilot_shift
    assert CFG.pilot_carrier_index[0] == 0 and CFG.n_occupied - 1 - CFG.pilot_carrier_index[-1] < CFG.pilot_shift
    v = CFG.pilot_values(n_sym)
    assert set(np.unique(v).tolist()) == {-1.0, 1.0}


def test_per_length_tables_are_shared_read_only_and_match_a_fresh_build():
    """The modem keeps pilot masks, pilot values and RE index lists per frame length: a
    caller must not be able to change the shared copy, and the kept copy is what a fresh
    configuration builds."""
    for n_sym in (1, 7, 24, 105):
        for table in (CFG.pilot_mask(n_sym), CFG.pilot_values(n_sym), CFG.re_index(n_sym, 4),
                      CFG.re_index(n_sym, 0, pilots=True)):
            with pytest.raises(ValueError):
                table[..., 0] = 0
        fresh = OfdmConfig()
        np.testing.assert_array_equal(CFG.re_index(n_sym, 3), fresh.re_index(n_sym, 3))
        np.testing.assert_array_equal(CFG.pilot_mask(n_sym), fresh.pilot_mask(n_sym))
        assert CFG.re_index(n_sym, 3) is CFG.re_index(n_sym, 3)


def test_time_interpolation_matrices_apply_the_wiener_taps():
    """H_t = M_p @ pilots_p (one product per pilot phase) equals the tap-by-tap weighted sum."""
    from flowgraphs.ofdm_dsp import PilotChannelEstimator
    est = PilotChannelEstimator(CFG)
    rng = np.random.default_rng(3)
    n_sym, P = 37, CFG.pilot_period
    taps, weights, _, matrices = est.time_filter(n_sym, doppler=0.01, delta=0.1)
    for p in range(P):
        pilots = (rng.standard_normal((len(range(p, n_sym, P)), 5))
                  + 1j * rng.standard_normal((len(range(p, n_sym, P)), 5))).astype(np.complex64)
        grid = np.zeros((n_sym, 5), np.complex64)
        grid[p::P] = pilots
        by_taps = np.einsum("sk,skc->sc", weights[p], grid[taps[p]])
        np.testing.assert_allclose(matrices[p] @ pilots, by_taps, rtol=1e-5, atol=1e-6)


def test_capacity_and_frame_length_consistent():
    for n in [0, 1, 182, 183, 184, 733, 734, 20000, 200000]:
        nd = CFG.n_data_symbols(n)
        cap = CFG.data_capacity(nd, CFG.n_header_symbols)
        assert cap >= n
        if nd:
            assert CFG.data_capacity(nd - 1, CFG.n_header_symbols) < n  # minimal
        g = FrameModulator(CFG).grid(_symbols(n), 1)
        assert g.shape == (CFG.n_header_symbols + nd, CFG.n_occupied)
        assert int((~CFG.pilot_mask(g.shape[0])[CFG.n_header_symbols:]).sum()) == cap
        assert CFG.frame_samples(n) == (2 + g.shape[0]) * CFG.symbol_len
    assert 0 < CFG.payload_overhead(20000) < 0.5


def test_header_bits_round_trip_and_crc():
    h = PhyHeader(frame_id=0xCAFEBABE, n_symbols=199_999, stream=2)
    bits = h.to_bits()
    assert bits.size == HEADER_BITS
    assert PhyHeader.from_bits(bits) == h
    for i in range(HEADER_BITS):  # every single-bit error is caught
        b = bits.copy()
        b[i] ^= 1
        assert PhyHeader.from_bits(b) is None
    with pytest.raises(ValueError):
        PhyHeader(1, 1 << 24).to_bits()


def test_header_bpsk_repetition_survives_noise_and_flips():
    h = PhyHeader(frame_id=77, n_symbols=1234, stream=1)
    s = CFG.header_symbols(h)
    assert s.size == CFG.header_capacity and set(np.unique(s).tolist()) == {-1.0, 1.0}
    assert CFG.header_repetition() > 8
    rng = np.random.default_rng(5)
    # Es/N0 = 0 dB: the real part of the noise has variance 1/2
    ok = sum(CFG.header_decode(s + rng.normal(0, np.sqrt(0.5), s.size)) == h for _ in range(50))
    assert ok >= 49
    flipped = s.copy()
    for b in range(HEADER_BITS):  # a third of every bit's repetitions inverted
        idx = np.nonzero(CFG.header_bit_index == b)[0]
        flipped[idx[:len(idx) // 3]] *= -1
    assert CFG.header_decode(flipped) == h
    assert CFG.header_decode(rng.normal(0, 1, s.size)) is None  # noise alone fails the CRC


def test_preamble_structure():
    p = CFG.preamble
    sl, cp, N = CFG.symbol_len, CFG.cp_len, CFG.fft_size
    assert p.size == 2 * sl and p.dtype == np.complex64
    body1 = p[cp:sl]
    np.testing.assert_allclose(body1[:N // 2], body1[N // 2:], atol=1e-5)  # Schmidl & Cox halves
    np.testing.assert_allclose(p[:cp], p[sl - cp:sl], atol=1e-6)  # cyclic prefix
    assert np.mean(np.abs(p) ** 2) == pytest.approx(1.0, rel=0.05)  # unit burst power
    p1, p2 = CFG.preamble_freq()
    assert np.all(p1[CFG.occupied_carriers % 2 == 1] == 0)
    np.testing.assert_allclose(np.abs(p2), 1.0)


def test_to_time_is_inverse_of_fft():
    g = _symbols(3 * CFG.n_occupied).reshape(3, -1)
    t = CFG.to_time(g).reshape(3, CFG.symbol_len)[:, CFG.cp_len:]
    Y = np.fft.fft(t, axis=1) / np.sqrt(CFG.fft_size) / CFG.tx_scale
    np.testing.assert_allclose(Y[:, CFG.occupied_bins], g, atol=1e-4)
    assert np.abs(Y[:, CFG.null_bins]).max() < 1e-4


def test_bessel_and_doppler_inversion():
    assert bessel_j0(np.array(0.0)) == pytest.approx(1.0)
    assert bessel_j0(np.array(1.0)) == pytest.approx(0.7651976866, abs=1e-6)
    assert bessel_j0(np.array(2.404825557695773)) == pytest.approx(0.0, abs=1e-6)
    fd = 0.02
    rho = float(bessel_j0(np.array(2 * np.pi * fd * 4)))
    assert doppler_from_correlation(rho, 4) == pytest.approx(fd, rel=1e-3)


# ------------------------------------------------------------------ modem over a numpy channel
def _link(payloads, snr_db, taps=None, cfo=0.0, gap=300, chunk=8192, seed=1, eq="ummse"):
    rng = np.random.default_rng(seed)
    mod = FrameModulator(CFG)
    a = np.sqrt(10 ** (snr_db / 10) * CFG.n_occupied / CFG.fft_size)
    parts = [np.zeros(777, np.complex64)]
    for i, x in enumerate(payloads):
        parts += [a * mod.modulate(x, i, 2), np.zeros(gap, np.complex64)]
    parts.append(np.zeros(4000, np.complex64))
    sig = np.concatenate(parts)
    if taps is not None:
        sig = np.convolve(sig, taps)[:sig.size]
    sig = sig * np.exp(2j * np.pi * cfo / CFG.fft_size * np.arange(sig.size))
    sig = (sig + (rng.standard_normal(sig.size) + 1j * rng.standard_normal(sig.size)) / np.sqrt(2)).astype(np.complex64)
    rx = StreamReceiver(CFG, equaliser=eq)
    out = []
    for i in range(0, sig.size, chunk):
        out += rx.feed(sig[i:i + chunk])
    return out, rx


def _snr(x, xh):
    return 10 * np.log10(np.mean(np.abs(x) ** 2) / np.mean(np.abs(xh - x) ** 2))


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 25.0])
def test_modem_awgn(snr_db):
    xs = [_symbols(8000, s) for s in range(4)]
    res, rx = _link(xs, snr_db)
    assert [r.header.frame_id for r in res] == [0, 1, 2, 3]
    for r in res:
        x = xs[r.header.frame_id]
        assert r.symbols.size == x.size and r.header.stream == 2
        assert abs(_snr(x, r.symbols) - snr_db) < 1.0
        assert abs(r.cqi_db - snr_db) < 0.6
        assert r.subcarrier_snr_db.shape == (CFG.n_occupied,)
        assert abs(np.median(r.subcarrier_snr_db) - snr_db) < 1.0
    assert rx.stats["header_failures"] == 0


def test_modem_cfo_fractional_and_integer():
    xs = [_symbols(6000, s) for s in range(3)]
    for cfo in (0.31, -2.6):  # subcarrier spacings; -2.6 needs the integer search
        res, _ = _link(xs, 15.0, cfo=cfo)
        assert len(res) == 3
        for r in res:
            assert r.cfo == pytest.approx(cfo, abs=0.01)
            assert _snr(xs[r.header.frame_id], r.symbols) > 13.5


def test_modem_multipath_per_carrier_snr():
    xs = [_symbols(20000, s) for s in range(2)]
    h = np.convolve(multipath_taps(), fractional_delay(0.4))
    res, _ = _link(xs, 15.0, taps=h)
    assert len(res) == 2
    for r in res:
        assert abs(r.cqi_db - 15.0) < 1.0
        # the per-subcarrier SNR shows the notch of the 3-tap channel
        assert r.subcarrier_snr_db.max() - r.subcarrier_snr_db.min() > 10


def test_modem_chunking_back_to_back_and_sizes():
    xs = [_symbols(n, n) for n in (0, 1, 183, 5000, 200_000)]
    whole, _ = _link(xs, 20.0, gap=0, chunk=10 ** 7)
    small, _ = _link(xs, 20.0, gap=0, chunk=997)
    assert [r.header.n_symbols for r in whole] == [0, 1, 183, 5000, 200_000]
    for a, b in zip(whole, small):
        np.testing.assert_allclose(a.symbols, b.symbols, atol=1e-4)
    big = whole[-1]
    assert _snr(xs[-1], big.symbols) > 19.0


def _rising_edges(sig, threshold=0.10):
    """What flowgraphs.blocks.SchmidlCoxTrigger tags: samples n where the metric of the window
    n - 2L + 1 .. n rises above the threshold (numpy emulation of the stock-block chain)."""
    L = CFG.fft_size // 2
    M, _ = StreamReceiver(CFG).sync.metric(sig)
    above = np.concatenate([[False], M > threshold])
    return np.flatnonzero(above[1:] & ~above[:-1]) + 2 * L - 1


@pytest.mark.parametrize("chunk", [997, 65536])
def test_modem_triggered_mode_matches_search(chunk):
    """Triggered mode (detection outside Python): same frames and symbols as the built-in
    search, frames back to back and apart, any chunking; the samples between frames are not
    kept."""
    xs = [_symbols(n, n) for n in (0, 1, 183, 5000, 30_000, 700)]
    for gap in (0, 5000):
        ref, _ = _link(xs, 12.0, gap=gap, chunk=chunk)
        # the same signal again, through the triggered receiver
        rng = np.random.default_rng(1)
        mod = FrameModulator(CFG)
        a = np.sqrt(10 ** (12.0 / 10) * CFG.n_occupied / CFG.fft_size)
        parts = [np.zeros(777, np.complex64)]
        for i, x in enumerate(xs):
            parts += [a * mod.modulate(x, i, 2), np.zeros(gap, np.complex64)]
        parts.append(np.zeros(4000, np.complex64))
        sig = np.concatenate(parts)
        sig = (sig + (rng.standard_normal(sig.size) + 1j * rng.standard_normal(sig.size))
               / np.sqrt(2)).astype(np.complex64)
        edges = _rising_edges(sig)
        rx = StreamReceiver(CFG)
        out = []
        for i in range(0, sig.size, chunk):
            e = edges[(edges >= i) & (edges < i + chunk)] - i
            out += rx.feed(sig[i:i + chunk], e.tolist())
        assert [r.header.frame_id for r in out] == [r.header.frame_id for r in ref] == list(range(6))
        for a_, b_ in zip(ref, out):
            assert a_.start == b_.start
            np.testing.assert_allclose(a_.symbols, b_.symbols, atol=1e-4)
        if gap and chunk < gap:
            assert rx.stats["samples_skipped"] > 0  # idle chunks: kept only as a look-back


def test_modem_biased_mmse_shrinks():
    xs = [_symbols(8000)]
    res, _ = _link(xs, 3.0, eq="mmse")
    x, xh = xs[0], res[0].symbols
    alpha = np.vdot(x, xh).real / np.vdot(x, x).real
    assert 0.55 < alpha < 0.8  # SNR/(1+SNR) = 0.67 at 3 dB


# ------------------------------------------------------------------ channel settings
def test_channel_state_and_taps():
    st = ChannelState()
    assert st.update(snr=7, cfo=1000, channel="multipath") == {"snr_db": 7.0, "cfo_hz": 1000.0,
                                                               "channel": "multipath"}
    assert st.normalised_cfo() == pytest.approx(1000 / st.samp_rate)
    assert np.linalg.norm(st.taps()) == pytest.approx(1.0, rel=1e-5)
    st.update(timing_offset=12.5)
    assert st.integer_delay() == 12 and st.taps().size > multipath_taps().size
    with pytest.raises(ValueError):
        st.update(channel="nonsense")
    with pytest.raises(ValueError):
        st.update(bogus=1)
    fd = fractional_delay(0.25)
    assert fd.sum() == pytest.approx(1.0)
    t = np.arange(fd.size)
    assert np.sum(t * fd) == pytest.approx(6.25, abs=0.05)  # centre of mass = half + frac


def test_trace_file():
    tr = SnrTrace(DEFAULT_TRACE)
    assert len(tr) >= 300
    assert tr.mean_db == pytest.approx(10.0, abs=0.01)
    assert tr.snr_db.max() - tr.snr_db.min() > 10  # deep fades in it
    assert tr.snr_for(3, 15.0) == pytest.approx(tr.snr_db[3] + 5.0)
    assert tr.snr_for(len(tr) + 3, 10.0) == pytest.approx(tr.snr_db[3])


def test_payload_carriers_follow_the_modulator_mapping():
    for n in (1, 183, 5000):
        x = np.arange(1, n + 1).astype(np.complex64)
        g = FrameModulator(CFG).grid(x, 0)[CFG.n_header_symbols:]
        car = CFG.payload_carriers(n)
        assert car.shape == (n,)
        # symbol j sits on carrier car[j] (some data symbol row of the grid)
        rows = [np.flatnonzero(g[:, c] == v)[0] for c, v in zip(car, x)]
        assert len(rows) == n
    assert CFG.payload_carriers(0).size == 0


def test_emulated_snr_estimate_has_the_phy_estimators_error():
    """Offline evaluations decode with ``emulate_snr_estimate``: its spread must be the real
    receiver's (pilots + guard carriers of a frame of the same length), not zero."""
    from core.phy.ofdm import emulate_snr_estimate
    n = 15000
    res, _ = _link([_symbols(n, s) for s in range(12)], 10.0)
    phy = np.array([r.cqi_db for r in res])
    rng = np.random.default_rng(0)
    emu = np.array([emulate_snr_estimate(10.0, n, rng) for _ in range(2000)])
    assert len(phy) == 12
    assert abs(emu.mean() - 10.0) < 0.02 and abs(phy.mean() - emu.mean()) < 0.15
    assert 0.05 < emu.std() < 0.15 and phy.std() < 3 * emu.std()
    # longer frames estimate better, as on the PHY
    assert np.std([emulate_snr_estimate(10.0, 10 * n, rng) for _ in range(500)]) < 0.6 * emu.std()
