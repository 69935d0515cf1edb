#!/usr/bin/env python3
"""Pack the training photos into one numpy ``.npz`` for a machine without Pillow.

``tools/train_gpu.sh`` runs where only PyTorch, numpy and safetensors may be installed, and a
device call carries at most 64 MiB of working tree: the 113 MB of training JPEGs do not travel,
so they are decoded here, scaled so that the short side is ``--short-side`` pixels, centre-cut
to at most ``--max-aspect`` and stored as uint8 arrays (zlib-compressed).

    .venv/bin/python tools/pack_train_data.py --data ../shared/data/train --out runs/gpu/train_pack.npz
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.media.imageio import list_images, read_rgb  # noqa: E402

log = logging.getLogger("pack_train_data")


def scaled(rgb: np.ndarray, short_side: int, max_aspect: float) -> np.ndarray:
    """Resize so the short side is ``short_side``, then centre-cut the long side."""
    h, w = rgb.shape[:2]
    s = short_side / min(h, w)
    im = Image.fromarray(rgb).resize((max(short_side, round(w * s)), max(short_side, round(h * s))),
                                     Image.BICUBIC)
    out = np.asarray(im)
    h, w = out.shape[:2]
    long_max = int(short_side * max_aspect)
    if w > long_max:
        off = (w - long_max) // 2
        out = out[:, off:off + long_max]
    if h > long_max:
        off = (h - long_max) // 2
        out = out[off:off + long_max]
    return np.ascontiguousarray(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="../shared/data/train", help="folder of training photos (never Kodak)")
    p.add_argument("--out", default="runs/gpu/train_pack.npz")
    p.add_argument("--short-side", type=int, default=256, help="short side after scaling (>= the crop)")
    p.add_argument("--max-aspect", type=float, default=1.0,
                   help="longest side / short side kept (1.0: square; the pack must fit a 64 MiB device call with the repo)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if "kodak" in args.data.lower():
        raise SystemExit("refusing to pack Kodak: it is the test set")
    arrays = {f"img{i:04d}": scaled(read_rgb(f), args.short_side, args.max_aspect)
              for i, f in enumerate(list_images(args.data))}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    log.info("%d images -> %s (%.1f MB)", len(arrays), args.out, Path(args.out).stat().st_size / 1e6)
    return 0


if __name__ == "__main__":
    sys.exit(main())
