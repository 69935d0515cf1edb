"""Small building blocks shared by the transforms and the JSCC codec.

``NeighbourhoodAttention`` is the one piece written from scratch here: a sliding-window
multi-head attention where each query position attends to a k×k neighbourhood of a
(possibly different) source grid, with a validity mask on the keys. It serves three roles:

* the windowed MHSA of the residual Transformer block (ResTB, paper Sec. VI-A, 7×7 window);
* self-attention inside one checkerboard branch (keys restricted to that branch);
* the cross-attention of the contextual JSCC (non-anchor queries, anchor keys/values).

A sliding window (rather than Swin's shifted windows) keeps every op resolution-agnostic and
makes checkerboard masking a per-key mask, so one module covers all three uses. No library
ships this for masked checkerboard keys on CPU, hence our own.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def checkerboard_mask(height: int, width: int, anchors: bool = True,
                      device: torch.device | str | None = None) -> torch.Tensor:
    """(1, 1, H, W) float mask, 1 at anchor positions ((row+col) even) or at non-anchors."""
    rows = torch.arange(height, device=device).view(-1, 1)
    cols = torch.arange(width, device=device).view(1, -1)
    anchor = ((rows + cols) % 2 == 0)
    m = anchor if anchors else ~anchor
    return m.float().view(1, 1, height, width)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of an NCHW tensor."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class NeighbourhoodAttention(nn.Module):
    """Multi-head attention of each position over a k×k neighbourhood.

    Parameters
    ----------
    dim : int
        Channels of queries and output.
    heads : int
        Attention heads (``dim`` must be divisible by it).
    kernel : int
        Odd window size k.
    source_dim : int, optional
        Channels of the key/value source grid (defaults to ``dim``).

    Input
    -----
    x : (B, dim, H, W) queries.
    source : (B, source_dim, H, W), optional. Keys/values; ``x`` when omitted.
    key_mask : (1 or B, 1, H, W), optional. 1 where a source position may be attended to.

    Output
    ------
    (B, dim, H, W)
    """

    def __init__(self, dim: int, heads: int, kernel: int, source_dim: int | None = None):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} not divisible by heads={heads}")
        self.dim, self.heads, self.kernel = dim, heads, kernel
        self.q = nn.Conv2d(dim, dim, 1)
        self.kv = nn.Conv2d(source_dim or dim, 2 * dim, 1)
        self.proj = nn.Conv2d(dim, dim, 1)
        self.rel_bias = nn.Parameter(torch.zeros(heads, kernel * kernel, 1))

    def forward(self, x: torch.Tensor, source: torch.Tensor | None = None,
                key_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        hd, k2 = c // self.heads, self.kernel ** 2
        source = x if source is None else source
        q = self.q(x).view(b, self.heads, hd, 1, h * w)
        kv = F.unfold(self.kv(source), self.kernel, padding=self.kernel // 2)
        kv = kv.view(b, 2, self.heads, hd, k2, h * w)
        logits = (q * kv[:, 0]).sum(2) / math.sqrt(hd) + self.rel_bias  # (b, heads, k2, hw)
        ones = torch.ones(1, 1, h, w, device=x.device, dtype=x.dtype)
        valid = F.unfold(ones if key_mask is None else key_mask.to(x.dtype), self.kernel,
                         padding=self.kernel // 2) > 0.5  # (1|b, k2, hw); padding is invalid
        logits = logits.masked_fill(~valid.unsqueeze(1), -1e4)
        attn = logits.softmax(dim=2)
        out = (attn.unsqueeze(2) * kv[:, 1]).sum(3)  # (b, heads, hd, hw)
        return self.proj(out.reshape(b, c, h, w))


class PointwiseMLP(nn.Module):
    """1×1-conv MLP with GELU (the ViT feed-forward on an NCHW grid)."""

    def __init__(self, dim: int, ratio: float = 2.0, out_dim: int | None = None):
        super().__init__()
        hidden = int(dim * ratio)
        self.net = nn.Sequential(nn.Conv2d(dim, hidden, 1), nn.GELU(),
                                 nn.Conv2d(hidden, out_dim or dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ResTB(nn.Module):
    """Residual Transformer block: x + MHSA(LN(x)); x + MLP(LN(x)) (paper Fig. 5(b))."""

    def __init__(self, dim: int, window: int = 7, heads: int | None = None):
        super().__init__()
        self.norm1, self.norm2 = ChannelLayerNorm(dim), ChannelLayerNorm(dim)
        self.attn = NeighbourhoodAttention(dim, heads or max(1, dim // 16), window)
        self.mlp = PointwiseMLP(dim, 2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ResBlock(nn.Module):
    """Convolutional residual block (the `small` configuration's cheap stand-in for ResTB)."""

    def __init__(self, dim: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1), nn.GELU(),
                                  nn.Conv2d(dim, dim, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def make_block(kind: str, dim: int, window: int) -> nn.Module:
    if kind == "res":
        return ResBlock(dim)
    if kind == "restb":
        return ResTB(dim, window)
    raise ValueError(f"unknown block kind {kind!r} (expected 'res' or 'restb')")
