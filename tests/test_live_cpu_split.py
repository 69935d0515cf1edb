"""tools/live_cpu_split.py: it finds every process below the live command (a supervisor's
grandchildren included, as the flowgraph is) and takes each one's CPU share over the middle third
of the run."""
from __future__ import annotations

import importlib.util
import os
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
    # a subshell (child) running a sleep (grandchild), as the flowgraph supervisor runs GNU Radio
    parent = subprocess.Popen(["sh", "-c", "(sleep 30; true) & wait"])
    try:
        deadline = time.monotonic() + 10
        while len(tree := tool.sample_tree(parent.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert parent.pid in tree and len(tree) == 3, tree
        children = {pid for pid in tree if tool._stat(pid)[0] == parent.pid}
        grandchildren = {pid for pid in tree if tool._stat(pid)[0] in children}
        assert len(children) == 1 and len(grandchildren) == 1
        assert tool._label(next(iter(grandchildren))).startswith("sleep 30")
        assert os.getpid() not in tree
        assert tool._label(parent.pid).startswith("sh -c")
    finally:
        subprocess.run(["pkill", "-P", str(parent.pid)], check=False)
        parent.kill()
        parent.wait()


def test_cpu_shares_take_the_middle_third_and_skip_processes_that_came_later():
    tool = _tool()
    # process 1 burns a full core throughout; process 2 half a core; 3 starts in the middle
    samples = [(float(t), {1: 1.0 * t, 2: 0.5 * t, **({3: 0.0} if t >= 5 else {})}) for t in range(12)]
    seconds, shares, left_out = tool.cpu_shares(samples)
    assert seconds == pytest.approx(4.0)
    assert shares[1] == pytest.approx(1.0) and shares[2] == pytest.approx(0.5)
    assert 3 not in shares and left_out == {3}


def test_cpu_shares_refuse_a_run_too_short_to_have_a_steady_middle():
    with pytest.raises(SystemExit, match="more frames"):
        _tool().cpu_shares([(0.0, {1: 0.0})] * 5)


def test_window_fps_counts_each_streams_frames_decoded_inside_the_window(tmp_path):
    rows = ["frame_id,stream,t_wall"] + [f"{i},learned,{100 + 0.1 * i}" for i in range(50)] \
        + [f"{i},classical,{100 + 0.2 * i}" for i in range(25)]
    (tmp_path / "metrics.csv").write_text("\n".join(rows) + "\n")
    fps = _tool().window_fps(["ntscc-xr", "demo", f"--out={tmp_path}"], (101.0, 103.0))
    assert fps == {"classical": 5.0, "learned": 10.0}
    assert _tool().window_fps(["ntscc-xr", "demo"], (101.0, 103.0)) == {}
