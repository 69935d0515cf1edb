#!/usr/bin/env python3
"""A quick look at a training checkpoint between promotions: the chain's PSNR and CBR on a few
whole Kodak images at a few (λ, η), AWGN, through the model's own forward pass.

    .venv/bin/python tools/probe_checkpoint.py runs/train_small/last.pt [--weights ema|model]
        [--images 1,5,14,20] [--snr 10] [--markdown out.md]

It reads ``last.pt`` (raw or EMA weights) or an exported ``.safetensors`` file, so it also works
on runs of an experimental config (``small_prior``, which cannot transmit yet). The channel is
simulated inside ``forward`` (true SNR, fixed seed) and the side information is not counted: the
figures compare checkpoints with each other, not with the classical chain (for that, use
``ntscc-xr eval rd`` through ``tools/promote_candidate.py``). About a minute on one thread.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.codec.checkpoint import load_model, read_metadata  # noqa: E402
from core.codec.model import NTSCCPlus  # noqa: E402
from core.experiments.evaluate import DEFAULT_KODAK  # noqa: E402
from core.media.imageio import read_rgb  # noqa: E402
from core.media.metrics import psnr_from_mse  # noqa: E402

log = logging.getLogger("probe_checkpoint")

#: (λ, η) points from the low to the high end of the trained range
POINTS = ((0.18, 0.1), (0.36, 0.2), (0.72, 0.2), (0.72, 0.4), (0.72, 0.8))


def training_step(path: str) -> int | None:
    """The training step a checkpoint or export records."""
    if path.endswith(".safetensors"):
        return read_metadata(path)["info"].get("step")
    return torch.load(path, map_location="cpu", weights_only=True).get("step")


@torch.no_grad()
def probe(model: NTSCCPlus, images: list[np.ndarray], snr_db: float) -> list[tuple[float, float, float, float]]:
    """(λ, η, mean CBR, mean PSNR) for each of :data:`POINTS`."""
    rows = []
    for lam, eta in POINTS:
        torch.manual_seed(0)
        psnrs, cbrs = [], []
        for rgb in images:
            x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
            out = model(x, lam, eta, snr_db)
            psnrs.append(psnr_from_mse(float(((out["x_hat"].clamp(0, 1) - x) ** 2).mean()), peak=1.0))
            cbrs.append(float(out["k_bar"].sum()) / (3 * x.shape[-1] * x.shape[-2]))
        rows.append((lam, eta, float(np.mean(cbrs)), float(np.mean(psnrs))))
        log.info("λ %g η %g: CBR %.4f, %.2f dB", *rows[-1])
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="runs/<run>/last.pt or a .safetensors export")
    p.add_argument("--weights", choices=["ema", "model"], default="ema", help="which weights of a last.pt")
    p.add_argument("--dataset", default=str(DEFAULT_KODAK))
    p.add_argument("--images", default="1,5,14,20", help="Kodak image numbers")
    p.add_argument("--snr", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--markdown", help="also write the table here")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)
    try:
        model, step = load_model(args.checkpoint, weights=args.weights), training_step(args.checkpoint)
    except (FileNotFoundError, KeyError) as exc:
        raise SystemExit(str(exc)) from None
    names = [f"kodim{int(i):02d}" for i in args.images.split(",")]
    images = [read_rgb(Path(args.dataset) / f"{n}.png") for n in names]
    rows = probe(model, images, args.snr)
    lines = [f"`{args.checkpoint}` ({args.weights if args.checkpoint.endswith('.pt') else 'export'}, "
             f"step {step}, config `{model.cfg.name}`): {', '.join(names)}, AWGN {args.snr:g} dB, "
             "forward pass (side information not counted).", "",
             "| λ | η | CBR | PSNR dB |", "|---|---|---|---|"]
    lines += [f"| {lam:g} | {eta:g} | {cbr:.4f} | {psnr:.2f} |" for lam, eta, cbr, psnr in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
