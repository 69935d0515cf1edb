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


#: where runs write by default (relative to the working directory)
RUNS = Path("runs")


def new_run_folder(kind: str, root: Path | None = None) -> Path:
    """A fresh folder for one run, ``runs/<kind>/<YYYYmmdd-HHMMSS>`` (``-2``, ``-3``... when
    two runs start within a second), created here; ``runs/<kind>/latest`` links to it.
    No run ever writes into another run's folder by default."""
    import time
    base = (RUNS if root is None else Path(root)) / kind
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        path = base / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            path.mkdir(parents=True)
        except FileExistsError:
            continue
        latest = base / "latest"
        try:  # best effort: a convenience for people, nothing reads it
            if latest.is_symlink():
                latest.unlink()
            if not latest.exists():
                latest.symlink_to(path.name, target_is_directory=True)
        except OSError:
            pass
        return path
    raise RuntimeError(f"no free run folder under {base}")
