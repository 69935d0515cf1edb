#!/usr/bin/env python3
"""Where does the learned chain's quality stop? The transforms alone vs the whole chain, per λ.

For each SQI λ of the model's grid Λ, on Kodak crops:

* ``g_s(g_a(x))``      -- the transforms with no quantisation at all: the ceiling of the model;
* ``NTC``              -- transform coding alone, g_s(round(y)), and its entropy in bits/pixel;
* ``JSCC @ η``         -- the whole chain over AWGN at ``--snr`` (true SNR, no side part): PSNR @ CBR.

* ``linear @ CBR``     -- the same latent sent by a *linear* analog mapping instead of the JSCC
  (``--linear-cbrs``): the CBR budget's real channel uses go to the elements of y − μ with the
  largest σ of the hyperprior, with linear power loading (p_i + N0 ∝ σ_i), LMMSE estimates at the
  receiver, μ where nothing was sent; then g_s. A fixed reference that needs no training, but it
  is given μ and σ, i.e. z at the receiver, for free (the JSCC chain does without z): an upper
  bound for a system that would send z. Where it beats the JSCC by more than z would cost, the
  JSCC, not the channel, is what loses. A budget above one real use per latent element sends
  every element once (the CBR it used is given).

If ``g_s(g_a(x))`` is close to the JSCC curve's top, the transforms cap the high-rate end
(issue 11: "check first whether the transforms or the JSCC limit it"). Run:

    .venv/bin/python tools/transform_ceiling.py [--weights W] [--limit 4] [--markdown out.md]
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.codec.checkpoint import DEFAULT_WEIGHTS, load_model  # noqa: E402
from core.codec.provenance import markdown_line, weights_identity  # noqa: E402
from core.experiments.evaluate import DEFAULT_KODAK  # noqa: E402
from core.media.imageio import list_images, read_rgb  # noqa: E402
from core.media.metrics import psnr_from_mse  # noqa: E402

log = logging.getLogger("transform_ceiling")


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over the batch of the per-image PSNR of images in [0, 1]."""
    mse = ((a.clamp(0, 1) - b) ** 2).mean(dim=(1, 2, 3))
    return float(np.mean([psnr_from_mse(m, peak=1.0) for m in mse.tolist()]))


def load_crops(folder: str, limit: int, size: int) -> torch.Tensor:
    """Centre crops (size x size) of the first ``limit`` images, (N, 3, size, size) in [0, 1]."""
    crops = []
    for f in list_images(folder)[:limit]:
        rgb = read_rgb(f)
        top, left = (rgb.shape[0] - size) // 2, (rgb.shape[1] - size) // 2
        crops.append(torch.from_numpy(np.ascontiguousarray(rgb[top:top + size, left:left + size])))
    return torch.stack(crops).permute(0, 3, 1, 2).float() / 255


@torch.no_grad()
def ceiling_rows(model, x: torch.Tensor, etas: list[float], snr_db: float) -> list[dict]:
    rows = []
    pixels = x.shape[-1] * x.shape[-2]
    for lam in model.cfg.lambdas:
        lam_t = torch.full((x.shape[0],), lam)
        y, anchor = model.analysis(x, lam_t)
        ntc = model(x, lam, 0.2, snr_db, jscc=False)
        row = {"lam": lam, "autoencoder_psnr": _psnr(model.synthesis(y, lam_t, anchor), x),
               "ntc_psnr": _psnr(ntc["x_hat"], x),
               "ntc_bpp": float((ntc["bits"].sum(dim=(1, 2)) / pixels).mean()), "jscc": {}}
        for eta in etas:
            torch.manual_seed(0)
            out = model(x, lam, eta, snr_db, jscc=True)
            cbr = float((out["k_bar"].sum(dim=(1, 2)) / (3 * pixels)).mean())
            top = float((out["k_bar"] >= model.cfg.max_symbols).float().mean())  # positions at the top level
            row["jscc"][eta] = (_psnr(out["x_hat"], x), cbr, top)
        rows.append(row)
        log.info("λ %g done", lam)
    return rows


def water_filling_gains(sigma: torch.Tensor, power: float, noise_var: float) -> torch.Tensor:
    """Linear gains g_i for elements of standard deviation σ_i that minimise Σ E[(e_i − ê_i)²]
    under LMMSE decoding, total power Σ g_i² σ_i² = ``power``: power loading g_i² σ_i² =
    (c·σ_i − N0)⁺ (the Lagrange condition of Σ σ_i² N0 / (p_i + N0)), c found by bisection."""
    lo, hi = 1e-9, 1e9
    for _ in range(100):
        c = (lo * hi) ** 0.5
        lo, hi = (c, hi) if float((sigma * c - noise_var).clamp_min(0).sum()) <= power else (lo, c)
    return (sigma * lo - noise_var).clamp_min(0).sqrt() / sigma.clamp_min(1e-12)


