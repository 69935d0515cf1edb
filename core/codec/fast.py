"""Inference fast path of the learned codec: the same model, prepared for speed at load time.

:func:`prepare_fast` takes any loaded :class:`~core.codec.model.NTSCCPlus` (any checkpoint of
the ``small`` config, say) and returns a copy rewritten for inference; the float32 model it was
made from is left untouched for training and NTSCC++ editing. Nothing is precomputed on disk:
everything is derived from the weights when the codec starts (milliseconds).

What it does, chosen by measurement (see docs/results/speed.md):

* **bf16 autocast** of g_a, g_s, the JSCC branches and the entropy model's networks where the
  hardware computes bf16 natively
  (CUDA; a CPU with AVX-512 BF16 or AMX). On a CPU without them (this repo's 2-core Xeon)
  bf16 is emulated and 2-3× slower, so it is not used there.
* **g_a on ONNX Runtime** on a CPU where bf16 is not native: g_a is exported from the loaded
  weights at its first call (in memory, ~0.4 s; height and width free) and run by ONNX Runtime's CPU
  provider on as many threads as torch uses. Same float32 arithmetic (max |Δy| ~3e-6); one
  thread, 512×256: g_a 107 → 80 ms (median of 25 interleaved runs). g_s stays PyTorch: ONNX
  Runtime's transposed convolutions were no faster here (135 vs 120 ms, within the noise, and
  slower in a second run). Where onnxruntime/onnx are not installed, g_a stays PyTorch.

* **g_s's last up-convolution as a sub-pixel convolution** on a CPU (:class:`SubPixelUp`: the
  same function, exact to float rounding; decode −2.4 ms of 32 in bf16 at 512×256, −4 ms in
  float32).

Measured and not used (docs/results/speed.md): int8 static quantisation of g_a (``torch.ao``,
x86 backend, VNNI) made g_a 2.6× faster but moved the latent by 3-10 % (relative L2) whatever
the calibration set, costing up to 2.5 dB on kodim20; its int8 transposed convolutions made g_s
slower. The float32 convolutions of g_a/g_s already run near this CPU's peak (~100 GFLOP/s on
one core). An exact rewrite gains nothing either: the JSCC's 1×1 convolutions on (B, C, N, 1) token grids
take ``thnn_conv2d``, but that path is one GEMM already (a 128→256 1×1 conv on 256 tokens:
330 µs as Conv2d, 325-358 µs as ``F.linear``/``addmm``), so the fast path does not rewrite them.
On such a CPU the fast path is otherwise a float32 copy of the model with only the sub-pixel
rewrite below.

Where bf16 is native the entropy model's networks (h_a, h_s, g_ep) run under bf16 autocast as
well (encode 44 → 41.5 ms at 512×256 on one thread; speed.md section 12); the likelihoods, bits
and the rate map computed from their outputs stay float32. The rate index then moves where a
position sits near a quantiser boundary (2-5 % of the positions by one level on Kodak, the symbol
count within ±0.2 %), and the side information carries the TX's rate map, so TX and RX stay
consistent whatever either runs.
"""
from __future__ import annotations

import copy
import importlib.util
import io
import itertools
import logging
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
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


