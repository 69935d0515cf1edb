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
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from core.codec.learned import LearnedCodec
from core.machine import cpu_description
from core.media.source import parse_resolution

log = logging.getLogger("codec_flops")


def _median_ms(fn, n: int = 20) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * sorted(times)[n // 2]


def _by_top_module(counter: FlopCounterMode) -> dict[str, float]:
    return {k: round(sum(v.values()) / 1e9, 3) for k, v in counter.get_flop_counts().items()
            if "." not in k and k != "Global"}


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
    plain, fast = LearnedCodec(fast=False), LearnedCodec(fast=True)
    lam, eta, snr = 0.18, 0.3, 10.0
    with torch.no_grad():
        enc_count, dec_count = FlopCounterMode(display=False), FlopCounterMode(display=False)
        with enc_count:
            tx = plain.model.transmit(x, lam, eta, snr)
        with dec_count:
            plain.model.receive(tx.symbols, tx.rate_index, (h, w), lam, snr)
        m = fast.inference_model
        y = m.analysis(x, torch.full((1,), lam))[0]
        out = {
            "cpu": cpu_description(), "resolution": f"{w}x{h}", "threads": args.threads,
            "fast_path": str(fast.fast_options),
            "encode_gflop": round(enc_count.get_total_flops() / 1e9, 3),
            "decode_gflop": round(dec_count.get_total_flops() / 1e9, 3),
            "encode_gflop_by_module": _by_top_module(enc_count),
            "decode_gflop_by_module": _by_top_module(dec_count),
            "encode_ms": round(_median_ms(lambda: m.transmit(x, lam, eta, snr)), 2),
            "decode_ms": round(_median_ms(lambda: m.receive(tx.symbols, tx.rate_index, (h, w), lam, snr)), 2),
            "g_a_ms": round(_median_ms(lambda: m.g_a(x)), 2),
            "g_s_ms": round(_median_ms(lambda: m.g_s(y)), 2),
        }
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
