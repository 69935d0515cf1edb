"""``ntscc-xr bench``: encode / decode latency per scheme (paper Table II analogue).

Learned schemes are timed on the CPU and, when a GPU is visible, on CUDA (synchronised).
Classical schemes time the codec encode/decode plus LDPC encode/decode at a mid MCS.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from core.codec import FAST_HELP

from .evaluate import DEFAULT_KODAK, load_images

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default=str(DEFAULT_KODAK))
    p.add_argument("--limit", type=int, default=4, help="images to time (first N)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per image (after one warm-up)")
    p.add_argument("--schemes", default="compatible", help="comma list: compatible, <codec>+ldpc")
    p.add_argument("--devices", default="auto", help="auto = cpu (+ cuda when present), or a comma list")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--fast", action=argparse.BooleanOptionalAction, default=True, help=FAST_HELP)
    p.add_argument("--json", default=None)


def median_ms(fn, n: int = 20, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in ms over ``n`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * sorted(times)[n // 2]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_learned(images, device: str, repeat: int, fast: bool = True) -> dict:
    from core.codec.learned import LearnedCodec
    codec = LearnedCodec(device=device, fast=fast)
    dev = codec.device
    enc_t, dec_t = [], []
    for _, rgb in images:
        enc = codec.encode(rgb, 0.18, 0.2, 10.0)  # warm-up
        codec.decode(enc.symbols, enc.side)
        for _ in range(repeat):
            _sync(dev); t0 = time.perf_counter()
            enc = codec.encode(rgb, 0.18, 0.2, 10.0)
            _sync(dev); t1 = time.perf_counter()
            codec.decode(enc.symbols, enc.side)
            _sync(dev); t2 = time.perf_counter()
            enc_t.append(t1 - t0); dec_t.append(t2 - t1)
    return {"device": str(dev), "encode_ms": round(1e3 * float(np.median(enc_t)), 1),
            "decode_ms": round(1e3 * float(np.median(dec_t)), 1),
            "params_M": round(sum(p.numel() for p in codec.model.parameters()) / 1e6, 2),
            "path": codec.fast_options.describe() if codec.fast_options else "float32 (--no-fast)"}


def time_classical(scheme: str, images, repeat: int, cbr: float = 0.04, snr_db: float = 10.0) -> dict:
    """Per image at CBR 0.04 and CQI 10 dB (live policy): codec encode + LDPC encode + QAM,
    then demapping + LDPC decode + codec decode. Timed with the bitstream cache disabled
    (a fresh cache folder) so the codec's real encode time is counted."""
    import tempfile

    from core.classical.chain import make_scheme

    from .evaluate import CLASSICAL_VVC_PRESET
    codec = scheme.split("+")[0]
    enc_t, dec_t, ldpc_t = [], [], []
    for _, rgb in images:
        for _ in range(repeat):
            with tempfile.TemporaryDirectory() as tmp:
                chain = make_scheme(scheme, cache=tmp, codec_options={"preset": CLASSICAL_VVC_PRESET}
                                    if codec == "vvc" else None)
                t0 = time.perf_counter()
                tx = chain.symbols_for(rgb, cbr, cqi_db=snr_db, qp_hint=None)
                t1 = time.perf_counter()
                res = chain.receive(tx.symbols, 10 ** (-snr_db / 10), tx.meta)
                t2 = time.perf_counter()
            enc_t.append(t1 - t0); dec_t.append(t2 - t1)
            ldpc_t.append(res.timings.get("ldpc_decode_s", float("nan")))
    return {"device": "cpu", "encode_ms_incl_qp_search": round(1e3 * float(np.median(enc_t)), 1),
            "decode_ms": round(1e3 * float(np.median(dec_t)), 1),
            "ldpc_decode_ms": round(1e3 * float(np.nanmedian(ldpc_t)), 1),
            "note": f"CBR {cbr}, CQI {snr_db} dB; encode includes the search for the largest QP that fits"}


def main(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    images = load_images(args.dataset, args.limit)
    devices = (["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
               if args.devices == "auto" else args.devices.split(","))
    result = {"images": [n for n, _ in images], "resolution": list(images[0][1].shape[:2]),
              "torch_threads": torch.get_num_threads(), "schemes": {}}
    for scheme in [s.strip() for s in args.schemes.split(",") if s.strip()]:
        if scheme in ("compatible", "ntscc+"):
            result["schemes"][scheme] = [time_learned(images, d, args.repeat, args.fast) for d in devices]
        else:
            result["schemes"][scheme] = time_classical(scheme, images, args.repeat)
        log.info(f"{scheme}: {result['schemes'][scheme]}")
    if any(s in ("compatible", "ntscc+") for s in result["schemes"]):
        from core.codec.provenance import weights_identity
        # times depend on the architecture (config), not on the trained values
        result["model"] = {**weights_identity(), "depends_on": "config"}
    text = json.dumps(result, indent=1)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text)
    print(text)
    return 0
