"""Time one training step of the shipped model on this CPU, float32 against bf16 autocast.

Same batches, conditions and channel noise in both precisions; reports the median and minimum
seconds per step (forward, loss, backward, Adam) and, on a few batches, how far the bf16
gradient is from the float32 one next to how far a second noise draw moves the float32 gradient
(the sampling noise the training already lives with).

    .venv/bin/python tools/bench_train_step.py --steps 14 --threads 2 --json docs/results/train_step_bf16.json
"""
from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from core.codec.checkpoint import load_model  # noqa: E402
from core.codec.fast import native_bf16  # noqa: E402
from core.experiments.train import DEFAULT_DATA, CropSampler, forward_loss, sample_conditions  # noqa: E402
from core.machine import cpu_description  # noqa: E402
from core.paths import REPO_ROOT  # noqa: E402

log = logging.getLogger("bench_train_step")


def step(model, x, lam, eta, snr, bf16: bool, seed: int, dist_scale: float) -> tuple[float, torch.Tensor]:
    """One forward + backward; returns (loss, flattened gradient of g_a and g_s)."""
    torch.manual_seed(seed)
    loss, *_ = forward_loss(model, x, lam, eta, snr, "compat", dist_scale, 1.0, amp=bf16)
    model.zero_grad(set_to_none=True)
    loss.backward()
    grad = torch.cat([p.grad.flatten() for n, p in model.named_parameters()
                      if n.startswith(("g_a", "g_s")) and p.grad is not None])
    return float(loss.detach()), grad


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=str(REPO_ROOT / "weights" / "ntscc_plus_small.safetensors"))
    p.add_argument("--data", default=str(DEFAULT_DATA), help="training images (never Kodak)")
    p.add_argument("--steps", type=int, default=14, help="timed steps per precision (2 more warm up)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dist-scale", type=float, default=0.04)
    p.add_argument("--json", default=None, help="write the figures here")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    model = load_model(args.weights, cpu).train().to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=0.0)  # the optimiser's cost, not its effect
    sampler = CropSampler(args.data, args.crop, 1, 0.0)
    rng = random.Random(1)
    batches = [(sampler.batch(args.batch).contiguous(memory_format=torch.channels_last),
                *sample_conditions("compat", model.cfg, args.batch, rng, "log-uniform"))
               for _ in range(args.steps + 2)]
    times: dict[str, list[float]] = {}
    for name, bf16 in (("float32", False), ("bf16", True)):
        t = []
        for i, (x, lam, eta, snr) in enumerate(batches):
            t0 = time.perf_counter()
            step(model, x, lam, eta, snr, bf16, i, args.dist_scale)
            opt.step()
            t.append(time.perf_counter() - t0)
        times[name] = t[2:]
        log.info("%-8s median %.3f s/step, min %.3f", name, statistics.median(t[2:]), min(t[2:]))
    agreement = []
    for i, (x, lam, eta, snr) in enumerate(batches[:3]):
        l32, g32 = step(model, x, lam, eta, snr, False, 100 + i, args.dist_scale)
        l16, g16 = step(model, x, lam, eta, snr, True, 100 + i, args.dist_scale)
        _, g_redraw = step(model, x, lam, eta, snr, False, 200 + i, args.dist_scale)
        cos = torch.nn.functional.cosine_similarity
        agreement.append(dict(loss_float32=l32, loss_bf16=l16,
                              grad_cos_bf16_vs_float32=float(cos(g16, g32, dim=0)),
                              grad_cos_redraw_vs_float32=float(cos(g_redraw, g32, dim=0))))
        log.info("batch %d: loss %.4f / %.4f; g_a+g_s gradient cosine bf16 %.3f, another noise draw %.3f",
                 i, l32, l16, agreement[-1]["grad_cos_bf16_vs_float32"], agreement[-1]["grad_cos_redraw_vs_float32"])
    result = dict(
        command="python " + " ".join(sys.argv), cpu=cpu_description(), native_bf16=native_bf16(cpu),
        batch=args.batch, crop=args.crop, threads=args.threads,
        sec_per_step={k: dict(median=statistics.median(v), min=min(v)) for k, v in times.items()},
        speedup_median=statistics.median(times["float32"]) / statistics.median(times["bf16"]),
        gradient_agreement=agreement)
    log.info("bf16 speed-up (median): %.2fx", result["speedup_median"])
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
