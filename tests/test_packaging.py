"""The wheel holds everything a pip user needs: every core subpackage, the classical chain's
tables, the shipped weights and the sample content (a regression test for `pip install .`)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

import pytest

from core.paths import INSTALLED_SHARE, REPO_ROOT, asset
from tests.helpers import REPO


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory) -> set[str]:
    out = tmp_path_factory.mktemp("wheel")
    # a copy of the sources, so the build's build/ and *.egg-info stay out of the checkout
    src = tmp_path_factory.mktemp("src") / "ntscc-xr"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "runs", "build", "*.egg-info", "__pycache__", ".*cache", "tests", "docs"))
    # --no-build-isolation: the venv's setuptools, no network
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(src)], check=True, timeout=300)
    (whl,) = out.glob("ntscc_xr-*.whl")
    with zipfile.ZipFile(whl) as z:
        return set(z.namelist())


def test_wheel_has_every_package(wheel_names):
    for pkg in ("core", "core/codec", "core/classical", "core/link", "core/phy", "core/media", "core/session",
                "core/experiments", "tx", "rx", "gui", "flowgraphs"):
        assert f"{pkg}/__init__.py" in wheel_names, pkg
    assert "core/classical/mcs_thresholds.json" in wheel_names
    assert "flowgraphs/traces/cost2100_like.csv" in wheel_names


def test_wheel_has_weights_and_sample_content(wheel_names):
    share = "ntscc_xr-0.1.0.data/data/share/ntscc-xr/"
    assert share + "weights/ntscc_plus_small.safetensors" in wheel_names
    assert share + "data/video/vrview_richoh1_0_3.mp4" in wheel_names
    assert any(n.startswith(share + "data/erp/") and n.endswith(".jpg") for n in wheel_names)
    assert not any(n.startswith(("tests/", "runs/", "tools/")) for n in wheel_names)


def test_assets_found_in_checkout_then_installed_share():
    assert asset("weights", "ntscc_plus_small.safetensors") == REPO_ROOT / "weights" / "ntscc_plus_small.safetensors"
    assert INSTALLED_SHARE.name == "ntscc-xr"
    assert asset("no", "such.file") == REPO_ROOT / "no" / "such.file"
