"""Unit tests of the learned core on the tiny random-initialised configuration."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import norm

from core.codec.config import get_config
from core.codec.entropy import FactorizedDensity, MaskedConv2d, gaussian_likelihood
from core.codec.jscc import RateQuantizer, active_mask, exp_interpolate, normalize_power, pack_symbols, unpack_symbols
from core.codec.layers import NeighbourhoodAttention, checkerboard_layout, checkerboard_mask
from core.codec.learned import LearnedCodec
from core.codec.model import NTSCCPlus
from core.codec.sideinfo import SideInfo, cbr, side_channel_uses
from core.link import sidepart


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return NTSCCPlus(get_config("tiny")).eval()


def test_forward_shapes_both_stages(tiny):
    x = torch.rand(2, 3, 64, 96)
    tiny.train()
    for jscc in (False, True):
        out = tiny(x, torch.tensor([0.013, 0.72]), 0.2, torch.tensor([0.0, 14.0]), jscc=jscc)
        assert out["x_hat"].shape == x.shape
        assert out["bits"].shape == out["k_bar"].shape == (2, 4, 6)
        assert out["bits_z"].shape == (2,)
        assert torch.isfinite(out["x_hat"]).all()
    tiny.eval()


def test_gaussian_likelihood_matches_formula():
    y = torch.tensor([-3.0, -0.2, 0.0, 0.7, 5.0])
    mu = torch.tensor([0.0, 0.1, -0.5, 0.3, 1.0])
    sigma = torch.tensor([1.0, 0.5, 2.0, 0.3, 3.0])
    expected = norm.cdf((y + 0.5 - mu) / sigma) - norm.cdf((y - 0.5 - mu) / sigma)
    assert np.allclose(gaussian_likelihood(y, mu, sigma).numpy(), expected, atol=1e-6)


def test_entropy_model_bits_stay_float32_under_bf16_autocast(tiny):
    """Training under bf16 autocast (CPU with native bf16, CUDA) must not round the likelihoods:
    the bits, hence the rate indices, are those of the float32 model."""
    torch.manual_seed(3)
    y = 4 * torch.randn(2, tiny.cfg.latent_channels, 4, 6)
    ent = tiny.entropy
    with torch.no_grad():
        hyper32, bz32 = ent.hyper(y)
        ref = (bz32, ent.anchor_bits(y, hyper32), ent.nonanchor_bits(y, hyper32, y))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            hyper16, bz16 = ent.hyper(y)
            got = (bz16, ent.anchor_bits(y, hyper16), ent.nonanchor_bits(y, hyper16, y))
    for r, g in zip(ref, got):
        assert g.dtype == torch.float32
        assert torch.allclose(g, r, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("h, w", [(4, 6), (5, 7), (1, 1)])
def test_branch_bits_are_the_full_grid_bits_at_their_positions_and_zero_elsewhere(tiny, h, w):
    """anchor_bits / nonanchor_bits run g_ep on their own branch's positions only: the same
    numbers as evaluating the entropy parameters on the whole grid."""
    torch.manual_seed(4)
    ent = tiny.entropy
    y = 4 * torch.randn(2, tiny.cfg.latent_channels, h, w)
    anchor = checkerboard_mask(h, w, True)[0, 0].bool()
    with torch.no_grad():
        hyper, _ = ent.hyper(y)
        mu, sigma = ent._params(hyper, torch.zeros_like(y))
        full_a = -torch.log2(gaussian_likelihood(y, mu, sigma)).sum(1)
        mu, sigma = ent._params(hyper, ent.context(y * checkerboard_mask(h, w, True)))
        full_na = -torch.log2(gaussian_likelihood(y, mu, sigma)).sum(1)
        bits_a, bits_na = ent.anchor_bits(y, hyper), ent.nonanchor_bits(y, hyper, y)
    assert torch.allclose(bits_a[:, anchor], full_a[:, anchor], rtol=1e-5, atol=1e-3)
    assert torch.allclose(bits_na[:, ~anchor], full_na[:, ~anchor], rtol=1e-5, atol=1e-3)
    assert not bits_a[:, ~anchor].any() and not bits_na[:, anchor].any()


def test_factorized_density_is_a_distribution_over_integers():
    torch.manual_seed(1)
    dens = FactorizedDensity(3)
    z = torch.arange(-400, 401, dtype=torch.float32).view(1, 1, 1, -1).expand(1, 3, 1, 801)
    p = dens.likelihood(z.contiguous())
    assert p.shape == z.shape
    assert torch.allclose(p.sum(-1), torch.ones(1, 3, 1), atol=1e-3)
    # eq. (3): probability = c(z + 1/2) - c(z - 1/2) with c the learned cumulative
    flat = z[0].reshape(3, 1, -1)
    cdf = lambda v: torch.sigmoid(dens._logits_cumulative(v))
    direct = (cdf(flat + 0.5) - cdf(flat - 0.5)).reshape(p.shape)
    assert torch.allclose(p, direct.clamp_min(1e-9), atol=1e-6)


def test_rate_quantizer_is_deterministic_floor_on_levels():
    q = RateQuantizer((1, 2, 4, 8))
    k = torch.tensor([0.0, 1.9, 2.0, 3.99, 7.5, 100.0])
    assert q.symbols(q.index(k)).tolist() == [1, 1, 2, 2, 4, 8]
    assert q.index_bits == 2


def test_exp_interpolation_hits_knots_and_is_geometric_between():
    table = torch.log(torch.tensor([1.0, 4.0]))
    grid = torch.tensor([0.0, 10.0])
    v = exp_interpolate(table, grid, torch.tensor([0.0, 5.0, 10.0, 20.0]))
    assert torch.allclose(v, torch.tensor([1.0, 2.0, 4.0, 4.0]))


def test_power_normalisation_unit_average_power():
    torch.manual_seed(2)
    v = torch.randn(3, 8, 4, 4) * 7
    k_bar = torch.randint(1, 5, (3, 4, 4)).float()
    mask = active_mask(k_bar, 4)
    s = normalize_power(v, mask)
    n_complex = mask.sum(dim=(1, 2, 3)) / 2
    power = s.pow(2).sum(dim=(1, 2, 3)) / n_complex
    assert torch.allclose(power, torch.ones(3), atol=1e-5)
    assert (s[mask == 0] == 0).all()


def test_pack_unpack_round_trip():
    torch.manual_seed(3)
    k = 6
    k_bar = torch.randint(1, k + 1, (1, 5, 7)).float()
    branch = checkerboard_mask(5, 7, anchors=False)
    s = normalize_power(torch.randn(1, 2 * k, 5, 7), active_mask(k_bar, k) * branch)
    flat = pack_symbols(s, k_bar, branch)
    assert flat.numel() == int((k_bar * branch[0]).sum())
    back = unpack_symbols(flat, k_bar, branch, k)
    assert torch.equal(back, s)
    with pytest.raises(ValueError):
        unpack_symbols(flat[:-1], k_bar, branch, k)


@pytest.mark.parametrize("h,w", [(6, 7), (5, 4), (1, 3)])
def test_token_attention_equals_masked_dense_attention(h, w):
    """The checkerboard token path (what the JSCC runs) gives the same output as attending
    over the dense grid with the other branch's keys masked out, for all four query/key
    branch pairs, on odd and even grids with borders inside the window."""
    torch.manual_seed(6)
    attn = NeighbourhoodAttention(16, 2, 5, source_dim=8)
    torch.nn.init.normal_(attn.rel_bias)
    x, src = torch.randn(1, 16, h, w), torch.randn(1, 8, h, w)
    layout = checkerboard_layout(h, w, 5)
    for qp in (0, 1):
        for kp in (0, 1):
            if layout.positions[qp].numel() == 0 or layout.positions[kp].numel() == 0:
                continue
            dense = attn(x, src, key_mask=checkerboard_mask(h, w, anchors=kp == 0))
            tokens = attn(layout.to_tokens(x, qp), layout.to_tokens(src, kp),
                          neighbourhood=layout.neighbourhood(qp, kp))
            assert torch.allclose(tokens, layout.to_tokens(dense, qp), atol=1e-5), (qp, kp)


def test_checkerboard_layout_round_trip_and_window_counts():
    layout = checkerboard_layout(6, 8, 5)
    grid = torch.randn(2, 3, 6, 8)
    anchors = checkerboard_mask(6, 8, True)
    back = layout.to_grid(layout.to_tokens(grid, 0), 0) + layout.to_grid(layout.to_tokens(grid, 1), 1)
    assert torch.equal(back, grid)
    assert torch.equal(layout.to_grid(layout.to_tokens(grid, 0), 0), grid * anchors)
    # a 5x5 window holds 13 same-branch and 12 other-branch offsets
    assert layout.neighbourhood(0, 0).index.shape[0] == 13
    assert layout.neighbourhood(1, 0).index.shape[0] == 12


def test_masked_context_sees_only_anchors():
    torch.manual_seed(4)
    conv = MaskedConv2d(2, 3, 5)
    y = torch.randn(1, 2, 8, 8)
    anchors = checkerboard_mask(8, 8, True)
    base = conv(y * anchors)
    y2 = y + (1 - anchors) * torch.randn_like(y) * 10  # change only non-anchor values
    assert torch.allclose(conv(y2 * anchors), base)
    # and at non-anchor output positions the taps reach anchors only, even unmasked input
    out_unmasked = conv(y2)
    out_masked = conv(y2 * anchors)
    nonanchor = (1 - anchors).bool().expand_as(out_masked)
    assert torch.allclose(out_unmasked[nonanchor], out_masked[nonanchor], atol=1e-6)


def test_receiver_anchor_decode_ignores_nonanchor_symbols(tiny):
    """Checkerboard causality at the receiver: anchors decode without non-anchor symbols,
    and non-anchor symbols cannot change the decoded anchors."""
    torch.manual_seed(5)
    x = torch.rand(1, 3, 64, 64)
    tx = tiny.transmit(x, 0.18, 0.2, 10.0)
    cfg = tiny.cfg
    anchor = checkerboard_mask(4, 4, True)
    k_bar = tiny.quantizer.symbols(tx.rate_index)
    s_a = unpack_symbols(tx.symbols[:tx.n_anchor_symbols], k_bar, anchor, cfg.max_symbols)
    snr = torch.tensor([10.0])
    y_a = tiny.jscc.decode(s_a, tx.rate_index, k_bar, snr, True, anchor)
    noise = torch.randn_like(s_a) * 5
    y_a2 = tiny.jscc.decode(s_a + noise * (1 - anchor), tx.rate_index, k_bar, snr, True, anchor)
    assert torch.allclose(y_a * anchor, y_a2 * anchor, atol=1e-5)


def test_transmit_rate_map_is_deterministic(tiny):
    x = torch.rand(1, 3, 64, 64)
    a = tiny.transmit(x, 0.18, 0.2, 7.0)
    b = tiny.transmit(x, 0.18, 0.2, 7.0)
    assert torch.equal(a.rate_index, b.rate_index)
    assert torch.equal(a.symbols, b.symbols)


def test_cbr_count_includes_side_information(tiny):
    codec = LearnedCodec(tiny, device="cpu")
    rgb = (np.random.default_rng(0).random((48, 80, 3)) * 255).astype(np.uint8)  # not /16: padded
    enc = codec.encode(rgb, 0.18, 0.2, 10.0)
    info = SideInfo.from_bytes(enc.side)
    levels = np.asarray(tiny.cfg.rate_levels)
    assert info.rate_index.shape == (3, 5)
    assert enc.n_symbols == int(levels[info.rate_index].sum())
    k_side = side_channel_uses(len(enc.side), 10.0)
    # the digital part really sent: MCS-0 control block + side bytes LDPC-coded at the MCS
    # of the CQI with the 3 dB margin (documented rule), exactly as many symbols as encoded
    assert k_side == sidepart.control_symbols() + sidepart.body_symbols(len(enc.side), sidepart.side_mcs(10.0))
    assert k_side == codec.frame_symbols(enc, 10.0).size - enc.n_symbols
    assert enc.cbr == pytest.approx((enc.n_symbols + k_side) / (3 * 48 * 80))
    assert enc.cbr == pytest.approx(cbr(enc.n_symbols, len(enc.side), 48, 80, 10.0))
    out = codec.decode(enc.symbols, enc.side)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    # missing trailing symbols decode as erasures instead of failing
    assert codec.decode(enc.symbols[: enc.n_symbols // 2], enc.side).shape == rgb.shape


def test_side_info_round_trip_and_rejects_garbage():
    idx = np.random.default_rng(1).integers(0, 16, (7, 9)).astype(np.uint8)
    info = SideInfo((100, 140), idx, 0.0483, 6.5)
    back = SideInfo.from_bytes(info.to_bytes())
    assert np.array_equal(back.rate_index, idx) and back.image_size == (100, 140)
    assert back.lam == pytest.approx(0.0483, rel=1e-3) and back.snr_db == pytest.approx(6.5, abs=0.01)
    # structurally impossible input is refused; corruption of the coded map itself is caught
    # by the CRC of the digital part that carries it (tests/test_sidepart.py)
    huge = bytearray(info.to_bytes()); huge[4:8] = (4000).to_bytes(2, "little") * 2
    for bad in (b"", b"\x00" * 5, bytes(huge), info.to_bytes()[:12] + b"x" * 200):
        with pytest.raises(ValueError):
            SideInfo.from_bytes(bad)


def test_roi_eta_map_changes_rate_where_it_says(tiny):
    x = torch.rand(1, 3, 64, 64)
    eta = torch.full((4, 4), 0.05)
    eta[:, :2] = 0.5
    tx = tiny.transmit(x, 0.18, eta, 10.0)
    k = tiny.quantizer.symbols(tx.rate_index)[0]
    bits = tx.bits_per_position[0]
    # where η is 10x larger, the allocated symbols per bit are larger
    assert (k[:, :2] / bits[:, :2]).mean() > (k[:, 2:] / bits[:, 2:]).mean()


def test_rate_response_spread_follows_lambda_to_the_minus_half(tiny):
    """``RateResponse.spread``: log r_global,λ falls by ½ per e-fold of λ, the middle knot kept;
    a larger λ then gets a finer step and more bits for the same image."""
    rr = tiny.rate_response
    with torch.no_grad():
        rr.log_r_global.fill_(-0.3)
    rr.spread(0.5)
    g, ll = rr.log_r_global.detach(), rr.log_lambdas
    mid = len(g) // 2
    assert g[mid].item() == pytest.approx(-0.3)
    assert torch.allclose(g - g[mid], -0.5 * (ll - ll[mid]), atol=1e-6)
    x = torch.rand(1, 3, 64, 64)
    tiny.eval()
    with torch.no_grad():
        bits = [tiny(x, lam, 0.2, 10.0, jscc=False)["bits"].sum().item()
                for lam in (tiny.cfg.lambdas[0], tiny.cfg.lambdas[-1])]
    assert bits[1] > bits[0]


WIDEN_OLD = (1, 2, 3, 4, 6, 8, 12, 16)  # the tiny config's table
WIDEN_NEW = (1, 2, 3, 4, 6, 8, 16, 24)  # 12 dropped, 24 added: codeword width 16 -> 24 symbols


@pytest.fixture(scope="module")
def pair():
    """(tiny model with trained-like weights, the same carried over to WIDEN_NEW)."""
    from dataclasses import replace

    from core.codec.widen import adapt_rate_levels
    torch.manual_seed(3)
    old_cfg = get_config("tiny")
    old = NTSCCPlus(old_cfg).eval()
    for p in old.parameters():  # no zero-initialised layer hides a wrong mapping
        p.data.add_(0.05 * torch.randn_like(p))
    new_cfg = replace(old_cfg, rate_levels=WIDEN_NEW)
    new = NTSCCPlus(new_cfg).eval()
    new.load_state_dict(adapt_rate_levels(old.state_dict(), old_cfg, new_cfg))
    return old, new


class TestRateLevelWidening:
    """core.codec.widen: a trained model carried over to a table with more symbols at the top."""

    def test_below_the_dropped_level_it_sends_and_decodes_exactly_the_same(self, pair):
        old, new = pair
        x = torch.rand(1, 3, 64, 64)
        for eta in (0.002, 0.005, 0.01):
            t_old = old.transmit(x, 0.18, eta, 10.0)
            if int(t_old.rate_index.max()) < WIDEN_OLD.index(12):
                break
        else:
            pytest.skip("no η kept this random model below level 12")
        t_new = new.transmit(x, 0.18, eta, 10.0)
        assert torch.equal(t_old.rate_index, t_new.rate_index)
        n_a = t_old.n_anchor_symbols
        assert torch.equal(t_old.symbols[:n_a], t_new.symbols[:n_a])  # anchors: no simulated channel
        noisy = t_old.symbols + 0.1 * torch.randn_like(t_old.symbols)
        a = old.receive(noisy, t_old.rate_index, (64, 64), 0.18, 10.0)
        b = new.receive(noisy, t_old.rate_index, (64, 64), 0.18, 10.0)
        assert torch.equal(a, b)

    def test_extra_symbols_repeat_the_first_ones_and_the_decoder_starts_ignoring_them(self, pair):
        old, new = pair
        x = torch.rand(1, 3, 64, 64)
        t = new.transmit(x, 0.72, 50.0, 10.0)  # every position at the new top level
        assert int(t.rate_index.min()) == len(WIDEN_NEW) - 1
        k = torch.full_like(t.rate_index, 24).float()
        from core.codec.layers import checkerboard_mask
        anchor = checkerboard_mask(*t.rate_index.shape[-2:], anchors=True, device="cpu")
        s = unpack_symbols(t.symbols[:t.n_anchor_symbols], k, anchor, 24)
        assert torch.allclose(s[:, 16:24], s[:, 0:8]) and torch.allclose(s[:, 40:48], s[:, 24:32])
        assert float(s[:, 0:8].abs().sum()) > 0
        idx = t.rate_index
        y1 = new.jscc.decode(s, idx, k, torch.tensor([10.0]), True, anchor)
        s_cut = s.clone(); s_cut[:, 16:24] = 0; s_cut[:, 40:48] = 0
        y2 = new.jscc.decode(s_cut, idx, k, torch.tensor([10.0]), True, anchor)
        assert torch.equal(y1, y2)

    def test_a_lower_top_level_is_refused(self):
        from dataclasses import replace

        from core.codec.widen import adapt_rate_levels
        cfg = get_config("tiny")
        with pytest.raises(ValueError, match="lower"):
            adapt_rate_levels(NTSCCPlus(cfg).state_dict(), cfg, replace(cfg, rate_levels=(1, 2, 4, 8)))


class TestJSCCBypass:
    """The JSCC branches' linear bypass: zero at first, so older checkpoints keep their function,
    and reachable by the training loss, so it can grow."""

    def test_a_checkpoint_without_bypass_loads_and_transmits_exactly_as_before(self):
        from core.codec.checkpoint import load_state
        torch.manual_seed(5)
        trained = NTSCCPlus(get_config("tiny")).eval()
        for p in trained.parameters():  # every layer non-zero: nothing hides a wrong mapping
            p.data.add_(0.05 * torch.randn_like(p))
        for name, p in trained.named_parameters():
            if ".bypass." in name:
                p.data.zero_()  # what a model trained before the bypass existed computes
        old_state = {k: v for k, v in trained.state_dict().items() if ".bypass." not in k}
        assert len(old_state) == len(trained.state_dict()) - 4  # one bypass per branch
        loaded = NTSCCPlus(get_config("tiny")).eval()
        for p in loaded.parameters():
            p.data.fill_(1.0)  # a loader that skipped the bypass would leave these ones
        load_state(loaded, old_state)
        x = torch.rand(1, 3, 64, 64)
        a, b = trained.transmit(x, 0.36, 0.3, 10.0), loaded.transmit(x, 0.36, 0.3, 10.0)
        assert torch.equal(a.rate_index, b.rate_index) and torch.equal(a.symbols, b.symbols)

    def test_the_zero_bypass_gets_gradient_from_the_training_loss(self, tiny):
        tiny.train()
        tiny.zero_grad()
        out = tiny(torch.rand(2, 3, 64, 64), 0.72, 0.4, 10.0)
        ((out["x_hat"] - 0.5) ** 2).mean().backward()
        grads = {n: p.grad for n, p in tiny.named_parameters() if ".bypass." in n}
        tiny.eval()
        assert sorted(grads) == [f"jscc.{b}.bypass.weight" for b in ("dec_a", "dec_na", "enc_a", "enc_na")]
        for name, g in grads.items():
            assert g is not None and float(g.abs().sum()) > 0, name

    def test_the_bypass_carries_the_latents_scale_that_the_blocks_normalise_away(self):
        """With the bypass on, scaling a position's latent scales its (pre-normalisation)
        codeword part linearly; the ViT path alone ends in a LayerNorm and cannot."""
        torch.manual_seed(6)
        cfg = get_config("tiny")
        jscc = NTSCCPlus(cfg).jscc.eval()
        branch, width = jscc.enc_a, 2 * cfg.max_symbols
        x = torch.randn(1, cfg.latent_channels, 4, 1)
        rates = torch.zeros(1, 4, 1, dtype=torch.long)
        from core.codec.layers import checkerboard_layout
        table = checkerboard_layout(2, 4, cfg.jscc_window, "cpu").neighbourhood(0, 0)
        with torch.no_grad():
            plain = branch(x, rates, table), branch(10 * x, rates, table)
            branch.bypass.weight.copy_(torch.randn(width, cfg.latent_channels, 1, 1))
            with_bypass = branch(x, rates, table), branch(10 * x, rates, table)
        ratio = lambda pair: float(pair[1].norm() / pair[0].norm())  # noqa: E731
        assert ratio(plain) < 2.0  # the LayerNorm'd path barely follows the input's scale
        assert ratio(with_bypass) > 5.0


class TestJSCCPrior:
    """The ``jscc_prior`` experiment: the JSCC sees the hyperprior's (μ, σ), as if z were on the air."""

    def test_weights_without_it_carry_over_and_compute_the_same_until_trained(self):
        from dataclasses import replace

        from core.codec.checkpoint import load_state
        torch.manual_seed(7)
        plain_cfg = get_config("tiny")
        plain = NTSCCPlus(plain_cfg).eval()
        for p in plain.parameters():
            p.data.add_(0.05 * torch.randn_like(p))
        prior_cfg = replace(plain_cfg, jscc_prior=True)
        assert prior_cfg.extends(plain_cfg) and not plain_cfg.extends(prior_cfg)
        assert not replace(prior_cfg, jscc_dim=32).extends(plain_cfg)  # another network: no
        with_prior = NTSCCPlus(prior_cfg).eval()
        load_state(with_prior, plain.state_dict())
        x = torch.rand(1, 3, 64, 64)
        torch.manual_seed(1)
        a = plain(x, 0.36, 0.3, 10.0)["x_hat"]
        torch.manual_seed(1)
        b = with_prior(x, 0.36, 0.3, 10.0)["x_hat"]
        assert torch.equal(a, b)
        with_prior.jscc.dec_a.prior_out.weight.data.fill_(0.1)  # the prior now reaches the decoder's output
        torch.manual_seed(1)
        assert not torch.equal(a, with_prior(x, 0.36, 0.3, 10.0)["x_hat"])

    def test_transmitting_without_z_on_the_air_says_so(self):
        from dataclasses import replace
        model = NTSCCPlus(replace(get_config("tiny"), jscc_prior=True)).eval()
        with pytest.raises(NotImplementedError, match="hyperprior z"):
            model.transmit(torch.rand(1, 3, 64, 64), 0.18, 0.2, 10.0)

    def test_the_jscc_loss_does_not_train_the_entropy_model_through_the_prior(self):
        """The bits decide the symbol counts: only the rate terms may move g_ep."""
        from dataclasses import replace
        model = NTSCCPlus(replace(get_config("tiny"), jscc_prior=True)).train()
        out = model(torch.rand(1, 3, 64, 64), 0.36, 0.3, 10.0)
        out["x_hat"].square().mean().backward()  # a distortion term only
        assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in model.entropy.g_ep.parameters())

    def test_a_prior_model_widens_to_more_symbols(self):
        """Its encoders' prior_out maps into the codeword, so it widens with it (rows)."""
        from dataclasses import replace

        from core.codec.widen import adapt_rate_levels
        old_cfg = replace(get_config("tiny"), jscc_prior=True)
        new_cfg = replace(old_cfg, rate_levels=WIDEN_NEW)
        NTSCCPlus(new_cfg).load_state_dict(adapt_rate_levels(NTSCCPlus(old_cfg).state_dict(), old_cfg, new_cfg))
