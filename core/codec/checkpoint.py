"""Loading and exporting model weights.

Shipped weights are safetensors (no pickle: nothing executable in a weight file), stored as
float16 to stay under the repo's 16 MB per-file limit, with the model configuration in the
file's metadata. Training checkpoints (with optimiser state) are ordinary torch files loaded
with ``weights_only=True``.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .config import ModelConfig, get_config
from .jscc import is_added_layer
from .model import NTSCCPlus
from .provenance import DEFAULT_WEIGHTS, read_metadata  # noqa: F401 (re-exported)


def export_weights(model: NTSCCPlus, path: str | Path, info: dict | None = None) -> Path:
    """Write the model's weights as float16 safetensors with its config in the metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() else v).contiguous()
             for k, v in model.state_dict().items()}
    meta = {"config": json.dumps(model.cfg.to_dict()), "info": json.dumps(info or {})}
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)  # atomic: readers never see a half-written file
    return path


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu",
               config: str | None = None, weights: str = "model") -> NTSCCPlus:
    """Load a shipped model (or a training checkpoint ``last.pt``, whose ``weights`` are "model"
    or "ema"). Raises FileNotFoundError with a hint when the file is missing."""
    path = Path(path or DEFAULT_WEIGHTS)
    if not path.exists():
        raise FileNotFoundError(
            f"model weights not found at {path}. The repository ships "
            f"{DEFAULT_WEIGHTS}; train your own with 'ntscc-xr train' "
            f"or pass --weights PATH.")
    if path.suffix == ".safetensors":
        meta = read_metadata(path)
        cfg = ModelConfig.from_dict(meta["config"]) if meta["config"] else get_config(config or "small")
        state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
    else:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if weights not in ckpt:
            raise KeyError(f"{path} has no {weights!r} weights; it holds {sorted(ckpt)}")
        cfg = ModelConfig.from_dict(ckpt["config"])
        state = ckpt[weights]
    model = NTSCCPlus(cfg)
    load_state(model, state)
    return model.to(device).eval()


#: Parameters added after a checkpoint format was shipped, with an initialisation (zero) that
#: keeps an older checkpoint's behaviour unchanged: such a checkpoint loads with them at zero.
#: Besides these, the JSCC branches' :data:`~core.codec.jscc.ADDED_LAYERS`.
OPTIONAL_KEYS = ("jscc.snr_enc.nu_embed_a", "jscc.snr_enc.nu_embed_na",
                 "jscc.snr_dec.nu_embed_a", "jscc.snr_dec.nu_embed_na")


def is_optional_key(key: str) -> bool:
    return key in OPTIONAL_KEYS or is_added_layer(key)


def load_state(model: NTSCCPlus, state: dict[str, torch.Tensor]) -> None:
    """Load ``state`` into ``model``; only optional keys (:func:`is_optional_key`) may be missing, and those
    are set to zero (their initial value: a checkpoint from before they existed keeps its function
    whatever ``model`` held)."""
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not is_optional_key(k)]
    if missing or result.unexpected_keys:
        raise RuntimeError(f"checkpoint does not match the model: missing {missing}, "
                           f"unexpected {result.unexpected_keys}")
    own = model.state_dict()
    with torch.no_grad():
        for key in result.missing_keys:
            own[key].zero_()
