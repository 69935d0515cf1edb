"""tools/bench_gpu.py on the CPU with tiny settings: runs without the project installed (no
PYTHONPATH; it imports the checkout's core/), needs no Pillow / ZMQ / GNU Radio, prints JSON."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.helpers import REPO

SCRIPT = REPO / "tools" / "bench_gpu.py"
CHECK = (
    "import runpy, sys\n"
    "sys.argv = [{script!r}] + {argv!r}\n"
    "try:\n"
    "    runpy.run_path({script!r}, run_name='__main__')\n"
    "except SystemExit as e:\n"
    "    assert not e.code, e.code\n"
    "import core\n"
    "bad = sorted(m for m in ('PIL', 'zmq', 'gnuradio', 'cv2', 'av') if m in sys.modules)\n"
    "print('CHECK', core.__file__, bad, file=sys.stderr)\n"
)


def test_bench_gpu_tiny_cpu(tmp_path):
    out = tmp_path / "bench.json"
    argv = ["--device", "cpu", "--latency-size", "64x32", "--chain-sizes", "64x32,96x48",
            "--warmup", "0", "--repeat", "1", "--threads", "1", "--json", str(out)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", CHECK.format(script=str(SCRIPT), argv=argv)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    check = [line for line in proc.stderr.splitlines() if line.startswith("CHECK")][0]
    assert str(REPO / "core") in check and check.endswith("[]"), check
    result = json.loads(out.read_text())
    assert json.loads(proc.stdout) == result
    assert result["device"] == "cpu" and result["image"] == "synthetic"
    lat = result["latency"]["64x32"]
    assert lat["encode_ms"] > 0 and lat["decode_ms"] > 0 and lat["runs"] == 1
    assert set(result["chain"]) == {"64x32", "96x48"}
    for r in result["chain"].values():
        assert r["fps_serial"] > 0 and r["fps_pipelined"] >= r["fps_serial"]
        assert 5 < r["psnr_db"] < 60