class SubPixelUp(nn.Module):
    """A stride-2 transposed convolution rewritten as a convolution + pixel shuffle: the same
    function (to float rounding), computed as four output phases of a small ordinary kernel.

    g_s ends in ``ConvTranspose2d(64, 3, 5, stride=2, padding=2, output_padding=1)``: with 3 output
    channels oneDNN runs it at a quarter of its usual rate (one thread, 128×256 input: bf16 4.3 ms,
    float32 7.3 ms); as ``Conv2d(64, 12, 3)`` + ``pixel_shuffle(2)`` it takes 1.8 / 3.4 ms. The
    other up-convolutions (64-96 output channels) are faster as they are, so only this one is
    rewritten. Output phase (r, q) of position (a, b) is Σ W[t, u] · x[a + d, b + e] over the taps
    with r + p − t = 2d and q + p − u = 2e (p the padding).

    Parameters
    ----------
    up : nn.ConvTranspose2d
        stride 2, odd kernel k, padding k // 2, output padding 1 (output size exactly 2×).

    Input: (B, C_in, H, W). Output: (B, C_out, 2H, 2W), the same as ``up``'s.
    """

    def __init__(self, up: nn.ConvTranspose2d):
        super().__init__()
        k, pad = up.kernel_size[0], up.padding[0]
        if (up.stride != (2, 2) or up.kernel_size != (k, k) or k % 2 == 0 or up.padding != (pad, pad)
                or pad != k // 2 or up.output_padding != (1, 1) or up.groups != 1 or up.dilation != (1, 1)):
            raise ValueError(f"SubPixelUp needs a stride-2 odd-kernel up-convolution with padding k//2 "
                             f"and output padding 1, not {up}")
        w = up.weight.detach()  # (C_in, C_out, k, k)
        c_in, c_out = w.shape[:2]
        reach = (pad + 1) // 2  # the farthest input offset |d| any tap reaches
        side = 2 * reach + 1
        # per output phase r: the kernel taps t that reach it and their input offsets d (separable)
        taps = [[(t, (r + pad - t) // 2) for t in range(k) if (r + pad - t) % 2 == 0] for r in range(2)]
        phases = w.new_zeros(c_out, 2, 2, c_in, side, side)
        for r, q in itertools.product(range(2), range(2)):
            for (t, d), (u, e) in itertools.product(taps[r], taps[q]):
                phases[:, r, q, :, d + reach, e + reach] = w[:, :, t, u].t()
        self.conv = nn.Conv2d(c_in, 4 * c_out, side, padding=reach).to(w.device)
        self.conv.weight.data = phases.reshape(4 * c_out, c_in, side, side).contiguous()
        bias = up.bias.detach() if up.bias is not None else w.new_zeros(c_out)
        self.conv.bias.data = bias.repeat_interleave(4)  # pixel_shuffle: channel c·4 + r·2 + q
        self.conv.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(x), 2)


def rewrite_last_up_convolution(g_s: nn.Module) -> bool:
    """Replace g_s's final up-convolution (to RGB) by :class:`SubPixelUp`; True if it did."""
    net = getattr(g_s, "net", None)
    if net is None or not isinstance(net[-1], nn.ConvTranspose2d) or net[-1].out_channels > 4:
        return False
    try:
        net[-1] = SubPixelUp(net[-1])
    except ValueError:  # another up-convolution geometry (a future config): leave it as it is
        return False
    return True


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
    subpixel_g_s: bool = False

    def describe(self) -> str:
        if self.bf16:
            text = "bf16 autocast (g_a, g_s, JSCC branches, entropy networks)"
        else:
            text = "float32, g_a on ONNX Runtime" if self.onnx_g_a else "float32 (bf16 not native here)"
        return text + (", g_s's last up-convolution as sub-pixel convolution" if self.subpixel_g_s else "")


def prepare_fast(model: NTSCCPlus, device: torch.device | str = "cpu",
                 bf16: bool | None = None, onnx: bool | None = None,
                 subpixel: bool | None = None) -> tuple[NTSCCPlus, FastOptions]:
    """An inference copy of ``model`` with the fast-path rewrites for ``device``.

    ``bf16`` defaults to whether bf16 is native on the device; ``onnx`` (g_a on ONNX Runtime)
    to a CPU without native bf16 where onnxruntime is installed; ``subpixel`` (g_s's last
    up-convolution as :class:`SubPixelUp`) to a CPU. The returned model must not be
    trained (its parameters do not require gradients).
    """
    device = torch.device(device)
    opts = FastOptions()
    use_bf16 = native_bf16(device) if bf16 is None else bf16
    use_onnx = (not use_bf16 and device.type == "cpu" and onnxruntime_available()) if onnx is None else onnx
    use_subpixel = device.type == "cpu" if subpixel is None else subpixel
    if not (use_bf16 or use_onnx or use_subpixel):
        return model, opts  # every rewrite turned off: the float32 model itself
    fast = copy.deepcopy(model).to(device).eval()
    if use_subpixel:
        opts.subpixel_g_s = rewrite_last_up_convolution(fast.g_s)
    for p in fast.parameters():  # after the rewrites: their new layers are inference-only too
        p.requires_grad_(False)
    if use_bf16:
        dt = device.type
        fast.g_a = Autocast(fast.g_a, dt)
        fast.g_s = Autocast(fast.g_s, dt)
        for name in ("enc_a", "enc_na", "dec_a", "dec_na"):
            setattr(fast.jscc, name, Autocast(getattr(fast.jscc, name), dt))
        # the entropy model's networks too (the TX's only: the RX never runs them); the
        # likelihoods and the rate map that follow stay float32
        for name in ("h_a", "h_s", "g_ep"):
            setattr(fast.entropy, name, Autocast(getattr(fast.entropy, name), dt))
        opts.bf16 = True
    elif use_onnx:
        fast.g_a = OnnxAnalysis(fast.g_a, torch.get_num_threads())
        opts.onnx_g_a = True
    return fast, opts
