#!/usr/bin/env python3
"""The fast path's entropy networks (h_a, h_s, g_ep) in bf16 against float32: encode time and
what moves in the rate map.

    OMP_NUM_THREADS=1 .venv/bin/python tools/entropy_bf16_probe.py --kodak ../shared/data/kodak \
        [--images 6] [--json docs/results/speed/entropy_bf16_probe.json]

Both are the inference fast path of the shipped model with bf16 autocast forced (a CPU without
native bf16 emulates it, so run this where it is native); they differ only in the entropy model's
networks. Reports per Kodak image and λ the symbol count, the share of latent positions whose
rate index differs and the PSNR after AWGN at 10 dB (same noise draw, the same receiver), and the median encode time of a random 512×256 frame on one thread,
interleaved rounds.
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
from pathlib import Path

import torch

from core.codec.fast import Autocast
from core.codec.learned import LearnedCodec
from core.codec.provenance import weights_identity
from core.experiments.bench import median_ms
from core.machine import cpu_description
from core.media.imageio import read_rgb

log = logging.getLogger("entropy_bf16_probe")


def float32_entropy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of the fast model with the entropy networks taken out of bf16 autocast."""
    out = copy.deepcopy(model)
    for name in ("h_a", "h_s", "g_ep"):
        net = getattr(out.entropy, name)
        if isinstance(net, Autocast):
            setattr(out.entropy, name, net.inner)
    return out


def psnr_over_awgn(model: torch.nn.Module, tx, x: torch.Tensor, snr_db: float, seed: int = 0) -> float:
    """PSNR of ``tx`` decoded after AWGN at ``snr_db`` (unit symbol power; seeded noise)."""
    gen = torch.Generator().manual_seed(seed)
    sigma = (10 ** (-snr_db / 10) / 2) ** 0.5
    noise = torch.complex(torch.randn(tx.symbols.shape, generator=gen), torch.randn(tx.symbols.shape, generator=gen))
    x_hat = model.receive(tx.symbols + sigma * noise, tx.rate_index, tuple(x.shape[-2:]), tx.lam, snr_db)
    return float(10 * torch.log10(1 / torch.mean((x_hat - x) ** 2)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kodak", type=Path, required=True, help="folder of Kodak PNGs (test images)")
    p.add_argument("--images", type=int, default=6)
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    bf16 = LearnedCodec(fast=True, bf16=True).inference_model
    f32 = float32_entropy(bf16)
    eta, snr = 0.3, 10.0
    images = []
    with torch.no_grad():
        for path in sorted(args.kodak.glob("*.png"))[:args.images]:
            x = torch.from_numpy(read_rgb(str(path))).permute(2, 0, 1)[None].float() / 255
            for lam in (0.048, 0.72):
                a, b = f32.transmit(x, lam, eta, snr), bf16.transmit(x, lam, eta, snr)
                ka = int(f32.quantizer.symbols(a.rate_index).sum())
                kb = int(bf16.quantizer.symbols(b.rate_index).sum())
                moved = float((a.rate_index != b.rate_index).float().mean())
                pa, pb = (psnr_over_awgn(f32, t, x, snr) for t in (a, b))
                images.append({"image": path.name, "lam": lam, "symbols_f32": ka, "symbols_bf16": kb,
                               "symbols_change_pct": round(100 * (kb - ka) / ka, 3),
                               "rate_index_moved_pct": round(100 * moved, 2),
                               "psnr_f32_entropy": round(pa, 3), "psnr_bf16_entropy": round(pb, 3)})
                log.info("%s λ %g: symbols %d -> %d, rate index moved at %.1f %% of positions, "
                         "PSNR %.2f -> %.2f dB", path.name, lam, ka, kb, 100 * moved, pa, pb)
        x = torch.rand(1, 3, 256, 512)
        rounds = []
        for _ in range(args.rounds):
            rounds.append({"encode_ms_f32_entropy": round(median_ms(lambda: f32.transmit(x, 0.18, eta, snr), 15), 2),
                           "encode_ms_bf16_entropy": round(median_ms(lambda: bf16.transmit(x, 0.18, eta, snr), 15), 2)})
            log.info("encode 512x256: %s", rounds[-1])
    out = {"cpu": cpu_description(), "model": weights_identity(), "eta": eta, "snr_db": snr,
           "images": images, "timing_512x256_one_thread": rounds}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
