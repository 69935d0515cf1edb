#!/usr/bin/env python3
"""Generate the COST 2100-like per-frame SNR trace shipped in flowgraphs/traces/.

A terminal walks along a straight 45 m route (1.5 m/s, 30 frames/s, 30 s) past a base station.
The channel is built the way the COST 2100 geometry-based stochastic channel model builds it:

* **Clusters with visibility regions.** Far clusters (scatterers) are placed at random; each
  is seen only while the terminal is inside its visibility region (VR). The VR gain follows the
  COST 2100 transition function ``A(r) = 1/2 - arctan(2*sqrt(2)*(r - R_C + L_C) /
  sqrt(lambda*L_C)) / pi`` (radius R_C, transition width L_C), so clusters fade in and out
  over a few metres. A line-of-sight component has its own VR (it is blocked mid-route).
* **Cluster shadowing.** Each cluster has a log-normal power (sigma 6 dB) and a delay.
* **Multipath components.** Each cluster holds 10 MPCs with their own delay (cluster delay
  spread 60 ns), angle of arrival (hence Doppler v*cos(theta)/lambda) and phase.
* **Local cluster** around the terminal, always visible (20 MPCs, 30 ns delay spread), so
  small-scale fading is present along the whole route.
* **Path loss** with exponent 3 over the BS distance.

For each frame the wideband channel power is the mean of |H(f, t)|^2 over the 4 MHz occupied
band (64 frequencies), i.e. what a frame of OFDM symbols sees on average; the trace stores
``snr_db = 10 dB + 10 log10(P) - mean(10 log10 P)`` (mean 10 dB). The flowgraph shifts it to any mean (``--snr``).

Deterministic: ``python3 tools/make_fading_trace.py`` (seed 2100) rewrites the same file.
numpy only.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

C = 299_792_458.0


def vr_gain(r: np.ndarray, radius: float, transition: float, lam: float) -> np.ndarray:
    """COST 2100 visibility-region gain (amplitude) at distance r from the VR centre."""
    x = 2 * np.sqrt(2) * (r - radius + transition) / np.sqrt(lam * transition)
    return np.clip(0.5 - np.arctan(x) / np.pi, 0.0, 1.0)


def generate(seed: int = 2100, frames: int = 900, fps: float = 30.0, speed: float = 1.5,
             fc: float = 2.45e9, bandwidth: float = 4e6, n_clusters: int = 8,
             mpc_per_cluster: int = 10, mean_snr_db: float = 10.0, local_power: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lam = C / fc
    t = np.arange(frames) / fps
    route = np.stack([speed * t - 0.5 * speed * t[-1], np.zeros_like(t)], axis=1)  # x along route
    bs = np.array([0.0, 60.0])
    d_bs = np.linalg.norm(route - bs, axis=1)
    pathloss = (d_bs / d_bs.min()) ** -3.0

    # clusters: VR centres along the route, shadowing, delays
    centres = rng.uniform(route[0, 0] - 5, route[-1, 0] + 5, n_clusters)
    radius = rng.uniform(8.0, 18.0, n_clusters)
    transition = 4.0
    shadow = 10 ** (rng.normal(0.0, 6.0, n_clusters) / 10)
    cl_delay = rng.uniform(0.05e-6, 1.2e-6, n_clusters)

    f = np.linspace(-bandwidth / 2, bandwidth / 2, 64)
    H = np.zeros((frames, f.size), np.complex128)
    for c in range(n_clusters):
        vis = vr_gain(np.abs(route[:, 0] - centres[c]), radius[c], transition, lam)
        if not vis.any():
            continue
        theta = rng.uniform(0, 2 * np.pi, mpc_per_cluster)
        tau = cl_delay[c] + rng.exponential(60e-9, mpc_per_cluster)
        phi = rng.uniform(0, 2 * np.pi, mpc_per_cluster)
        amp = np.sqrt(shadow[c] / mpc_per_cluster) * np.ones(mpc_per_cluster)
        fd = speed * np.cos(theta) / lam
        for m in range(mpc_per_cluster):
            ph = 2 * np.pi * fd[m] * t + phi[m]
            H += (vis * amp[m] * np.exp(1j * ph))[:, None] * np.exp(-2j * np.pi * f * tau[m])[None, :]
    # local cluster around the terminal: always visible (COST 2100's MS local cluster), so
    # small-scale fading is present along the whole route
    n_local = 20
    theta = rng.uniform(0, 2 * np.pi, n_local)
    tau = rng.exponential(30e-9, n_local)
    phi = rng.uniform(0, 2 * np.pi, n_local)
    fd = speed * np.cos(theta) / lam
    for m in range(n_local):
        H += (np.sqrt(local_power / n_local) * np.exp(1j * (2 * np.pi * fd[m] * t + phi[m])))[:, None] \
            * np.exp(-2j * np.pi * f * tau[m])[None, :]
    # line of sight, blocked between 35 % and 55 % of the route
    los_centre, los_radius = route[0, 0] + 0.45 * (route[-1, 0] - route[0, 0]), 4.5
    los_vis = 1.0 - vr_gain(np.abs(route[:, 0] - los_centre), los_radius, 2.0, lam)
    los_phase = 2 * np.pi * d_bs / lam
    H += (np.sqrt(2.0) * los_vis * np.exp(-1j * los_phase))[:, None] * np.exp(
        -2j * np.pi * f * (d_bs / C)[:, None])
    power = np.mean(np.abs(H) ** 2, axis=1) * pathloss
    p_db = 10 * np.log10(power)
    snr_db = mean_snr_db + p_db - p_db.mean()
    return t, snr_db


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=2100)
    ap.add_argument("--frames", type=int, default=900)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent
                                         / "flowgraphs" / "traces" / "cost2100_like.csv"))
    args = ap.parse_args()
    t, snr = generate(seed=args.seed, frames=args.frames)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w") as fh:
        fh.write("# COST 2100-like per-frame SNR trace (tools/make_fading_trace.py, seed "
                 f"{args.seed}): walking terminal 1.5 m/s, 30 frames/s, 2.45 GHz, 4 MHz band,\n")
        fh.write("# clusters with visibility regions + local cluster + LOS blockage + path loss; "
                 "mean 10 dB.\n")
        fh.write("frame,time_s,snr_db\n")
        for i, (ti, si) in enumerate(zip(t, snr)):
            fh.write(f"{i},{ti:.4f},{si:.3f}\n")
    print(f"wrote {out}: {len(snr)} frames, SNR {snr.min():.1f} .. {snr.max():.1f} dB "
          f"(mean {snr.mean():.1f}, std {snr.std():.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
