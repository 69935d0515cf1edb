"""Small building blocks shared by the transforms and the JSCC codec.

``NeighbourhoodAttention`` is the one piece written from scratch here: a sliding-window
multi-head attention where each query position attends to a k×k neighbourhood of a
(possibly different) source grid, with a validity mask on the keys. It serves three roles:

* the windowed MHSA of the residual Transformer block (ResTB, paper Sec. VI-A, 7×7 window);
* self-attention inside one checkerboard branch (keys restricted to that branch);
* the cross-attention of the contextual JSCC (non-anchor queries, anchor keys/values).

A sliding window (rather than Swin's shifted windows) keeps every op resolution-agnostic, so
one module covers all three uses. No library ships this for checkerboard key sets on CPU,
hence our own.

Two layouts share the same parameters:

* dense — a (B, C, H, W) grid, neighbours gathered with ``F.unfold`` (the ResTB);
* checkerboard tokens — only one branch's positions, as a (B, C, N, 1) "token grid" with a
  precomputed :class:`Neighbourhood` table. Keys of a checkerboard branch occupy only 13 (same
  branch) or 12 (other branch) of the 25 offsets of a 5×5 window, and the queries are half the
  grid, so the JSCC does about a quarter of the dense attention work and half of the 1×1
  convolutions, with the same result as masking the dense grid (tested).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

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


@dataclass(frozen=True)
class Neighbourhood:
    """Which key tokens each query token attends to (a k×k window restricted to one branch).

    ``index`` (K, Nq) long: row of the key token list, ``Nk`` (one past the end) where the
    offset falls outside the grid; ``valid`` (1, K, Nq) bool; ``offsets`` (K,) long: the
    window offset's position in the dense k×k order (selects the relative-position bias).
    """

    index: torch.Tensor
    valid: torch.Tensor
    offsets: torch.Tensor


@dataclass(frozen=True)
class CheckerboardLayout:
    """Token positions of both checkerboard branches of an (H, W) grid and their neighbourhoods.

    ``positions[p]`` lists the raster positions of parity p (0 = anchors, (row+col) even);
    ``neighbourhood(q, k)`` is the table for queries of parity q attending to keys of parity k.
    """

    height: int
    width: int
    positions: tuple[torch.Tensor, torch.Tensor]
    tables: dict

    def neighbourhood(self, query_parity: int, key_parity: int) -> Neighbourhood:
        return self.tables[(query_parity, key_parity)]

    def to_tokens(self, grid: torch.Tensor, parity: int) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, N, 1): the positions of one branch, raster order."""
        return grid.flatten(2)[:, :, self.positions[parity]].unsqueeze(-1)

    def to_grid(self, tokens: torch.Tensor, parity: int) -> torch.Tensor:
        """Inverse of :meth:`to_tokens`; the other branch's positions are zero."""
        b, c = tokens.shape[:2]
        grid = tokens.new_zeros(b, c, self.height * self.width)
        grid = grid.index_copy(2, self.positions[parity], tokens.flatten(2))
        return grid.view(b, c, self.height, self.width)


@lru_cache(maxsize=32)
def checkerboard_layout(height: int, width: int, kernel: int, device: str = "cpu") -> CheckerboardLayout:
    """Cached :class:`CheckerboardLayout` for a latent grid and an odd window size."""
    rows = torch.arange(height).view(-1, 1)
    cols = torch.arange(width).view(1, -1)
    parity = ((rows + cols) % 2).flatten()
    positions = tuple(torch.nonzero(parity == p).squeeze(1) for p in (0, 1))
    token_of = torch.empty(height * width, dtype=torch.long)
    for pos in positions:
        token_of[pos] = torch.arange(pos.numel())
    r = kernel // 2
    tables = {}
    for qp in (0, 1):
        qr, qc = positions[qp] // width, positions[qp] % width
        for kp in (0, 1):
            offs = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)
                    if (dy + dx) % 2 == (kp - qp) % 2]
            dy = torch.tensor([o[0] for o in offs]).view(-1, 1)
            dx = torch.tensor([o[1] for o in offs]).view(-1, 1)
            kr, kc = qr.view(1, -1) + dy, qc.view(1, -1) + dx
            inside = (kr >= 0) & (kr < height) & (kc >= 0) & (kc < width)
            key = token_of[kr.clamp(0, height - 1) * width + kc.clamp(0, width - 1)]
            key = torch.where(inside, key, positions[kp].numel())
            offset_ids = (dy + r) * kernel + (dx + r)
            tables[(qp, kp)] = Neighbourhood(key.to(device), inside.unsqueeze(0).to(device),
                                             offset_ids.view(-1).to(device))
    return CheckerboardLayout(height, width, tuple(p.to(device) for p in positions), tables)


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
                key_mask: torch.Tensor | None = None,
                neighbourhood: Neighbourhood | None = None) -> torch.Tensor:
        """Dense grids, or token grids (B, C, N, 1) when a ``neighbourhood`` table is given."""
        b, c, h, w = x.shape
        source = x if source is None else source
        if neighbourhood is not None:
            return self._attend_tokens(x, source, neighbourhood)
        hd, pad = c // self.heads, self.kernel // 2
        q = self.q(x).view(b, self.heads, hd, 1, h * w)
        kv = F.unfold(self.kv(source), self.kernel, padding=pad)
        kv = kv.view(b, 2, self.heads, hd, -1, h * w)
        ones = torch.ones(1, 1, h, w, device=x.device, dtype=x.dtype)
        valid = F.unfold(ones if key_mask is None else key_mask.to(x.dtype), self.kernel,
                         padding=pad) > 0.5  # (1|b, k2, hw); padding and masked keys invalid
        logits = (q * kv[:, 0]).sum(2) / math.sqrt(hd) + self.rel_bias  # (b, heads, k2, hw)
        logits = logits.masked_fill(~valid.unsqueeze(1), -1e4)
        attn = logits.softmax(dim=2)
        out = (attn.unsqueeze(2) * kv[:, 1]).sum(3)  # (b, heads, hd, hw)
        return self.proj(out.reshape(b, c, h, w))

    def _attend_tokens(self, x: torch.Tensor, source: torch.Tensor, nb: Neighbourhood) -> torch.Tensor:
        """Token-grid attention. Works token-major (b, n, channels) so that gathering the
        neighbours copies whole contiguous rows; out-of-grid offsets hit an appended zero row."""
        b, c, n, _ = x.shape
        hd = c // self.heads
        q = self.q(x).permute(0, 2, 3, 1).reshape(b, 1, n, self.heads, hd)
        kv = self.kv(source).permute(0, 2, 3, 1).reshape(b, -1, 2 * c)
        kv = F.pad(kv, (0, 0, 0, 1)).index_select(1, nb.index.flatten())
        kv = kv.view(b, -1, n, 2, self.heads, hd)  # (b, K, n, k|v, heads, hd)
        bias = self.rel_bias[:, nb.offsets, 0].t().unsqueeze(1)  # (K, 1, heads)
        logits = (q * kv[:, :, :, 0]).sum(-1) / math.sqrt(hd) + bias  # (b, K, n, heads)
        logits = logits.masked_fill(~nb.valid.unsqueeze(-1), -1e4)
        attn = logits.softmax(dim=1)
        out = (attn.unsqueeze(-1) * kv[:, :, :, 1]).sum(1)  # (b, n, heads, hd)
        return self.proj(out.reshape(b, n, c).permute(0, 2, 1).unsqueeze(-1))


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
