"""NTSCC++ online editing (paper Sec. V): per-image gradient steps at the transmitter.

For one image, the latent y and the contextual JSCC encoder parameters (φ_fa, φ_fna and the
encoder's SNR response) are optimised for T steps on the instance RD loss (eq. 19), its
ROI form (eq. 20) when a quality map m and a per-position η map are given, or its
multi-distortion form (eq. 21) with a subjective term beside the MSE; the best iterate
(lowest loss) is kept. Everything the receiver uses is untouched, so the receiver needs no
change. Learning rates as in the paper: 5e-3 for y, 1e-4 for the encoder.
"""
from __future__ import annotations

import copy

import torch

from core.media.metrics import MSSSIM_MIN_SIDE  # below it MS-SSIM's 5 scales do not fit

from .model import NO_Z_ON_AIR, NTSCCPlus, Transmission, _batch, pad_to_multiple

LR_LATENT = 5e-3
LR_ENCODER = 1e-4
DIST_SCALE = 1 / 25  # the training loss's distortion scale (core/experiments/train.py --dist-scale)


def subjective_distortion(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """d_s of eq. 21: 1 - MS-SSIM (``pytorch_msssim``, differentiable, data range 1). The paper
    uses LPIPS, which needs pretrained VGG/AlexNet weights this project cannot download at run
    time; it allows other choices, and MS-SSIM is the project's second metric. Images whose
    shorter side is under :data:`MSSSIM_MIN_SIDE` get single-scale SSIM."""
    from pytorch_msssim import ms_ssim, ssim
    x_hat = x_hat.clamp(0, 1)
    if min(x.shape[-2:]) < MSSSIM_MIN_SIDE:
        return 1 - ssim(x_hat, x, data_range=1.0, size_average=True)
    return 1 - ms_ssim(x_hat, x, data_range=1.0, size_average=True)


def _encoder_parameters(model: NTSCCPlus) -> list[torch.nn.Parameter]:
    j = model.jscc
    return [*j.enc_a.parameters(), *j.enc_na.parameters(), *j.snr_enc.parameters()]


def edit_and_transmit(model: NTSCCPlus, x: torch.Tensor, lam: float, eta, snr_db: float,
                      steps: int = 20, quality: torch.Tensor | None = None,
                      seed: int = 0, msssim_weight: float = 0.0) -> tuple[Transmission, list[float]]:
    """Run T = ``steps`` editing steps, then transmit with the best iterate.

    Parameters
    ----------
    x : (1, 3, H, W) image in [0, 1].
    eta : float or (h, w) tensor of per-position bandwidth factors.
    quality : (H, W) ROI quality map m (eq. 20); uniform when omitted.
    msssim_weight : κ of eq. 21 in MSE units (0-255 scale): the distortion becomes
        MSE + κ·(1 - MS-SSIM), i.e. λ_o = λ and λ_s = κ·λ; 0 (default) is eq. 19/20. κ ≈ 2000 weighs
        both terms about equally near 26 dB.

    Returns the transmission and the loss trace (index 0 = the unedited model).
    """
    if model.cfg.jscc_prior:  # before the T editing steps, not after them
        raise NotImplementedError(NO_Z_ON_AIR)
    if steps <= 0:
        return model.transmit(x, lam, eta, snr_db), []
    h0, w0 = x.shape[-2:]
    xp = pad_to_multiple(x)
    edited = copy.deepcopy(model).eval()
    for p in edited.parameters():
        p.requires_grad_(False)
    enc_params = _encoder_parameters(edited)
    for p in enc_params:
        p.requires_grad_(True)
    lam_t = _batch(lam, 1, x.device)
    with torch.no_grad():
        y0, anchor = edited.analysis(xp, lam_t)
    y = y0.clone().requires_grad_(True)
    opt = torch.optim.Adam([{"params": [y], "lr": LR_LATENT},
                            {"params": enc_params, "lr": LR_ENCODER}])
    eta_t = torch.as_tensor(eta, dtype=torch.float32, device=x.device)
    eta_map = eta_t.view(1, *eta_t.shape[-2:]) if eta_t.dim() else None
    eta_scalar = float(eta_t) if eta_t.dim() == 0 else 0.2
    m = torch.ones(1, 1, *xp.shape[-2:], device=x.device)
    if quality is not None:
        m[..., :h0, :w0] = torch.as_tensor(quality, dtype=torch.float32, device=x.device)
    gen_state = torch.get_rng_state()
    best = (float("inf"), None, None)
    trace = []
    for t in range(steps + 1):
        # The same channel draw at every step (common random numbers): iterates are compared
        # on one realisation, so "best iterate" is not decided by noise.
        torch.manual_seed(seed)
        out = edited.forward_latent(y, anchor, lam_t, eta_scalar, snr_db, True, eta_map)
        pixels = xp.shape[-1] * xp.shape[-2]
        dist = (m * ((out["x_hat"] - xp) * 255) ** 2).mean()
        if msssim_weight:
            dist = dist + msssim_weight * subjective_distortion(out["x_hat"][..., :h0, :w0], x)
        loss = out["k"].sum() / pixels + lam * DIST_SCALE * dist
        trace.append(float(loss.detach()))
        if trace[-1] < best[0]:
            best = (trace[-1], y.detach().clone(),
                    [p.detach().clone() for p in enc_params])
        if t == steps:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.set_rng_state(gen_state)
    with torch.no_grad():
        for p, v in zip(enc_params, best[2]):
            p.copy_(v)
    tx = edited.transmit_latent(best[1], anchor, (h0, w0), lam,
                                eta_t if eta_t.dim() else float(eta_t), snr_db)
    return tx, trace

