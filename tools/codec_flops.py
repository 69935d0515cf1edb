"""FLOPs of one learned-codec encode and decode, by module, beside their measured time.

    .venv/bin/python tools/codec_flops.py [--resolution 512x256] [--threads 1]

Counts with ``torch.utils.flop_counter`` (multiply-adds × 2; convolutions, matmuls and attention;
elementwise work is not counted) on the float32 model, then times each of g_a, g_s and the whole
encode / decode of the inference fast path (bf16 where native) on random input, median of 20.
It answers whether a faster kernel or fewer operations is what a frame rate target needs.
"""
from __future__ import annotations

import argparse
import json
import logging

import torch
from torch.utils.flop_counter import FlopCounterMode

from core.codec.learned import LearnedCodec
from core.experiments.bench import median_ms
from core.machine import cpu_description
from core.media.source import parse_resolution

log = logging.getLogger("codec_flops")


#: the counter names modules by class; what each top-level one is in this model
_PARTS = {"AnalysisTransform": "g_a", "SynthesisTransform": "g_s", "JSCCBranch": "JSCC",
          "Sequential": "entropy h_a, h_s, g_ep", "MaskedConv2d": "entropy context",
          "Conv2d": "other convolutions"}


def _by_class(counter: FlopCounterMode) -> dict[str, float]:
    """GFLOP of each top-level part of the model."""
    return {_PARTS.get(k, k): round(sum(v.values()) / 1e9, 3)
            for k, v in counter.get_flop_counts().items() if "." not in k and k != "Global"}


def count_flops(codec: LearnedCodec, x: torch.Tensor, lam: float, eta: float, snr: float):
    """(encode FlopCounterMode, decode FlopCounterMode, the transmission) of one image."""
    enc, dec = FlopCounterMode(display=False), FlopCounterMode(display=False)
    with torch.no_grad():
        with enc:
            tx = codec.model.transmit(x, lam, eta, snr)
        with dec:
            codec.model.receive(tx.symbols, tx.rate_index, tuple(x.shape[-2:]), lam, snr)
    return enc, dec, tx


def time_fast_path(codec: LearnedCodec, x: torch.Tensor, tx, lam: float, eta: float,
                   snr: float) -> dict[str, float]:
    """Median ms of the fast path's encode, decode, g_a and g_s on ``x``."""
    m, size = codec.inference_model, tuple(x.shape[-2:])
    with torch.no_grad():
        y = m.analysis(x, torch.full((1,), lam))[0]
        runs = {"encode_ms": lambda: m.transmit(x, lam, eta, snr),
                "decode_ms": lambda: m.receive(tx.symbols, tx.rate_index, size, lam, snr),
                "g_a_ms": lambda: m.g_a(x), "g_s_ms": lambda: m.g_s(y)}
        return {k: round(median_ms(fn), 2) for k, fn in runs.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resolution", type=parse_resolution, default=(512, 256), help="ERP WxH")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    w, h = args.resolution
    x = torch.rand(1, 3, h, w)
    lam, eta, snr = 0.18, 0.3, 10.0
    plain, fast = LearnedCodec(fast=False), LearnedCodec(fast=True)
    enc, dec, tx = count_flops(plain, x, lam, eta, snr)
    out = {"cpu": cpu_description(), "resolution": f"{w}x{h}", "threads": args.threads,
           "fast_path": str(fast.fast_options),
           "encode_gflop": round(enc.get_total_flops() / 1e9, 3),
           "decode_gflop": round(dec.get_total_flops() / 1e9, 3),
           "encode_gflop_by_module": _by_class(enc), "decode_gflop_by_module": _by_class(dec),
           **time_fast_path(fast, x, tx, lam, eta, snr)}
    for key in ("encode", "decode"):
        gf = out[f"{key}_gflop"]
        log.info("%s: %.2f GFLOP in %.1f ms = %.0f GFLOP/s  %s", key, gf, out[f"{key}_ms"],
                 gf / out[f"{key}_ms"] * 1e3, out[f"{key}_gflop_by_module"])
    log.info("g_a %.1f ms, g_s %.1f ms (%s, %d thread(s))", out["g_a_ms"], out["g_s_ms"], out["cpu"],
             args.threads)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