@torch.no_grad()
def linear_analog_psnr(model, x: torch.Tensor, lam: float, cbr: float, snr_db: float) -> tuple[float, float]:
    """(PSNR of g_s(ŷ), CBR used) when y goes over AWGN by the linear mapping of the module doc.

    Each complex channel use carries two real ones at unit average power, so a real use has
    power ½ and noise N0 = ½·10^(−SNR/10). The receiver is given μ and σ (z) for free; z's bits
    are not counted. The CBR used is below ``cbr`` when the budget exceeds one real use per
    latent element (each element is sent once at most)."""
    torch.manual_seed(0)
    lam_t = torch.full((x.shape[0],), lam)
    y, anchor = model.analysis(x, lam_t)
    feat, _ = model.entropy.hyper(y)
    mu, sigma = model.entropy.hyper_prior(feat)  # the anchors' prior, everywhere
    n_real = min(int(2 * cbr * 3 * x.shape[-1] * x.shape[-2]), y[0].numel())
    noise_var = 0.5 * 10 ** (-snr_db / 10)
    y_hat = mu.clone()
    for i in range(x.shape[0]):
        e, s = (y[i] - mu[i]).flatten(), sigma[i].flatten()
        sent = torch.argsort(s, descending=True)[:n_real]
        g = water_filling_gains(s[sent], 0.5 * len(sent), noise_var)
        received = g * e[sent] + noise_var ** 0.5 * torch.randn(len(sent))
        flat = y_hat[i].view(-1)
        flat[sent] += g * s[sent] ** 2 / (g ** 2 * s[sent] ** 2 + noise_var) * received
    return _psnr(model.synthesis(y_hat, lam_t, anchor), x), n_real / (2 * 3 * x.shape[-1] * x.shape[-2])


def markdown(rows: list[dict], etas: list[float], header: str) -> str:
    lines = [header, "", "| λ | g_s(g_a(x)) dB | NTC dB | NTC bpp | "
             + " | ".join(f"JSCC η={e:g}: dB @ CBR (top level)" for e in etas) + " |",
             "|---|---|---|---|" + "---|" * len(etas)]
    for r in rows:
        lines.append(f"| {r['lam']:g} | {r['autoencoder_psnr']:.2f} | {r['ntc_psnr']:.2f} | {r['ntc_bpp']:.3f} | "
                     + " | ".join(f"{p:.2f} @ {c:.3f} ({t:.0%})" for p, c, t in (r["jscc"][e] for e in etas)) + " |")
    return "\n".join(lines) + "\n\nTop level: the share of latent positions given the rate quantiser's most symbols.\n"


def linear_markdown(linear: dict[float, dict[float, tuple[float, float]]]) -> str:
    """The linear-analog reference: dB @ CBR used, per λ (rows) and CBR budget (columns)."""
    cbrs = sorted(next(iter(linear.values())))
    lines = ["Linear analog mapping of the same latent (LMMSE, hyperprior μ and σ given to the receiver "
             "for free, power loading), dB @ CBR used:", "",
             "| λ | " + " | ".join(f"budget {c:g}" for c in cbrs) + " |", "|---|" + "---|" * len(cbrs)]
    lines += [f"| {lam:g} | " + " | ".join("{:.2f} @ {:.3f}".format(*row[c]) for c in cbrs) + " |"
              for lam, row in linear.items()]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS), help="safetensors checkpoint")
    p.add_argument("--dataset", default=str(DEFAULT_KODAK), help="test images (default: Kodak)")
    p.add_argument("--limit", type=int, default=4, help="first N images")
    p.add_argument("--crop", type=int, default=256, help="centre crop side (multiple of 64)")
    p.add_argument("--etas", default="0.1,0.2,0.4")
    p.add_argument("--snr", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--linear-cbrs", default="0.02,0.04,0.08,0.12",
                   help="CBR budgets of the linear analog reference ('' skips it)")
    p.add_argument("--markdown", default=None, help="also write the table here")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)
    model = load_model(args.weights).eval()
    x = load_crops(args.dataset, args.limit, args.crop)
    etas = [float(e) for e in args.etas.split(",")]
    rows = ceiling_rows(model, x, etas, args.snr)
    text = markdown(rows, etas, f"Transforms vs chain, `{Path(args.weights).name}`: {len(x)} images of "
                                f"`{Path(args.dataset).name}`, {args.crop}² centre crops, AWGN {args.snr:g} dB "
                                "(true SNR, JSCC symbols only).")
    if args.linear_cbrs:
        cbrs = [float(c) for c in args.linear_cbrs.split(",")]
        text += "\n" + linear_markdown({lam: {c: linear_analog_psnr(model, x, lam, c, args.snr) for c in cbrs}
                                        for lam in model.cfg.lambdas})
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(f"{text}\n{markdown_line(weights_identity(args.weights))}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
