"""Variable-rate contextual JSCC codec and the response networks of compatible NTSCC+.

Paper references: variable-rate JSCC (eq. 5), contextual JSCC (Sec. III, Fig. 5(c)), rate
response (eq. 12-14) and SNR response (eq. 15-18).

Shapes: the codec's interface is the full latent grid (B, C, H, W) with a checkerboard anchor
mask; inside, each branch runs on its own positions only, as a (B, C, N, 1) token grid
(:class:`~core.codec.layers.CheckerboardLayout`), so nothing crosses branches except through the
explicit anchor-context input of the non-anchor branch, and no work is spent on the other
branch's positions. Outputs are scattered back to the grid with zeros elsewhere.

A JSCC codeword at position i has ``max_symbols`` complex entries stored as 2*max_symbols
real channels (real parts first, then imaginary parts); only the first k̄_i are active.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .config import ModelConfig
from .layers import (
    ChannelLayerNorm,
    CheckerboardLayout,
    Neighbourhood,
    NeighbourhoodAttention,
    PointwiseMLP,
    checkerboard_layout,
)


class RateQuantizer(nn.Module):
    """Q of eq. (5): k_i -> the largest level ≤ k_i on a fixed table (the smallest level at least).

    Deterministic (no noise), so transmitter and receiver agree given the signalled index.
    """

    def __init__(self, levels: tuple[int, ...]):
        super().__init__()
        if list(levels) != sorted(set(levels)) or levels[0] < 1:
            raise ValueError("rate levels must be strictly increasing positive integers")
        self.register_buffer("levels", torch.tensor(levels, dtype=torch.float32))

    @property
    def index_bits(self) -> int:
        return max(1, math.ceil(math.log2(len(self.levels))))

    def index(self, k: torch.Tensor) -> torch.Tensor:
        """Rate index (long) per position for continuous symbol demands k."""
        idx = torch.bucketize(k.detach(), self.levels, right=True) - 1
        return idx.clamp(0, len(self.levels) - 1)

    def symbols(self, index: torch.Tensor) -> torch.Tensor:
        return self.levels[index]


def active_mask(k_bar: torch.Tensor, max_symbols: int) -> torch.Tensor:
    """(B, 2*max_symbols, H, W) float mask: 1 for the first k̄_i complex symbols (re and im)."""
    j = torch.arange(max_symbols, device=k_bar.device).view(1, -1, 1, 1)
    m = (j < k_bar.unsqueeze(1)).float()
    return torch.cat([m, m], 1)


def normalize_power(v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Scale each image's active symbols to unit average complex power."""
    n_complex = mask.sum(dim=(1, 2, 3)).clamp_min(1.0) / 2
    power = (v * mask).pow(2).sum(dim=(1, 2, 3)) / n_complex
    return v * mask / power.clamp_min(1e-12).sqrt().view(-1, 1, 1, 1)


