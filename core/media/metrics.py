"""Distortion metrics: PSNR on 8-bit RGB, WS-PSNR for ERP (cos-latitude weights), MS-SSIM."""
from __future__ import annotations

import numpy as np


def mse(a: np.ndarray, b: np.ndarray, weights: np.ndarray | None = None) -> float:
    d = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    if weights is None:
        return float(d.mean())
    w = np.broadcast_to(weights.reshape(weights.shape + (1,) * (d.ndim - weights.ndim)), d.shape)
    return float((d * w).sum() / w.sum())


def psnr_from_mse(value: float, peak: float = 255.0) -> float:
    return float("inf") if value <= 0 else float(10 * np.log10(peak ** 2 / value))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 (or 0-255 float) images."""
    return psnr_from_mse(mse(a, b))


def erp_weights(height: int, width: int) -> np.ndarray:
    """WS-PSNR weights of an equirectangular image: cos(latitude) of each row's centre."""
    rows = (np.arange(height) + 0.5 - height / 2) * np.pi / height
    return np.repeat(np.cos(rows)[:, None], width, axis=1)


def ws_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Weighted-to-spherically-uniform PSNR of two ERP images (H, W, 3)."""
    return psnr_from_mse(mse(a, b, erp_weights(*a.shape[:2])))


def masked_psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """PSNR over the pixels where ``mask`` (H, W) is true (e.g. the ROI)."""
    if not mask.any():
        return float("nan")
    return psnr_from_mse(mse(a[mask], b[mask]))


#: MS-SSIM's 5 scales with an 11-tap window need a shorter side above (11 - 1) * 2^4
MSSSIM_MIN_SIDE = 161


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM (Wang, Simoncelli & Bovik 2003; 5 scales, 11-tap Gaussian window σ = 1.5,
    K1 = 0.01, K2 = 0.03, data range 255, the mean over R, G, B) of two (H, W, 3) images
    with values 0-255, by the maintained ``pytorch_msssim`` package (the same numbers as
    TensorFlow's ``tf.image.ssim_multiscale``); NaN when the image is too small for 5
    scales (shorter side < ``MSSSIM_MIN_SIDE``)."""
    if min(a.shape[:2]) < MSSSIM_MIN_SIDE:
        return float("nan")
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    def t(x):
        return torch.from_numpy(np.ascontiguousarray(x, np.float32)).permute(2, 0, 1)[None]
    with torch.no_grad():
        return float(_ms_ssim(t(a), t(b), data_range=255, win_size=11))


def ms_ssim_db(value: float) -> float:
    """MS-SSIM in dB, -10·log10(1 - MS-SSIM), as learned-compression papers plot it."""
    return float("inf") if value >= 1 else float(-10 * np.log10(1 - value))


def frame_metrics(a: np.ndarray, b: np.ndarray, roi: np.ndarray | None = None) -> dict[str, float]:
    """PSNR, WS-PSNR and (with an (H, W) ``roi`` mask) ROI PSNR of two uint8 ERP images in one
    pass: the squared error is formed once, in exact integers, and summed per row; the same
    values as :func:`psnr`, :func:`ws_psnr` and :func:`masked_psnr` (to float rounding), a few
    times faster (the receiver computes these for every frame)."""
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        out = {"psnr": psnr(a, b), "ws_psnr": ws_psnr(a, b)}
        out["roi_psnr"] = masked_psnr(a, b, roi) if roi is not None else float("nan")
        return out
    d = np.subtract(a, b, dtype=np.int16)
    sq = np.square(d, dtype=np.int32).sum(axis=-1, dtype=np.int64)  # (H, W) per-pixel SSE
    rows = sq.sum(axis=1)  # exact
    h, w = sq.shape
    c = a.shape[-1] if a.ndim == 3 else 1
    weights = erp_weights(h, 1)[:, 0]
    out = {"psnr": psnr_from_mse(float(rows.sum()) / (h * w * c)),
           "ws_psnr": psnr_from_mse(float(rows @ weights) / (float(weights.sum()) * w * c))}
    if roi is None:
        out["roi_psnr"] = float("nan")
    else:
        n = int(np.count_nonzero(roi))
        out["roi_psnr"] = psnr_from_mse(float(sq[roi].sum()) / (n * c)) if n else float("nan")
    return out
