#!/usr/bin/env python3
"""GPU (or CPU) benchmark of the learned codec alone, as JSON.

Needs only PyTorch, numpy and safetensors: run it from a checkout without installing the
project (it imports ``core.codec`` from the checkout beside it), no GNU Radio, no Pillow. The
test image is a deterministic synthetic one (or an (H, W, 3) uint8 ``.npy`` via ``--image``),
resized per resolution with torch.

Reports, per device:

* ``latency``: encode / decode ms (median, synchronised) at 768×512 (the paper's Table II
  analogue, the size of a Kodak image);
* ``chain``: the learned chain at ERP 1024×512 and 2048×1024, codec only (no flowgraph):
  encode, complex AWGN at the CQI, decode, per frame; ``fps_serial`` = one frame after the other
  on one device, ``fps_pipelined`` = 1000 / max(encode, decode) (TX and RX on their own
  processes / streams, as the live demo runs them).

Examples::

    python tools/bench_gpu.py                         # cuda when present, else cpu
    python tools/bench_gpu.py --device cuda --json docs/results/bench_gpu.json
    python tools/bench_gpu.py --device cpu --latency-size 64x32 --chain-sizes 64x32 --repeat 1
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the checkout's core/, ahead of any installed copy

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from core.machine import cpu_model  # noqa: E402


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' -> (W, H)."""
    w, h = (int(v) for v in text.lower().split("x"))
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"bad size {text!r}")
    return w, h


def synthetic_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Deterministic (H, W, 3) uint8 test image: colour gradients, gratings of several
    frequencies, blocks with hard edges and mild noise (natural-image-like statistics)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    img = np.zeros((height, width, 3))
    for c in range(3):
        img[..., c] = (0.3 * (xx if c != 1 else yy)
                       + 0.2 * np.sin(2 * np.pi * (6 + 10 * c) * (xx + 0.3 * c * yy))
                       + 0.1 * np.sin(2 * np.pi * 40 * yy * (1 + c)))
    bh, bw = max(1, height // 16), max(1, width // 16)
    blocks = rng.random((bh, bw, 3))
    img += 0.4 * np.repeat(np.repeat(blocks, -(-height // bh), 0), -(-width // bw), 1)[:height, :width]
    img += 0.03 * rng.standard_normal(img.shape)
    img = (img - img.min()) / (img.max() - img.min())
    return (img * 255 + 0.5).astype(np.uint8)


def resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    if rgb.shape[:2] == (height, width):
        return rgb
    t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()
    t = F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return t[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_codec(codec, rgb: np.ndarray, args, awgn: bool) -> dict:
    """Median encode / decode ms of one image (after warm-up), and the PSNR of the last decode."""
    dev = codec.device
    rng = np.random.default_rng(0)
    enc_t, dec_t, rec = [], [], None
    for i in range(args.warmup + args.repeat):
        _sync(dev); t0 = time.perf_counter()
        enc = codec.encode(rgb, args.lam, args.eta, args.snr)
        _sync(dev); t1 = time.perf_counter()
        sym = enc.symbols
        if awgn:
            sigma = np.sqrt(10 ** (-args.snr / 10) / 2)
            sym = sym + (sigma * (rng.standard_normal(sym.size) + 1j * rng.standard_normal(sym.size))
                         ).astype(np.complex64)
        t2 = time.perf_counter()
        rec = codec.decode(sym, enc.side)
        _sync(dev); t3 = time.perf_counter()
        if i >= args.warmup:
            enc_t.append(t1 - t0); dec_t.append(t3 - t2)
    mse = float(np.mean((rgb.astype(np.float64) - rec.astype(np.float64)) ** 2))
    enc_ms, dec_ms = 1e3 * float(np.median(enc_t)), 1e3 * float(np.median(dec_t))
    return {"encode_ms": round(enc_ms, 2), "decode_ms": round(dec_ms, 2),
            "encode_ms_min": round(1e3 * min(enc_t), 2), "decode_ms_min": round(1e3 * min(dec_t), 2),
            "psnr_db": round(10 * np.log10(255 ** 2 / mse), 2) if mse > 0 else float("inf"),
            "cbr": round(float(enc.cbr), 4), "runs": len(enc_t)}


def run(args) -> dict:
    from core.codec.learned import LearnedCodec, pick_device

    device = pick_device(args.device)
    if device.type == "cpu" and args.threads:
        torch.set_num_threads(args.threads)
    codec = LearnedCodec(device=str(device), weights=args.weights, fast=args.fast)
    base = np.load(args.image) if args.image else None
    if base is not None and (base.ndim != 3 or base.shape[2] != 3 or base.dtype != np.uint8):
        raise SystemExit(f"--image must hold an (H, W, 3) uint8 array, got {base.shape} {base.dtype}")

    def image(w, h):
        return resize(base, w, h) if base is not None else synthetic_image(w, h)

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = cpu_model()
    out = {"device": str(device), "device_name": name, "torch": torch.__version__,
           "torch_threads": torch.get_num_threads() if device.type == "cpu" else None,
           "path": codec.fast_options.describe() if codec.fast_options else "float32 (--no-fast)",
           "image": args.image or "synthetic", "lam": args.lam, "eta": args.eta, "snr_db": args.snr,
           "warmup": args.warmup, "repeat": args.repeat}
    w, h = args.latency_size
    out["latency"] = {f"{w}x{h}": time_codec(codec, image(w, h), args, awgn=False)}
    out["chain"] = {}
    for w, h in args.chain_sizes:
        r = time_codec(codec, image(w, h), args, awgn=True)
        r["fps_serial"] = round(1000.0 / (r["encode_ms"] + r["decode_ms"]), 2)
        r["fps_pipelined"] = round(1000.0 / max(r["encode_ms"], r["decode_ms"]), 2)
        out["chain"][f"{w}x{h}"] = r
    if device.type == "cuda":
        out["max_memory_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto (cuda when present) | cuda | cpu")
    p.add_argument("--weights", default=None, help="safetensors checkpoint (default: the shipped one)")
    p.add_argument("--image", default=None, help="(H, W, 3) uint8 .npy test image (default: synthetic)")
    p.add_argument("--latency-size", type=parse_size, default=(768, 512), help="WxH for encode/decode ms")
    p.add_argument("--chain-sizes", type=lambda s: [parse_size(v) for v in s.split(",")],
                   default=[(1024, 512), (2048, 1024)], help="comma list of ERP WxH for the chain fps")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--lam", type=float, default=0.18)
    p.add_argument("--eta", type=float, default=0.2)
    p.add_argument("--snr", type=float, default=10.0, help="AWGN SNR / CQI in dB")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--fast", action=argparse.BooleanOptionalAction, default=True,
                   help="inference fast path (bf16 autocast where native); --no-fast = float32")
    p.add_argument("--json", default=None, help="also write the result here")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    result = run(args)
    text = json.dumps(result, indent=1)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
