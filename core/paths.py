"""Where the project's files are: the source tree, and the shipped assets (weights, sample
content), in a checkout or in an installed wheel. Torch-free and numpy-free.

In a checkout (or an editable install) the assets sit beside the packages:
``weights/``, ``data/``. A wheel installs them as data files under
``<prefix>/share/ntscc-xr/`` (see ``[tool.setuptools.data-files]`` in pyproject.toml).
"""
from __future__ import annotations

import sysconfig
from pathlib import Path

#: the folder that holds the top-level packages (core/, tx/, rx/, gui/, flowgraphs/):
#: the repository root in a checkout, site-packages in an installed wheel.
REPO_ROOT = Path(__file__).resolve().parent.parent
#: where a wheel installs the assets
INSTALLED_SHARE = Path(sysconfig.get_path("data")) / "share" / "ntscc-xr"


def asset(*parts: str) -> Path:
    """Path of a shipped asset, e.g. ``asset("weights", "ntscc_plus_small.safetensors")``: the
    checkout's copy when there is one, else the installed one. When neither exists, the
    checkout path (so that an error message names the path a developer expects)."""
    for root in (REPO_ROOT, INSTALLED_SHARE):
        path = root.joinpath(*parts)
        if path.exists():
            return path
    return REPO_ROOT.joinpath(*parts)
