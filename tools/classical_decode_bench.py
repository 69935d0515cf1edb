#!/usr/bin/env python3
"""The classical receiver's source decode: the ffmpeg command per frame against PyAV in process.

Frames of the sample 360° video (ERP) are encoded once with the live chain's settings
(``LIVE_CODEC_OPTIONS`` of tx/classical.py, QP ``--qp``); each bitstream is then decoded by both
paths, alternating which goes first, and the pixels are compared (they must be equal). Reported:
wall ms per decode, median (min-max), per resolution. Usage::

    .venv/bin/python tools/classical_decode_bench.py --frames 20 --markdown docs/results/classical_decode.md
"""
from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.classical.codecs import get_codec  # noqa: E402
from core.media.source import FrameSource, parse_resolution  # noqa: E402
from tx.classical import LIVE_CODEC_OPTIONS  # noqa: E402

log = logging.getLogger("classical_decode_bench")


def _ms(fn) -> tuple[float, np.ndarray]:
    t0 = time.perf_counter()
    out = fn()
    return 1e3 * (time.perf_counter() - t0), out


def bench(codec_name: str, resolution: str, frames: int, qp: int) -> dict:
    """Median / min / max wall ms of both decode paths over ``frames`` frames at ``resolution``."""
    codec = get_codec(codec_name, **(LIVE_CODEC_OPTIONS.get(codec_name) or {}))
    w, h = parse_resolution(resolution)
    source = FrameSource(None, (w, h)).frames()
    times: dict[str, list[float]] = {"ffmpeg command": [], "PyAV in process": []}
    for i in range(frames):
        rgb = next(source)
        data = codec.encode(rgb, qp)
        ph, pw = h + (-h) % codec.pad_to, w + (-w) % codec.pad_to
        paths = {"ffmpeg command": lambda: codec.decode_with_command(data, ph, pw)[:h, :w],
                 "PyAV in process": lambda: codec.decode(data, rgb.shape)}
        order = list(paths) if i % 2 == 0 else list(reversed(paths))
        outs = {}
        for name in order:
            ms, outs[name] = _ms(paths[name])
            times[name].append(ms)
        if not np.array_equal(*outs.values()):
            raise SystemExit(f"frame {i}: the two decodes differ")
    return {name: (statistics.median(t), min(t), max(t)) for name, t in times.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--codecs", default="hevc,vvc",
                   help="live classical codecs (default: hevc,vvc; the live default is hevc)")
    p.add_argument("--resolutions", default="512x256,1024x512")
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--qp", type=int, default=37)
    p.add_argument("--markdown", type=Path, default=None)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = ["| codec (live preset) | resolution | decode path | wall ms median (min-max) |",
            "|---|---|---|---|"]
    for codec in args.codecs.split(","):
        preset = (LIVE_CODEC_OPTIONS.get(codec) or {}).get("preset", "default")
        for res in args.resolutions.split(","):
            for name, (med, lo, hi) in bench(codec, res, args.frames, args.qp).items():
                rows.append(f"| {codec} ({preset}) | {res} | {name} | {med:.1f} ({lo:.1f}-{hi:.1f}) |")
    text = "\n".join(rows)
    log.info("%s", text)
    if args.markdown:
        cmd = "tools/classical_decode_bench.py " + " ".join(sys.argv[1:])
        args.markdown.write_text(
            f"# Classical receiver: source decode per frame (live settings, QP {args.qp})\n\n"
            f"{args.frames} frames of the sample 360° video per resolution, each decoded by both paths "
            "(alternating which goes first); the pixels were equal on every frame.\n\n"
            f"{text}\n\nCommand: `.venv/bin/python {cmd}`\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
