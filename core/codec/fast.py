"""Inference fast path of the learned codec: the same model, prepared for speed at load time.

:func:`prepare_fast` takes any loaded :class:`~core.codec.model.NTSCCPlus` (any checkpoint of
the ``small`` config, say) and returns a copy rewritten for inference; the float32 model it was
made from is left untouched for training and NTSCC++ editing. Nothing is precomputed on disk:
everything is derived from the weights when the codec starts (milliseconds).

What it does, chosen by measurement (see docs/results/speed.md):

* **bf16 autocast** of g_a, g_s and the JSCC branches where the hardware computes bf16 natively
  (CUDA; a CPU with AVX-512 BF16 or AMX). On a CPU without them (this repo's 2-core Xeon)
  bf16 is emulated and 2-3× slower, so it is not used there.
* **g_a on ONNX Runtime** on a CPU where bf16 is not native: g_a is exported from the loaded
  weights at its first call (in memory, ~0.4 s; height and width free) and run by ONNX Runtime's CPU
  provider on as many threads as torch uses. Same float32 arithmetic (max |Δy| ~3e-6); one
  thread, 512×256: g_a 107 → 80 ms (median of 25 interleaved runs). g_s stays PyTorch: ONNX
  Runtime's transposed convolutions were no faster here (135 vs 120 ms, within the noise, and
  slower in a second run). Where onnxruntime/onnx are not installed, g_a stays PyTorch.

Measured and not used (docs/results/speed.md): int8 static quantisation of g_a (``torch.ao``,
x86 backend, VNNI) made g_a 2.6× faster but moved the latent by 3-10 % (relative L2) whatever
the calibration set, costing up to 2.5 dB on kodim20; its int8 transposed convolutions made g_s
slower. The float32 convolutions of g_a/g_s already run near this CPU's peak (~100 GFLOP/s on
one core). An exact rewrite gains nothing either: the JSCC's 1×1 convolutions on (B, C, N, 1) token grids
take ``thnn_conv2d``, but that path is one GEMM already (a 128→256 1×1 conv on 256 tokens:
330 µs as Conv2d, 325-358 µs as ``F.linear``/``addmm``), so the fast path does not rewrite them.
On such a CPU the fast path is otherwise the float32 model itself.

The entropy model (likelihoods, bits) and the rate-map computation stay float32: the rate index
moves only where g_a's own output moved (a position on a quantiser boundary), and the side
information carries the TX's rate map, so TX and RX stay consistent whatever either runs.
"""
from __future__ import annotations

import copy
import importlib.util
import io
import logging
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..machine import cpu_flags
from .model import NTSCCPlus

log = logging.getLogger(__name__)


def native_bf16(device: torch.device) -> bool:
    """True where bf16 matmuls/convolutions run natively (not emulated)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


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


class OnnxAnalysis(nn.Module):
    """g_a run by ONNX Runtime: exported once from ``g_a``'s weights at the first call (so a
    receiver, which never runs g_a, pays nothing), any image size.

    Parameters
    ----------
    g_a : nn.Module
        The analysis transform (float32, CPU) to export; also the fallback if the export or the
        runtime fails (logged once).
    threads : int
        ONNX Runtime intra-op threads (the torch thread count of the process).

    Input: image (B, 3, H, W) float32, H and W multiples of 16. Output: latent (B, M, H/16, W/16)
    float32 torch tensor, the same as ``g_a`` gives up to float rounding.
    """

    def __init__(self, g_a: nn.Module, threads: int):
        super().__init__()
        self.g_a, self.threads = g_a.eval(), max(1, threads)
        self.session = None
        self.failed = False

    def _export(self) -> None:
        import onnxruntime as ort
        buf = io.BytesIO()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on the TorchScript path
            torch.onnx.export(self.g_a, (torch.zeros(1, 3, 64, 64),), buf, dynamo=False, opset_version=17,
                              input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "b", 2: "h", 3: "w"}, "y": {0: "b", 2: "h16", 3: "w16"}})
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = self.threads, 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.session is None and not self.failed:
            try:
                self._export()
            except Exception as exc:  # an exporter or runtime that cannot take the model
                self.failed = True
                log.warning("g_a stays in PyTorch: the ONNX Runtime path failed (%s)", exc)
        if self.session is None:
            return self.g_a(x)
        x = np.ascontiguousarray(x.detach().to(torch.float32).cpu().numpy())
        return torch.from_numpy(self.session.run(None, {"x": x})[0])


def onnxruntime_available() -> bool:
    """True when ONNX Runtime and the ONNX exporter's ``onnx`` package are installed.

    Looked up, not imported: importing them costs ~0.3 s at every TX and RX start, and the RX never
    runs g_a. A broken install shows at the first export and falls back (:class:`OnnxAnalysis`)."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


@dataclass
class FastOptions:
    """Which rewrites :func:`prepare_fast` applied (reported by ``ntscc-xr bench``)."""

    bf16: bool = False
    onnx_g_a: bool = False

    def describe(self) -> str:
        if self.bf16:
            return "bf16 autocast (g_a, g_s, JSCC branches)"
        return "float32, g_a on ONNX Runtime" if self.onnx_g_a else "float32 (bf16 not native here)"


def prepare_fast(model: NTSCCPlus, device: torch.device | str = "cpu",
                 bf16: bool | None = None, onnx: bool | None = None) -> tuple[NTSCCPlus, FastOptions]:
    """An inference copy of ``model`` with the fast-path rewrites for ``device``.

    ``bf16`` defaults to whether bf16 is native on the device; ``onnx`` (g_a on ONNX Runtime)
    to a CPU without native bf16 where onnxruntime is installed. The returned model must not be
    trained (its parameters do not require gradients).
    """
    device = torch.device(device)
    opts = FastOptions()
    use_bf16 = native_bf16(device) if bf16 is None else bf16
    use_onnx = (not use_bf16 and device.type == "cpu" and onnxruntime_available()) if onnx is None else onnx
    if not (use_bf16 or use_onnx):
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
    elif use_onnx:
        fast.g_a = OnnxAnalysis(fast.g_a, torch.get_num_threads())
        opts.onnx_g_a = True
    return fast, opts
