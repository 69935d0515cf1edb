"""How fast and how wrong g_a is in int8 on this CPU (post-training quantisation, no retraining).

    .venv/bin/python tools/int8_ga_probe.py --train ../shared/data/train --kodak ../shared/data/kodak

Quantises the shipped model's g_a with PyTorch's x86 backend (``torch.ao`` FX, per-channel int8
weights, per-tensor uint8 activations calibrated on 16 training crops), times it against the bf16
(autocast) and float32 g_a at 512x256 on one thread (median of 15), and reports the int8
latent's relative L2 error on the first Kodak images, also with the first one or two
convolutions left in float. It is the measurement behind speed.md section 11's int8 line.
"""
from __future__ import annotations

import argparse
import copy
import glob
import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch.ao.quantization import get_default_qconfig_mapping
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

from core.codec.checkpoint import load_model
from core.experiments.bench import median_ms
from core.machine import cpu_description
from core.media.imageio import read_rgb

log = logging.getLogger("int8_ga_probe")


def _tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255


def _centre_crop(path: str, size: int = 256) -> torch.Tensor:
    a = read_rgb(path)
    top, left = (a.shape[0] - size) // 2, (a.shape[1] - size) // 2
    return _tensor(a[top:top + size, left:left + size])


def quantise(g_a: torch.nn.Module, calibration: list[torch.Tensor], float_layers: list[str]):
    """int8 copy of ``g_a`` (x86 backend), ``float_layers`` (module names) left in float."""
    mapping = get_default_qconfig_mapping("x86")
    for name in float_layers:
        mapping = mapping.set_module_name(name, None)
    prepared = prepare_fx(copy.deepcopy(g_a), mapping, example_inputs=(calibration[0],))
    for x in calibration:
        prepared(x)
    return convert_fx(prepared)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", default="../shared/data/train", help="folder of calibration photos")
    p.add_argument("--kodak", default="../shared/data/kodak", help="folder of test images")
    p.add_argument("--images", type=int, default=4, help="test images for the latent error")
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    torch.backends.quantized.engine = "x86"
    g_a = load_model(None).eval().g_a.net
    calibration = [_centre_crop(f) for f in sorted(glob.glob(f"{args.train}/*.jpg"))[::12][:16]]
    tests = [_tensor(read_rgb(f))
             for f in sorted(glob.glob(f"{args.kodak}/*.png"))[:args.images]]
    x = torch.rand(1, 3, 256, 512).contiguous(memory_format=torch.channels_last)
    out = {"cpu": cpu_description(), "resolution": "512x256", "threads": 1}
    with torch.no_grad():
        g_a_cl = copy.deepcopy(g_a).to(memory_format=torch.channels_last)
        out["float32_ms"] = round(median_ms(lambda: g_a_cl(x), 15), 2)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out["bf16_ms"] = round(median_ms(lambda: g_a_cl(x), 15), 2)
        reference = [g_a(t) for t in tests]
        for float_layers in ([], ["0"], ["0", "2"]):
            q = quantise(g_a, calibration, float_layers)
            key = "int8" + "".join(f"_float{n}" for n in float_layers)
            out[f"{key}_ms"] = round(median_ms(lambda: q(x), 15), 2)
            out[f"{key}_latent_rel_err"] = [round(float((q(t) - r).norm() / r.norm()), 4)
                                            for t, r in zip(tests, reference)]
            log.info("%s: %.1f ms, latent relative error %s", key, out[f"{key}_ms"],
                     out[f"{key}_latent_rel_err"])
    log.info("float32 %.1f ms, bf16 %.1f ms (%s)", out["float32_ms"], out["bf16_ms"], out["cpu"])
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
