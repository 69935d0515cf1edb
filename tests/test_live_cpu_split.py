"""tools/live_cpu_split.py: it finds every process below the live command (a supervisor's
grandchildren included, as the flowgraph is) and takes each one's CPU share over the middle third
of the run."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO


def _tool():
    spec = importlib.util.spec_from_file_location("live_cpu_split", REPO / "tools" / "live_cpu_split.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sample_tree_reaches_grandchildren_and_not_other_processes():
    tool = _tool()
    parent = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30 & wait"])
    try:
        deadline = time.monotonic() + 10
        while len(tree := tool.sample_tree(parent.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert parent.pid in tree and len(tree) == 3, tree
        assert all(seconds >= 0 for seconds in tree.values())
        assert tool._label(parent.pid).startswith("sh -c")
    finally:
        subprocess.run(["pkill", "-P", str(parent.pid)], check=False)
        parent.kill()
        parent.wait()


def test_cpu_shares_take_the_middle_third_and_skip_processes_that_came_later():
    tool = _tool()
    # process 1 burns a full core throughout; process 2 half a core; 3 starts in the middle
    samples = [(float(t), {1: 1.0 * t, 2: 0.5 * t, **({3: 0.0} if t >= 5 else {})}) for t in range(12)]
    seconds, shares = tool.cpu_shares(samples)
    assert seconds == pytest.approx(4.0)
    assert shares[1] == pytest.approx(1.0) and shares[2] == pytest.approx(0.5)
    assert 3 not in shares


def test_cpu_shares_refuse_a_run_too_short_to_have_a_steady_middle():
    with pytest.raises(SystemExit, match="more frames"):
        _tool().cpu_shares([(0.0, {1: 0.0})] * 5)
