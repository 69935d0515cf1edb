"""Entropy models of NTSCC+ (paper eq. 2, 3, 6-11).

* :class:`FactorizedDensity` — the fully factorised density p_z of the hyperprior (eq. 3),
  Ballé et al. 2018's non-parametric cumulative, convolved with U(-1/2, 1/2).
* :func:`gaussian_likelihood` — N(y | mu, sigma^2) * U(-1/2, 1/2) evaluated at y (eq. 2, 8).
* :class:`CheckerboardEntropyModel` — hyperprior h_a/h_s plus the checkerboard context
  (5×5 masked convolution, eq. 9-11): anchors use the hyperprior only, non-anchors also the
  anchors' context. It gives each latent position's entropy -log2 p(y_i) in bits.

Written here rather than taken from CompressAI: its 1.2.8 wheel pins numpy<2 (sionna needs
numpy 2) and its import needs torchvision, which fails beside the CPU torch wheel used here.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import checkerboard_layout, checkerboard_mask

LIKELIHOOD_BOUND = 1e-9
SCALE_BOUND = 0.11


def float32_region(method):
    """Run an entropy-model method in float32 even inside a bf16 autocast region.

    Likelihoods are differences of two close CDF values: in bf16 (8 significant bits) they, and
    so the bits and the rate indices, would be off by several per cent. Training under bf16
    autocast (CPU with native bf16, CUDA) therefore keeps the entropy model in float32, as the
    inference fast path does (:mod:`core.codec.fast`).
    """
    def widen(a):  # half types only: a float64 check (gradcheck, say) keeps its precision
        return a.float() if torch.is_tensor(a) and a.dtype in (torch.bfloat16, torch.float16) else a

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        args = tuple(widen(a) for a in args)
        kwargs = {k: widen(v) for k, v in kwargs.items()}
        device_type = next((a.device.type for a in (*args, *kwargs.values()) if torch.is_tensor(a)), "cpu")
        with torch.autocast(device_type, enabled=False):
            return method(self, *args, **kwargs)
    return wrapper


def _std_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x / math.sqrt(2.0))


def gaussian_likelihood(y: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """P(y) under N(mu, sigma^2) convolved with U(-1/2, 1/2), elementwise (eq. 2).

    Uses the symmetric form Φ((1/2 - |y-mu|)/σ) - Φ((-1/2 - |y-mu|)/σ), which is the same
    value but numerically safer in the tails.
    """
    sigma = sigma.clamp_min(SCALE_BOUND)
    v = (y - mu).abs()
    upper = _std_normal_cdf((0.5 - v) / sigma)
    lower = _std_normal_cdf((-0.5 - v) / sigma)
    return (upper - lower).clamp_min(LIKELIHOOD_BOUND)


class FactorizedDensity(nn.Module):
    """Per-channel learned univariate density convolved with U(-1/2, 1/2) (eq. 3).

    The cumulative c(x) is a monotone chain of small matrices (softplus-positive weights,
    tanh gates), as in Ballé et al. 2018, Appendix 6.1. likelihood(x) = c(x+1/2) - c(x-1/2).
    """

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        dims = (1,) + tuple(filters) + (1,)
        scale = init_scale ** (1.0 / (len(dims) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(dims) - 1):
            init = math.log(math.expm1(1.0 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.empty(channels, dims[i + 1], 1).uniform_(-0.5, 0.5)))
            if i < len(dims) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def _logits_cumulative(self, x: torch.Tensor) -> torch.Tensor:
        # x: (C, 1, N)
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            x = torch.matmul(F.softplus(matrix), x) + bias
            if i < len(self.factors):
                x = x + torch.tanh(self.factors[i]) * torch.tanh(x)
        return x

    def likelihood(self, z: torch.Tensor) -> torch.Tensor:
        """Elementwise probability of z (B, C, H, W)."""
        b, c, h, w = z.shape
        flat = z.permute(1, 0, 2, 3).reshape(c, 1, -1)
        lower = self._logits_cumulative(flat - 0.5)
        upper = self._logits_cumulative(flat + 0.5)
        # Evaluate on the side of the median where the sigmoid is not saturated.
        sign = -torch.sign(lower + upper).detach()
        p = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
        return p.clamp_min(LIKELIHOOD_BOUND).reshape(c, b, h, w).permute(1, 0, 2, 3)


def quantize_proxy(x: torch.Tensor, training: bool) -> torch.Tensor:
    """Uniform-noise proxy in training, rounding at inference (the digital z)."""
    if training:
        return x + torch.empty_like(x).uniform_(-0.5, 0.5)
    return torch.round(x)


class MaskedConv2d(nn.Conv2d):
    """Convolution whose kernel is multiplied by a fixed binary mask M (eq. 11: (M⊙W)x + b).

    The checkerboard mask keeps the kernel taps at odd Manhattan distance from the centre:
    seen from a non-anchor, exactly the anchor positions of its l×l neighbourhood.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 5):
        super().__init__(in_ch, out_ch, kernel, padding=kernel // 2)
        idx = torch.arange(kernel) - kernel // 2
        mask = ((idx.view(-1, 1) + idx.view(1, -1)).abs() % 2 == 1).float()
        self.register_buffer("mask", mask.view(1, 1, kernel, kernel))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class CheckerboardEntropyModel(nn.Module):
    """Hyperprior + checkerboard context entropy model for the latent y.

    Parameters
    ----------
    latent_channels : int
        M, channels of y.
    hyper_channels : int
        Channels of the hyper-latent z (at 1/4 of y's resolution).

    Usage (see :class:`core.codec.model.NTSCCPlus`): ``hyper(y)`` once, then ``anchor_bits`` and,
    after the anchors' context is known, ``nonanchor_bits``.
    """

    def __init__(self, latent_channels: int, hyper_channels: int):
        super().__init__()
        m, n = latent_channels, hyper_channels
        self.h_a = nn.Sequential(
            nn.Conv2d(m, n, 3, padding=1), nn.GELU(),
            nn.Conv2d(n, n, 5, stride=2, padding=2), nn.GELU(),
            nn.Conv2d(n, n, 5, stride=2, padding=2))
        self.h_s = nn.Sequential(
            nn.ConvTranspose2d(n, n, 5, stride=2, padding=2, output_padding=1), nn.GELU(),
            nn.ConvTranspose2d(n, m, 5, stride=2, padding=2, output_padding=1), nn.GELU(),
            nn.Conv2d(m, 2 * m, 3, padding=1))
        self.context = MaskedConv2d(m, m, 5)
        self.g_ep = nn.Sequential(
            nn.Conv2d(3 * m, 2 * m, 1), nn.GELU(),
            nn.Conv2d(2 * m, 2 * m, 1), nn.GELU(),
            nn.Conv2d(2 * m, 2 * m, 1))
        self.z_density = FactorizedDensity(n)

    @float32_region
    def hyper(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (hyperprior features h_s(z~) cropped to y's size, bits of z per image)."""
        z = quantize_proxy(self.h_a(y), self.training)
        bits_z = -torch.log2(self.z_density.likelihood(z)).sum(dim=(1, 2, 3))
        feat = self.h_s(z)[..., :y.shape[-2], :y.shape[-1]]
        return feat, bits_z

    @float32_region
    def hyper_prior(self, hyper_feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, σ), each (B, M, H, W), of every latent element from the hyperprior alone (the
        anchors' parameters, zero context): what a receiver that has z can rebuild."""
        b, _, h, w = hyper_feat.shape
        ctx = hyper_feat.new_zeros(b, self.context.out_channels, h, w)
        return self._params(hyper_feat, ctx)

    def _params(self, hyper_feat: torch.Tensor, ctx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_sigma_like = self.g_ep(torch.cat([hyper_feat, ctx], 1)).chunk(2, 1)
        return mu, F.softplus(log_sigma_like)

    def _branch_bits(self, y: torch.Tensor, hyper_feat: torch.Tensor, ctx: torch.Tensor | None,
                     parity: int) -> torch.Tensor:
        """-log2 p(y_i) summed over channels at one checkerboard branch's positions (0 = anchors),
        (B, H, W), zero at the other branch's; ``ctx`` None is the anchors' all-zero context.
        g_ep is pointwise (1×1 convolutions), so it runs on that branch's positions only: the same
        values at half the work (TX encode −2.2 ms of 50 at 512×256)."""
        h, w = y.shape[-2:]
        layout = checkerboard_layout(h, w, self.context.kernel_size[0], str(y.device))
        y_tok, feat_tok = layout.to_tokens(y, parity), layout.to_tokens(hyper_feat, parity)  # (B, C, N, 1)
        if y_tok.shape[2] == 0:  # a 1-position latent has no non-anchors
            return y.new_zeros(y.shape[0], h, w)
        ctx_tok = y_tok.new_zeros(y_tok.shape) if ctx is None else layout.to_tokens(ctx, parity)
        mu, sigma = self._params(feat_tok, ctx_tok)
        bits = -torch.log2(gaussian_likelihood(y_tok, mu, sigma)).sum(1, keepdim=True)
        return layout.to_grid(bits, parity)[:, 0]

    @float32_region
    def anchor_bits(self, y: torch.Tensor, hyper_feat: torch.Tensor) -> torch.Tensor:
        """-log2 p(y_i) summed over channels, (B, H, W), at anchor positions (0 elsewhere)."""
        return self._branch_bits(y, hyper_feat, None, 0)

    @float32_region
    def nonanchor_bits(self, y: torch.Tensor, hyper_feat: torch.Tensor,
                       anchors_ctx: torch.Tensor) -> torch.Tensor:
        """Bits at non-anchor positions (0 at anchors), conditioned on ``anchors_ctx`` (eq. 9).

        ``anchors_ctx`` is y'_A: the transmitter's estimate of the receiver's decoded anchors
        (or the anchors themselves when there is no channel, as in stage-1 training). Its
        non-anchor positions are zeroed here so no non-anchor value can leak into the context.
        """
        h, w = y.shape[-2:]
        ctx = self.context(anchors_ctx * checkerboard_mask(h, w, True, y.device))
        return self._branch_bits(y, hyper_feat, ctx, 1)
