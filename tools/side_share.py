#!/usr/bin/env python3
"""Side-information share of the learned chain's channel uses per CBR (README "CBR accounting").

For each image and target CBR, η is steered to the target (two corrections, as the live TX's
controller does) at SQI λ and CQI ``--snr``; the side part's channel uses (control block +
LDPC-coded side bytes at the MCS of ``core.link.sidepart``) are compared with the JSCC symbols.
The old accounting (zlib rate map counted at 0.75·log2(1 + SNR) bit per channel use, no control
block) is printed beside it.

    PYTHONPATH=$PWD .venv/bin/python tools/side_share.py --images 4
"""
from __future__ import annotations

import argparse
import math
import struct
import zlib

import numpy as np


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default=None, help="image folder (default: ../shared/data/kodak)")
    p.add_argument("--images", type=int, default=4, help="first N images")
    p.add_argument("--cbrs", default="0.01,0.02,0.04,0.08")
    p.add_argument("--snr", type=float, default=10.0)
    p.add_argument("--lam", type=float, default=0.18)
    p.add_argument("--weights", default=None)
    a = p.parse_args()
    import torch
    torch.set_num_threads(1)
    from core.codec.learned import LearnedCodec
    from core.codec.sideinfo import SideInfo
    from core.experiments.evaluate import DEFAULT_KODAK, load_images
    from core.link import sidepart
    codec = LearnedCodec(device="cpu", weights=a.weights)
    images = load_images(a.dataset or str(DEFAULT_KODAK), a.images)
    se_old = min(4.0, max(0.25, math.floor(0.75 * math.log2(1 + 10 ** (a.snr / 10)) * 4) / 4))
    print(f"CQI {a.snr:g} dB, λ {a.lam:g}, {len(images)} images; side MCS {sidepart.side_mcs(a.snr)}, "
          f"control block {sidepart.control_symbols()} channel uses")
    print("| target CBR | CBR reached | side bytes (zlib before) | side channel uses | side share | "
          "share, old accounting |")
    print("|---|---|---|---|---|---|")
    for target in [float(c) for c in a.cbrs.split(",")]:
        rows = []
        for _, rgb in images:
            eta = 0.2
            for _ in range(3):
                enc = codec.encode(rgb, a.lam, eta, a.snr)
                eta = float(np.clip(eta * target / enc.cbr, 0.02, 1.0))
            info = SideInfo.from_bytes(enc.side)
            z = struct.calcsize("<HHHHee") + len(zlib.compress(info.rate_index.astype(np.uint8).tobytes(), 9))
            k_side = sidepart.channel_uses(len(enc.side), a.snr)
            k_old = math.ceil(8 * z / se_old)
            rows.append((enc.cbr, len(enc.side), z, k_side, k_side / (k_side + enc.n_symbols),
                         k_old / (k_old + enc.n_symbols)))
        m = np.mean(np.array(rows), axis=0)
        print(f"| {target:g} | {m[0]:.4f} | {m[1]:.0f} ({m[2]:.0f}) | {m[3]:.0f} | {100 * m[4]:.1f} % | "
              f"{100 * m[5]:.1f} % |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