def exp_interpolate(table: torch.Tensor, grid: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Exponential (log-linear) interpolation of positive knots ``exp(table)`` on ``grid``.

    ``value`` (B,) is clamped to the grid's range. Returns (B,) positive scalars.
    """
    value = value.clamp(grid[0], grid[-1])
    hi = torch.bucketize(value, grid).clamp(1, len(grid) - 1)
    lo = hi - 1
    t = (value - grid[lo]) / (grid[hi] - grid[lo])
    return torch.exp(table[lo] * (1 - t) + table[hi] * t)


def linear_interpolate(table: torch.Tensor, grid: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Rows of ``table`` (knots, D) linearly interpolated at ``value`` (B,) on ``grid`` -> (B, D).

    ``value`` is clamped to the grid's range.
    """
    value = value.clamp(grid[0], grid[-1])
    hi = torch.bucketize(value, grid).clamp(1, len(grid) - 1)
    lo = hi - 1
    t = ((value - grid[lo]) / (grid[hi] - grid[lo])).unsqueeze(-1)
    return table[lo] * (1 - t) + table[hi] * t


class RateResponse(nn.Module):
    """Rate response (eq. 12-14): q_rate = r_global,λ · r_a (anchors) or · r_na (non-anchors).

    λ is interpolated exponentially between neighbouring knots of Λ in log-λ.
    """

    def __init__(self, lambdas: tuple[float, ...], channels: int):
        super().__init__()
        self.register_buffer("log_lambdas", torch.tensor(lambdas).log())
        self.log_r_global = nn.Parameter(torch.zeros(len(lambdas)))
        self.log_r_a = nn.Parameter(torch.zeros(channels))
        self.log_r_na = nn.Parameter(torch.zeros(channels))

    @torch.no_grad()
    def spread(self, slope: float = 0.5) -> None:
        """Re-initialise r_global,λ ∝ λ^(-slope) around the middle knot of Λ (kept as it is).

        Why: for R + λ·D at high rate the optimal quantiser step obeys Δ² ∝ 1/λ (slope ½), so Λ
        spanning 55× should span ~7× in step and several times in rate. A model trained with
        r_global nearly flat over Λ never leaves that narrow rate band by itself (its transforms
        only learned the coarse-step regime, so a finer step buys no quality and the gradient
        keeps r_global flat); this puts each λ where its rate should be and lets training go on.
        """
        mid = len(self.log_r_global) // 2
        centre = self.log_r_global[mid].clone()
        self.log_r_global.copy_(centre - slope * (self.log_lambdas - self.log_lambdas[mid]))

    def scale(self, lam: torch.Tensor, anchor_mask: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) scaling q_rate for a batch of λ (B,) and a (1,1,H,W) anchor mask."""
        g = exp_interpolate(self.log_r_global, self.log_lambdas, lam.log()).view(-1, 1, 1, 1)
        r_a = self.log_r_a.exp().view(1, -1, 1, 1)
        r_na = self.log_r_na.exp().view(1, -1, 1, 1)
        return g * (anchor_mask * r_a + (1 - anchor_mask) * r_na)


class SnrResponse(nn.Module):
    """SNR response (eq. 15-18): q_SNR = c_global,ν · FCN([codeword, embed(ν)]), per branch.

    FCN is two 1×1 layers with a ReLU; its output passes 2·sigmoid so it starts at 1 and stays
    positive. One instance lives in the encoder (FCN on v̇) and one in the decoder (FCN on ŝ).

    ν also enters the FCN's hidden layer through a learned embedding, linearly interpolated
    between the knots of the CQI grid (``nu_embed_a``/``nu_embed_na``, (knots, hidden)). Why:
    the encoder power-normalises each frame after the response, which divides the scalar
    c_global,ν out, so without the embedding the transmitted codeword would not depend on ν at
    all (the paper's text asks for ν inside the channel attention). The embeddings start at
    zero, so a checkpoint trained without them behaves exactly as before.
    """

    def __init__(self, snr_grid_db: tuple[float, ...], width: int, hidden: int = 64):
        super().__init__()
        self.register_buffer("grid", torch.tensor(snr_grid_db, dtype=torch.float32))
        self.log_c_global = nn.Parameter(torch.zeros(len(snr_grid_db)))
        self.fcn_a = self._fcn(width, hidden)
        self.fcn_na = self._fcn(width, hidden)
        self.nu_embed_a = nn.Parameter(torch.zeros(len(snr_grid_db), hidden))
        self.nu_embed_na = nn.Parameter(torch.zeros(len(snr_grid_db), hidden))

    @staticmethod
    def _fcn(width: int, hidden: int) -> nn.Module:
        net = nn.Sequential(nn.Conv2d(width, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, width, 1))
        nn.init.zeros_(net[-1].weight)
        nn.init.zeros_(net[-1].bias)
        return net

    def scale(self, codeword: torch.Tensor, snr_db: torch.Tensor, anchors: bool) -> torch.Tensor:
        """Per-channel q_SNR (B, width, N, 1) for a codeword (B, width, N, 1) and ν (B,)."""
        c = exp_interpolate(self.log_c_global, self.grid, snr_db).view(-1, 1, 1, 1)
        fcn = self.fcn_a if anchors else self.fcn_na
        embed = linear_interpolate(self.nu_embed_a if anchors else self.nu_embed_na, self.grid, snr_db)
        hidden = fcn[1](fcn[0](codeword) + embed.view(*embed.shape, 1, 1))
        return c * 2 * torch.sigmoid(fcn[2](hidden))


class ContextualViTBlock(nn.Module):
    """Self-attention within the branch, optional cross-attention to anchors, MLP (Fig. 5(c)).

    Works on token grids: ``x`` (B, dim, N, 1) holds one branch's positions, ``context``
    (B, context_dim, N_anchor, 1) the anchors'; the tables say who attends to whom.
    """

    def __init__(self, dim: int, heads: int, window: int, context_dim: int | None):
        super().__init__()
        self.norm_self = ChannelLayerNorm(dim)
        self.self_attn = NeighbourhoodAttention(dim, heads, window)
        self.cross_attn = None
        if context_dim is not None:
            self.norm_cross = ChannelLayerNorm(dim)
            self.cross_attn = NeighbourhoodAttention(dim, heads, window, source_dim=context_dim)
        self.norm_mlp = ChannelLayerNorm(dim)
        self.mlp = PointwiseMLP(dim, 2.0)

    def forward(self, x: torch.Tensor, self_table: Neighbourhood, context: torch.Tensor | None,
                cross_table: Neighbourhood | None) -> torch.Tensor:
        x = x + self.self_attn(self.norm_self(x), neighbourhood=self_table)
        if self.cross_attn is not None:
            x = x + self.cross_attn(self.norm_cross(x), context, neighbourhood=cross_table)
        return x + self.mlp(self.norm_mlp(x))


#: Layers added to the JSCC branches after models were trained without them, all zero at first (a
#: trained model's function is kept): a checkpoint may lack them, and training moves them fast.
ADDED_LAYERS = ("bypass", "prior_in", "prior_out")


def is_added_layer(key: str) -> bool:
    """True for a state-dict / parameter name of one of the :data:`ADDED_LAYERS`."""
    parts = key.split(".")
    return len(parts) >= 2 and parts[-2] in ADDED_LAYERS


class JSCCBranch(nn.Module):
    """One sub-encoder (f_e,a / f_e,na) or sub-decoder (f_d,a / f_d,na).

    Input ``x`` (B, in_dim, N, 1) tokens of one branch and their rate indices (B, N, 1), whose
    embedding ("rate token") tells the network how many symbols the position has.
    Output (B, out_dim, N, 1).

    A linear bypass (a bias-free 1×1 convolution from input to output, starting at zero) runs
    beside the ViT blocks. Why: the learned path's output head is a per-token LayerNorm and a 1×1
    convolution, so it loses each token's scale; the encoder cannot give a position's symbols
    power in proportion to its latent's magnitude, nor the decoder rebuild a latent's magnitude
    from the symbols'.
    Measured on the step-91 457 model, which had no bypass (4 Kodak 256² crops, AWGN 10 dB,
    ``tools/transform_ceiling.py``, docs/results/transform_ceiling_step91457.md): the chain gave
    29.4 dB at CBR 0.062 and 29.7 dB at 0.102 (27.0 dB at most on 4 whole images, even at 40 dB
    SNR), where a linear mapping of the same latent with LMMSE decoding gave 29.6 dB at CBR 0.04
    and 31.1 dB at 0.08 — given the hyperprior z for free, which the chain does without. Starting
    at zero, the bypass leaves a trained model's function unchanged until training moves it.
    """

    def __init__(self, in_dim: int, out_dim: int, cfg: ModelConfig, contextual: bool):
        super().__init__()
        d = cfg.jscc_dim
        self.inp = nn.Conv2d(in_dim, d, 1)
        self.prior_in = self.prior_out = None
        if cfg.jscc_prior:  # (μ, log σ) of the position's latent elements, from z: into the
            # blocks, and linearly to the output (the encoder can subtract μ from its bypass,
            # the decoder add it back); both from zero, so trained weights keep their function
            self.prior_in = nn.Conv2d(2 * cfg.latent_channels, d, 1)
            self.prior_out = nn.Conv2d(2 * cfg.latent_channels, out_dim, 1, bias=False)
            for layer in (self.prior_in, self.prior_out):
                nn.init.zeros_(layer.weight)
            nn.init.zeros_(self.prior_in.bias)
        self.rate_token = nn.Embedding(len(cfg.rate_levels), d)
        ctx_dim = cfg.latent_channels if contextual else None
        self.blocks = nn.ModuleList(
            ContextualViTBlock(d, cfg.jscc_heads, cfg.jscc_window, ctx_dim)
            for _ in range(cfg.jscc_blocks))
        self.out = nn.Sequential(ChannelLayerNorm(d), nn.Conv2d(d, out_dim, 1))
        self.bypass = nn.Conv2d(in_dim, out_dim, 1, bias=False)
        nn.init.zeros_(self.bypass.weight)

    def forward(self, x: torch.Tensor, rate_index: torch.Tensor, self_table: Neighbourhood,
                context: torch.Tensor | None = None, cross_table: Neighbourhood | None = None,
                prior: torch.Tensor | None = None) -> torch.Tensor:
        """``prior`` (B, 2M, N, 1): (μ, log σ) tokens (``jscc_prior`` only)."""
        h = self.inp(x) + self.rate_token(rate_index).permute(0, 3, 1, 2)
        use_prior = self.prior_in is not None and prior is not None
        if use_prior:
            h = h + self.prior_in(prior)
        for block in self.blocks:
            h = block(h, self_table, context, cross_table)
        out = self.out(h) + self.bypass(x)
        return out + self.prior_out(prior) if use_prior else out


class ContextualJSCC(nn.Module):
    """The contextual JSCC encoder f_e* and decoder f_d* with their SNR response networks."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        m, width = cfg.latent_channels, 2 * cfg.max_symbols
        self.cfg = cfg
        self.enc_a = JSCCBranch(m, width, cfg, contextual=False)
        self.enc_na = JSCCBranch(m, width, cfg, contextual=True)
        self.dec_a = JSCCBranch(width, m, cfg, contextual=False)
        self.dec_na = JSCCBranch(width, m, cfg, contextual=True)
        self.snr_enc = SnrResponse(cfg.snr_grid_db, width)
        self.snr_dec = SnrResponse(cfg.snr_grid_db, width)

    def _layout(self, grid: torch.Tensor) -> CheckerboardLayout:
        return checkerboard_layout(grid.shape[-2], grid.shape[-1], self.cfg.jscc_window,
                                   str(grid.device))

    def _run_branch(self, net: JSCCBranch, x: torch.Tensor, rate_index: torch.Tensor,
                    anchors: bool, context: torch.Tensor | None, pre=None, post=None,
                    prior: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Grid in, grid out: gather the branch's tokens, run ``pre``, ``net``, ``post``, scatter.

        ``prior`` (μ, σ) grids (``jscc_prior``) go in as (μ, log σ) tokens."""
        layout = self._layout(x)
        p = 0 if anchors else 1
        tokens = layout.to_tokens(x, p)
        if tokens.shape[2] == 0:  # a 1-position latent has no non-anchors
            return x.new_zeros(x.shape[0], net.out[-1].out_channels, *x.shape[-2:])
        rates = rate_index.flatten(1)[:, layout.positions[p]].unsqueeze(-1)
        ctx = None if context is None else layout.to_tokens(context, 0)
        prior_tok = None
        if prior is not None:  # only a jscc_prior model is given one (NTSCCPlus._jscc_prior)
            prior_tok = torch.cat([layout.to_tokens(prior[0], p),
                                   layout.to_tokens(prior[1], p).clamp_min(1e-6).log()], 1)
        tokens = tokens if pre is None else pre(tokens)
        out = net(tokens, rates, layout.neighbourhood(p, p), ctx, layout.neighbourhood(p, 0),
                  prior=prior_tok)
        return layout.to_grid(out if post is None else post(out), p)

    def encode(self, y: torch.Tensor, rate_index: torch.Tensor, k_bar: torch.Tensor,
               snr_db: torch.Tensor, anchors: bool, anchor_mask: torch.Tensor,
               context: torch.Tensor | None = None,
               prior: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Latent grid -> power-normalised, rate-masked codeword s (B, 2K, H, W) of one branch.

        ``prior``: the hyperprior's (μ, σ) grids, used where the config has ``jscc_prior``."""
        branch = anchor_mask if anchors else 1 - anchor_mask
        enc = self.enc_a if anchors else self.enc_na
        v = self._run_branch(enc, y, rate_index, anchors, context,  # eq. (17): v̇ / q_SNR
                             post=lambda v_dot: v_dot / self.snr_enc.scale(v_dot, snr_db, anchors),
                             prior=prior)
        mask = active_mask(k_bar, self.cfg.max_symbols) * branch
        return normalize_power(v, mask)

    def decode(self, s_hat: torch.Tensor, rate_index: torch.Tensor, k_bar: torch.Tensor,
               snr_db: torch.Tensor, anchors: bool, anchor_mask: torch.Tensor,
               context: torch.Tensor | None = None,
               prior: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Received (masked) codeword grid -> latent estimate (B, M, H, W) of one branch."""
        branch = anchor_mask if anchors else 1 - anchor_mask
        s_hat = s_hat * active_mask(k_bar, self.cfg.max_symbols) * branch
        dec = self.dec_a if anchors else self.dec_na
        return self._run_branch(dec, s_hat, rate_index, anchors, context,  # eq. (18): ŝ · q_SNR
                                pre=lambda s: s * self.snr_dec.scale(s, snr_db, anchors), prior=prior)


def awgn(s: torch.Tensor, mask: torch.Tensor, snr_db: torch.Tensor,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """Complex AWGN at ``snr_db`` (B,) on unit-power symbols; inactive entries stay zero.

    Real and imaginary channels each get variance σ²/2 with σ² = 10^(-SNR/10).
    """
    sigma = torch.sqrt(10 ** (-snr_db / 10) / 2).view(-1, 1, 1, 1)
    noise = torch.randn(s.shape, generator=generator, device=s.device, dtype=s.dtype)
    return (s + sigma * noise) * mask


def pack_symbols(s: torch.Tensor, k_bar: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
    """One image's codeword (1, 2K, H, W) -> flat complex vector of its active symbols.

    Order: positions in raster order, each position's k̄_i symbols in order.
    """
    k = s.shape[1] // 2
    mask = (active_mask(k_bar, k) * branch)[0, :k].permute(1, 2, 0).bool()  # (H, W, K)
    re = s[0, :k].permute(1, 2, 0)[mask]
    im = s[0, k:].permute(1, 2, 0)[mask]
    return torch.complex(re, im)


def unpack_symbols(flat: torch.Tensor, k_bar: torch.Tensor, branch: torch.Tensor,
                   max_symbols: int) -> torch.Tensor:
    """Inverse of :func:`pack_symbols`: flat complex vector -> (1, 2K, H, W) codeword."""
    mask = (active_mask(k_bar, max_symbols) * branch)[0, :max_symbols].permute(1, 2, 0).bool()
    n = int(mask.sum())
    if flat.numel() != n:
        raise ValueError(f"expected {n} symbols for this rate map, got {flat.numel()}")
    h, w = mask.shape[:2]
    re = torch.zeros(h, w, max_symbols, dtype=torch.float32, device=flat.device)
    im = torch.zeros_like(re)
    re[mask] = flat.real.float()
    im[mask] = flat.imag.float()
    return torch.cat([re.permute(2, 0, 1), im.permute(2, 0, 1)], 0).unsqueeze(0)
