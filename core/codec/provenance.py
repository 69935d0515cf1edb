"""Which model a file of weights holds, without loading it (torch-free: the demo driver and the
results tools use it without paying PyTorch's import).

Every model-dependent result the project writes (``eval``, ``bench``, ``demo`` summaries, the
transform-ceiling and ν-probe tables) records :func:`weights_identity` of the model it was made
with under ``model``; ``tools/results_status.py`` compares those with the shipped checkpoint.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from safetensors import safe_open

from core.paths import REPO_ROOT, asset

DEFAULT_WEIGHTS = asset("weights", "ntscc_plus_small.safetensors")


def read_metadata(path: str | Path) -> dict:
    """The ``config`` and ``info`` dicts a safetensors file of weights carries in its metadata."""
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata() or {}
    return {"config": json.loads(meta.get("config", "{}")), "info": json.loads(meta.get("info", "{}"))}


def weights_identity(path: str | Path | None = None) -> dict:
    """Which model a result was made with, for the result's ``model`` field.

    Parameters
    ----------
    path : str or Path, optional
        The weights file (default: the shipped checkpoint).

    Output
    ------
    dict
        ``weights`` (the path, relative to the repository when inside it), ``sha256`` (first 16
        hex digits of the file's hash: what tells two models apart), ``step`` (training step
        from the file's metadata; None for a torch checkpoint) and ``config`` (its name).
    """
    path = Path(path or DEFAULT_WEIGHTS).resolve()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    step = config = None
    if path.suffix == ".safetensors":
        meta = read_metadata(path)
        step, config = meta["info"].get("step"), meta["config"].get("name")
    try:
        shown = str(path.relative_to(REPO_ROOT))
    except ValueError:
        shown = str(path)
    return {"weights": shown, "sha256": digest, "step": step, "config": config}


_MD_PREFIX = "Model: "


def markdown_line(identity: dict) -> str:
    """One line for a Markdown result, readable by people and by :func:`parse_markdown_line`."""
    return f"{_MD_PREFIX}`{json.dumps(identity, sort_keys=True)}`"


def parse_markdown_line(text: str) -> dict | None:
    """The identity recorded by :func:`markdown_line` in ``text``; None when there is none."""
    for line in text.splitlines():
        if line.startswith(_MD_PREFIX + "`") and line.rstrip().endswith("`"):
            return json.loads(line.rstrip()[len(_MD_PREFIX) + 1:-1])
    return None
