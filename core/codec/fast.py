"""Inference fast path of the learned codec: the same model, prepared for speed at load time.

:func:`prepare_fast` takes any loaded :class:`~core.codec.model.NTSCCPlus` (any checkpoint of
the ``small`` config, say) and returns a copy rewritten for inference; the float32 model it was
made from is left untouched for training and NTSCC++ editing. Nothing is precomputed on disk:
everything is derived from the weights when the codec starts (milliseconds).

What it does, chosen by measurement (see docs/results/speed.md):

* **bf16 autocast** of g_a, g_s and the JSCC branches where the hardware computes bf16 natively
  (CUDA; a CPU with AVX-512 BF16 or AMX). On a CPU without them (this repo's 2-core Xeon)
  bf16 is emulated and 2-3× slower, so it is not used there.

Measured and not used (docs/results/speed.md): int8 static quantisation of g_a (``torch.ao``,
x86 backend, VNNI) made g_a 2.6× faster but moved the latent by 3-10 % (relative L2) whatever
the calibration set, costing up to 2.5 dB on kodim20; its int8 transposed convolutions made g_s
slower. The float32 convolutions of g_a/g_s already run near this CPU's peak (~100 GFLOP/s on
one core). An exact rewrite gains nothing either: the JSCC's 1×1 convolutions on (B, C, N, 1) token grids
take ``thnn_conv2d``, but that path is one GEMM already (a 128→256 1×1 conv on 256 tokens:
330 µs as Conv2d, 325-358 µs as ``F.linear``/``addmm``), so the fast path does not rewrite them.
On such a CPU the fast path is the float32 model itself.

The entropy model (likelihoods, bits) and the rate-map computation stay float32: the rate index
moves only where g_a's own output moved (a position on a quantiser boundary), and the side
information carries the TX's rate map, so TX and RX stay consistent whatever either runs.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from .model import NTSCCPlus


def native_bf16(device: torch.device) -> bool:
    """True where bf16 matmuls/convolutions run natively (not emulated)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class Autocast(nn.Module):
    """Run ``inner`` under bf16 autocast and return float32 (callers see float32 only)."""

    def __init__(self, inner: nn.Module, device_type: str):
        super().__init__()
        self.inner, self.device_type = inner, device_type

    def __getattr__(self, name):  # JSCC code reads e.g. ``net.out[-1].out_channels``
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.inner, name)

    def forward(self, *args, **kwargs):
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            out = self.inner(*args, **kwargs)
        return out.float()


@dataclass
class FastOptions:
    """Which rewrites :func:`prepare_fast` applied (reported by ``ntscc-xr bench``)."""

    bf16: bool = False

    def describe(self) -> str:
        return "bf16 autocast (g_a, g_s, JSCC branches)" if self.bf16 else "float32 (bf16 not native here)"


def prepare_fast(model: NTSCCPlus, device: torch.device | str = "cpu",
                 bf16: bool | None = None) -> tuple[NTSCCPlus, FastOptions]:
    """An inference copy of ``model`` with the fast-path rewrites for ``device``.

    ``bf16`` defaults to whether bf16 is native on the device. The returned model must not be
    trained (its parameters do not require gradients).
    """
    device = torch.device(device)
    opts = FastOptions()
    use_bf16 = native_bf16(device) if bf16 is None else bf16
    if not use_bf16:
        return model, opts  # nothing pays off here: the float32 model itself
    fast = copy.deepcopy(model).to(device).eval()
    for p in fast.parameters():
        p.requires_grad_(False)
    if use_bf16:
        dt = device.type
        fast.g_a = Autocast(fast.g_a, dt)
        fast.g_s = Autocast(fast.g_s, dt)
        for name in ("enc_a", "enc_na", "dec_a", "dec_na"):
            setattr(fast.jscc, name, Autocast(getattr(fast.jscc, name), dt))
        opts.bf16 = True
    return fast, opts
