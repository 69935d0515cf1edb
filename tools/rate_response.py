"""Show, or make monotone, the rate response r_global,λ of a training checkpoint.

    .venv/bin/python tools/rate_response.py runs/train_small/last.pt             # show
    .venv/bin/python tools/rate_response.py runs/train_small/last.pt --monotone  # fix and write

log r_global,λ scales the latent before quantisation (y = g_a(x) / r): a larger value is a coarser
step, fewer bits. It must fall as λ rises, or a higher λ buys fewer symbols than a lower one.
Training does not keep it so by itself: the rate quantiser is not differentiable, so the loss sees
what bits cost but not what the symbols they buy are worth, and the knots drift together (the
step-30 000 spread of 1.88 in log r shrank to 1.27 by step 37 600, knot 0.36 above knot 0.18).
``--monotone`` replaces every interior knot whose step is not finer than the knot below it by the
interpolation of its neighbours at its log λ (the rate response is itself exponential-interpolated
between knots), in the model and in its EMA; train on with ``--rate-lr-mult 0`` to hold it.
A safetensors file is only shown.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

KEY = "rate_response.log_r_global"


def monotone(values: list[float], lambdas: list[float]) -> list[float]:
    """Every interior knot whose step is not finer than the knot below it (log r not lower than at
    the next smaller λ) -> the interpolation of its neighbours at its log λ.

    Of a pair out of order it is the higher-λ knot that moves (to a finer step): the drift starves
    the high-rate end, which is where the front must reach."""
    out = list(values)
    x = [math.log(v) for v in lambdas]
    for i in range(1, len(out) - 1):
        if out[i] >= out[i - 1]:
            w = (x[i] - x[i - 1]) / (x[i + 1] - x[i - 1])
            out[i] = (1 - w) * out[i - 1] + w * out[i + 1]
    if all(a > b for a, b in zip(out, out[1:])):
        return out
    raise ValueError(f"log r_global {values} cannot be made monotone by moving interior knots: {out}")


def _states(ckpt: dict) -> dict[str, dict]:
    return {name: ckpt[name] for name in ("model", "ema") if name in ckpt}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="a training checkpoint (last.pt) or a safetensors file")
    ap.add_argument("--monotone", action="store_true", help="fix non-monotone knots and write the checkpoint")
    args = ap.parse_args(argv)
    path = Path(args.checkpoint)
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        with safe_open(str(path), "pt") as f:
            print(f"{path}: log r_global = {[round(float(v), 3) for v in f.get_tensor(KEY)]}")
        return 0
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    lambdas = ckpt["config"]["lambdas"]
    for name, state in _states(ckpt).items():
        print(f"{name}: λ {lambdas} -> log r_global {[round(float(v), 3) for v in state[KEY]]}")
    if not args.monotone:
        return 0
    for name, state in _states(ckpt).items():
        fixed = monotone(state[KEY].tolist(), lambdas)
        state[KEY].copy_(torch.tensor(fixed, dtype=state[KEY].dtype))
        print(f"{name}: now {[round(v, 3) for v in fixed]}")
    tmp = path.with_suffix(".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(path)
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
