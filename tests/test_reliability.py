"""Fault injection on the real processes: frame loss, a killed flowgraph, TX and RX restarts."""
from __future__ import annotations

import csv
import time

import numpy as np

from tx.demo import run_headless
from tx.session import Session, SessionConfig


def _learned(out):
    if not (out / "metrics.csv").exists():
        return []
    return [r for r in csv.DictReader(open(out / "metrics.csv")) if r["stream"] == "learned"]


def test_frame_loss_degrades_without_stall(tmp_path, base_port):
    cfg = SessionConfig(out=tmp_path, frames=8, resolution="256x128", snr_db=12.0, classical=False,
                        drop_rate=0.3, base_port=base_port, device="cpu")
    run_headless(cfg, timeout=600)
    rows = _learned(tmp_path)
    assert len(rows) == 8  # every frame yields a picture, lost or not
    status = [r["status"] for r in rows]
    assert "lost" in status and "ok" in status
    lost_psnr = np.mean([float(r["psnr"]) for r in rows if r["status"] == "lost"])
    ok_psnr = np.mean([float(r["psnr"]) for r in rows if r["status"] == "ok"])
    assert np.isfinite(lost_psnr) and ok_psnr > lost_psnr


def test_flowgraph_killed_mid_stream_is_restarted(tmp_path, base_port):
    # an endless stream, stopped once a frame decodes after the restart: a fixed frame count
    # could run out while a loaded machine is still restarting the flowgraph
    cfg = SessionConfig(out=tmp_path, frames=0, fps=4.0, resolution="256x128", snr_db=12.0,
                        classical=False, base_port=base_port, device="cpu")
    s = Session(cfg)

    def ok_after(t: float) -> bool:
        return any(r["status"] == "ok" and float(r["t_wall"]) > t for r in _learned(tmp_path))
    try:
        s.start()
        t_end = time.time() + 120
        while time.time() < t_end and len(_learned(tmp_path)) < 4:
            time.sleep(0.2)
        assert len(_learned(tmp_path)) >= 4, "stream did not start"
        t_kill = time.time()
        s.kill("flowgraph")
        t_end = time.time() + 300
        while time.time() < t_end and not (s.restarts and ok_after(t_kill)):
            s.supervise()              # restarts the dead flowgraph (blocks until it is ready)
            time.sleep(0.2)
        assert s.restarts == 1
        assert ok_after(t_kill), "streaming did not resume after the restart"
        assert s.procs["tx"].poll() is None and s.procs["rx"].poll() is None  # neither died with it
    finally:
        s.stop()


def test_rx_and_tx_restart(tmp_path, base_port):
    cfg = SessionConfig(out=tmp_path, frames=0, fps=4.0, resolution="256x128", snr_db=12.0,
                        classical=False, base_port=base_port, device="cpu")
    s = Session(cfg)
    try:
        s.start()
        def wait_rows(n, timeout=120):
            t_end = time.time() + timeout
            while time.time() < t_end:
                if len(_learned(tmp_path)) >= n:
                    return True
                time.sleep(0.2)
            return False
        assert wait_rows(3)
        s.kill("rx"); s.restart("rx")          # RX restart: metrics.csv starts over
        assert wait_rows(3), "no frames after the receiver restarted"
        s.kill("tx"); s.restart("tx")          # TX restart: frame ids start over at 0
        n_before = len(_learned(tmp_path))
        assert wait_rows(n_before + 3), "no frames after the transmitter restarted"
    finally:
        s.stop()


def test_process_logs_start_fresh_each_session(tmp_path):
    """A run's tx.log never shows an earlier run's lines; a restart within the run appends."""
    import sys
    (tmp_path / "tx.log").write_text("stale line of an earlier run\n")
    session = Session(SessionConfig(out=tmp_path))
    session._spawn("tx", [sys.executable, "-c", "print('first')"]).wait(30)
    session._spawn("tx", [sys.executable, "-c", "print('restarted')"]).wait(30)
    assert (tmp_path / "tx.log").read_text().split() == ["first", "restarted"]
