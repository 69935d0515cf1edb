#!/usr/bin/env python3
"""Per-ν encoding against a fixed ν = 10 dB encoder at the same (λ, η): PSNR and symbols.

The learned encoder is told the CQI ν; its rate response moves the symbol count with ν too, so
at a fixed CBR budget on a coarse η grid the two encoders can land a grid step apart (``eval snr``
now also interpolates). This probe holds (λ, η) fixed instead and reports, per channel SNR, both
encoders' PSNR (decoded with the true SNR, AWGN, 2 noise seeds) and CBR on the repo's Kodak
fixtures. Usage::

    .venv/bin/python tools/nu_encoding_probe.py --markdown docs/results/nu_encoding_probe.md
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.codec.learned import LearnedCodec  # noqa: E402
from core.codec.provenance import markdown_line, weights_identity  # noqa: E402
from core.link import sidepart  # noqa: E402
from core.media.imageio import read_rgb  # noqa: E402
from core.media.metrics import psnr  # noqa: E402

FIXTURES = [REPO / "tests" / "fixtures" / "kodak" / f"{n}.png" for n in ("kodim05_crop", "kodim10", "kodim20")]
log = logging.getLogger("nu_encoding_probe")


def transmit(codec: LearnedCodec, img: np.ndarray, lam: float, eta: float, nu_db: float,
             snr_db: float, seed: int) -> tuple[float, float]:
    """(PSNR, CBR) of one AWGN transmission encoded for ``nu_db`` over a ``snr_db`` channel."""
    enc = codec.encode(img, lam, eta, nu_db)
    received = sidepart.awgn(enc.symbols, snr_db, np.random.default_rng(seed))
    rec = codec.decode(received, enc.side, snr_db=snr_db)
    return psnr(img, rec), enc.cbr


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=None)
    p.add_argument("--snrs", default="0,2,4,6,8,12,14")
    p.add_argument("--lam", type=float, default=0.18)
    p.add_argument("--eta", type=float, default=0.2)
    p.add_argument("--markdown", type=Path, default=None)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    codec = LearnedCodec(device="cpu", weights=args.weights)
    images = [read_rgb(f) for f in FIXTURES]
    rows = ["| channel SNR dB | per-ν PSNR dB | ν = 10 dB PSNR dB | gain dB | per-ν CBR | ν = 10 dB CBR | symbols |",
            "|---|---|---|---|---|---|---|"]
    for snr in (float(v) for v in args.snrs.split(",")):
        per_nu = [transmit(codec, im, args.lam, args.eta, snr, snr, s) for im in images for s in (0, 1)]
        fixed = [transmit(codec, im, args.lam, args.eta, 10.0, snr, s) for im in images for s in (0, 1)]
        (pa, ca), (pb, cb) = np.mean(per_nu, axis=0), np.mean(fixed, axis=0)
        rows.append(f"| {snr:g} | {pa:.2f} | {pb:.2f} | {pa - pb:+.2f} | {ca:.4f} | {cb:.4f} | {100 * (ca / cb - 1):+.1f} % |")
        log.info("%s", rows[-1])
    text = "\n".join(rows)
    if args.markdown:
        args.markdown.write_text(
            f"# Per-ν encoding vs a fixed ν = 10 dB encoder at λ {args.lam:g}, η {args.eta:g}\n\n"
            f"Weights: {args.weights or 'shipped'}; {len(images)} Kodak fixtures (tests/fixtures/kodak), "
            "AWGN, decoder given the true SNR, 2 noise seeds each.\n\n"
            f"{text}\n\nCommand: `.venv/bin/python tools/nu_encoding_probe.py {' '.join(sys.argv[1:])}`\n\n"
            f"{markdown_line(weights_identity(args.weights))}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
