"""The real GNU Radio OFDM link, driven over real ZeroMQ sockets.

Every test starts the flowgraph process (Debian's /usr/bin/python3 + GNU Radio 3.10) the way
the applications do; nothing is mocked. ``make setup`` installs GNU Radio; without it these
tests fail with the launcher's "run make setup" message.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from core.link.frame import STREAM_TEST, RxFrame, TxFrame, time_meta
from flowgraphs.channel import DEFAULT_TRACE, SnrTrace
from flowgraphs.launcher import GR_PYTHON, FlowgraphError, FlowgraphProcess, gr_environment
from flowgraphs.options import to_argv
from tx import link_test

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(180)


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    link_test.add_arguments(p)
    return p.parse_args(list(argv))


def run_link(*argv: str) -> dict:
    args = _args(*argv)
    with FlowgraphProcess(to_argv(args)) as fg:
        return link_test.run_link_test(args, fg)


def _symbols(n, rng):
    return ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)).astype(np.complex64)


class Client:
    """TX/RX sockets on a running flowgraph."""

    def __init__(self, fg: FlowgraphProcess):
        self.ctx = zmq.Context()
        self.tx = self.ctx.socket(zmq.PUSH)
        self.rx = self.ctx.socket(zmq.PULL)
        self.tx.connect(fg.endpoints["in"])
        self.rx.connect(fg.endpoints["out"])
        self.rng = np.random.default_rng(11)

    def roundtrip(self, frame_id: int, n: int = 10000, timeout_ms: int = 10000):
        x = _symbols(n, self.rng)
        self.tx.send(TxFrame(frame_id, x, STREAM_TEST, meta=time_meta()).to_bytes())
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_ms / 1000:
            if self.rx.poll(200):
                f = RxFrame.from_bytes(self.rx.recv())
                if f.frame_id == frame_id:
                    snr = 10 * np.log10(np.mean(np.abs(x) ** 2) / np.mean(np.abs(f.symbols - x) ** 2))
                    return f, float(snr)
        return None, None

    def close(self):
        for s in (self.tx, self.rx):
            s.close(0)
        self.ctx.term()


def test_cli_link_test_awgn_10db():
    """`ntscc-xr link-test --json`: one JSON object, exit 0, figures of the issue's 'done when'."""
    out = subprocess.run([sys.executable, "-m", "core.cli", "link-test", "--channel", "awgn",
                          "--snr", "10", "--frames", "12", "--json"], cwd=REPO,
                         capture_output=True, text=True, timeout=150)
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    for key in ("frames_sent", "frames_received", "frames_lost", "snr_set_db", "snr_measured_db",
                "cqi_db", "throughput_msps", "latency_ms_p50", "latency_ms_p95"):
        assert key in rep
    assert rep["frames_sent"] == 12 and rep["frames_lost"] == 0 and rep["frames_received"] == 12
    assert abs(rep["snr_measured_db"] - 10.0) <= 1.0
    assert abs(rep["cqi_db"] - rep["snr_measured_db"]) <= 1.0
    assert rep["snr_true_db"] == pytest.approx(10.0)
    assert rep["throughput_msps"] > 0.1
    assert 0 < rep["latency_ms_p50"] <= rep["latency_ms_p95"] < 5000
    assert len(rep["per_frame"]["cqi_db"]) == 12


@pytest.mark.parametrize("impl", ["auto", "channel_model", "lean"])
def test_multipath_cfo_timing_offset_15db(impl):
    rep = run_link("--channel", "multipath", "--snr", "15", "--cfo", "3000",
                   "--timing-offset", "5.6", "--frames", "10", "--symbols-per-frame", "20000",
                   "--channel-impl", impl)
    assert rep["frames_lost"] == 0
    assert abs(rep["snr_measured_db"] - 15.0) <= 2.0
    assert abs(rep["cqi_db"] - 15.0) <= 1.5
    # the unbiased equaliser's plain MSE is dominated by the multipath notch: clearly lower
    assert rep["snr_mse_db"] < rep["snr_measured_db"]


def test_sc_trigger_loses_no_frame_without_noise():
    """GNU Radio issue #6891 (Schmidl & Cox plateau detection loses frames even without noise):
    the stock-block trigger + triggered receiver, 60 frames of random lengths back to back or
    with exact zeros between them, no noise / 30 dB / 10 dB, small work calls: none lost."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([GR_PYTHON, str(REPO / "tests" / "gr_sc_trigger_check.py")], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    cases = json.loads(out.stdout.strip().splitlines()[-1])
    for name, c in cases.items():
        assert c["found"] == c["sent"] and c["in_order"] and c["lengths_ok"], (name, c)


@pytest.mark.parametrize("detector", ["gr", "python"])
def test_many_short_frames_back_to_back_none_lost(detector):
    """400 short frames kept 16 in flight (back to back, many preambles per work call) through
    the real flowgraph at high SNR: no frame lost, every detection a frame."""
    rep = run_link("--snr", "30", "--frames", "400", "--symbols-per-frame", "700",
                   "--window", "16", "--no-per-frame", "--detector", detector)
    assert rep["frames_lost"] == 0 and rep["length_mismatches"] == 0
    rx = rep["flowgraph"]["rx"]
    assert rx["header_failures"] == 0
    if detector == "gr":
        n = 400 + rep["warmup_frames"]  # the warm-up frames are detected too
        assert rx["triggers"] >= n and rx["detections"] == n


def test_control_socket_changes_snr_and_channel():
    fg = FlowgraphProcess(["--base-port", "0", "--snr", "5"]).start()
    c = Client(fg)
    try:
        low = [c.roundtrip(i) for i in range(4)]
        assert all(f is not None for f, _ in low)
        rep = fg.control({"snr_db": 18})
        assert rep["ok"] and rep["state"]["snr_db"] == 18.0
        high = [c.roundtrip(10 + i) for i in range(4)]
        assert all(f is not None for f, _ in high)
        m_low = np.mean([s for _, s in low])
        m_high = np.mean([s for _, s in high])
        assert abs(m_low - 5.0) < 1.0 and abs(m_high - 18.0) < 1.0
        assert all(f.snr_true_db == pytest.approx(18.0) for f, _ in high)
        assert np.mean([f.cqi_db for f, _ in high]) - np.mean([f.cqi_db for f, _ in low]) > 11
        # rewire at run time: fading in, fading out; the link keeps going
        assert fg.control({"channel": "rayleigh", "doppler_hz": 100})["ok"]
        faded = [c.roundtrip(20 + i) for i in range(4)]
        assert sum(f is not None for f, _ in faded) >= 3
        assert fg.control({"channel": "awgn", "cfo_hz": 2000})["ok"]
        f, s = c.roundtrip(30)
        assert f is not None and abs(s - 18.0) < 1.5
        bad = fg.control({"snr_db": "loud"})
        assert bad["ok"] is False and "error" in bad
        st = fg.control({"cmd": "get"})
        assert st["tx"]["frames_in"] >= 13 and st["rx"]["frames_out"] >= 12
    finally:
        c.close()
        assert fg.stop() == 0  # tb.stop(); tb.wait(); exit 0


def test_auto_channel_takes_channel_model_for_a_clock_offset():
    """--channel-impl auto (default): the lean chain without a clock offset; setting one at run
    time rewires to channels.channel_model and the link keeps going."""
    fg = FlowgraphProcess(["--base-port", "0", "--snr", "20", "--cfo", "1000"]).start()
    c = Client(fg)
    try:
        f, s = c.roundtrip(1, n=6000)
        assert f is not None and abs(s - 20.0) < 1.0
        assert fg.control({"sco_ppm": 20})["ok"]
        f, s = c.roundtrip(2, n=6000)
        assert f is not None and s > 17.0
        assert fg.control({"cmd": "get"})["state"]["sco_ppm"] == 20.0
    finally:
        c.close()
        assert fg.stop() == 0


def test_rayleigh_doppler_runs_through_fades():
    t0 = time.monotonic()
    rep = run_link("--channel", "rayleigh", "--snr", "12", "--doppler", "150", "--frames", "30",
                   "--symbols-per-frame", "10000", "--window", "2")
    assert time.monotonic() - t0 < 120
    assert rep["frames_received"] >= 26  # a frame whose header sits in a deep fade may be lost
    true = np.array(rep["per_frame"]["snr_true_db"])
    cqi = np.array(rep["per_frame"]["cqi_db"])
    assert true.std() > 1.0  # the SNR applied to each frame follows the fading
    assert np.corrcoef(true, cqi)[0, 1] > 0.9  # and the receiver's CQI tracks it
    assert np.median(np.abs(cqi - true)) < 1.0


def test_trace_channel_follows_trace():
    rep = run_link("--channel", "trace", "--snr", "12", "--frames", "24",
                   "--symbols-per-frame", "8000")
    tr = SnrTrace(DEFAULT_TRACE)
    ids = rep["per_frame"]["frame_id"]
    true = np.array(rep["per_frame"]["snr_true_db"])
    np.testing.assert_allclose(true, [tr.snr_for(i, 12.0) for i in ids], atol=1e-3)
    assert rep["frames_received"] >= 22
    cqi = np.array(rep["per_frame"]["cqi_db"])
    ok = true > 3
    assert np.all(np.abs(cqi[ok] - true[ok]) < 1.5)


def test_large_frame_and_bad_messages():
    fg = FlowgraphProcess(["--base-port", "0", "--snr", "20"]).start()
    c = Client(fg)
    try:
        c.tx.send(b"not a frame at all")
        raw = bytearray(TxFrame(5, np.ones(100, np.complex64)).to_bytes())
        raw[-1] ^= 1
        c.tx.send(bytes(raw))  # payload CRC error
        f, s = c.roundtrip(7, n=200_000, timeout_ms=30000)
        assert f is not None and f.symbols.size == 200_000 and s > 18.5
        assert f.subcarrier_snr_db.size == 200
        st = fg.control({"cmd": "get"})
        assert st["tx"]["frames_bad"] == 2 and st["rx"]["frames_out"] == 1
    finally:
        c.close()
        fg.stop()


def test_usrp_without_device_fails_clearly():
    out = subprocess.run([sys.executable, "-m", "core.cli", "flowgraph", "--usrp", "--base-port", "0",
                          "--usrp-args", "type=b200"], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode != 0
    assert "no USRP found" in out.stderr and "uhd_find_devices" in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_gnuradio_is_explained():
    fg = FlowgraphProcess(["--base-port", "0"], python=sys.executable)  # the venv: no gnuradio
    with pytest.raises(FlowgraphError, match="make setup"):
        fg.start()


@pytest.mark.skipif(shutil.which("grcc") is None, reason="grcc not installed (make setup)")
def test_grc_twin_compiles_and_runs(tmp_path):
    from tests.helpers import free_base_port
    # the environment the launcher gives /usr/bin/python3, with the repository as its path
    env = dict(gr_environment(REPO), GRC_BLOCKS_PATH=str(REPO / "flowgraphs" / "grc"))
    out = subprocess.run(["grcc", "-o", str(tmp_path), str(REPO / "flowgraphs" / "ofdm_link.grc")],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    script = tmp_path / "ofdm_link_grc.py"
    assert script.exists()
    base = free_base_port(4)
    proc = subprocess.Popen([GR_PYTHON, "-u", str(script), "--base-port", str(base), "--snr", "12"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ctx = zmq.Context()
    try:
        ctl = ctx.socket(zmq.REQ)
        ctl.setsockopt(zmq.LINGER, 0)
        ctl.connect(f"tcp://127.0.0.1:{base + 2}")
        ctl.send(b'{"cmd": "ping"}')
        assert ctl.poll(30000), "GRC flowgraph did not answer"
        assert json.loads(ctl.recv())["ok"]
        fake = type("FG", (), {"endpoints": {"in": f"tcp://127.0.0.1:{base}",
                                             "out": f"tcp://127.0.0.1:{base + 1}"}})()
        c = Client(fake)
        f, s = c.roundtrip(1, n=8000)
        assert f is not None and abs(s - 12.0) < 1.0
        ctl.send(b'{"snr_db": 20}')
        assert json.loads(ctl.recv())["ok"]
        f, s = c.roundtrip(2, n=8000)
        assert f is not None and abs(s - 20.0) < 1.0
        c.close()
        ctl.close(0)
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(20)
        ctx.term()
    assert rc == 0


def test_flowgraph_inputs_survive_fuzzing():
    """10 000 random / mutated / truncated messages into the data input and 2 000 into the
    control socket: no crash, no hang, the link still carries a frame afterwards."""
    fg = FlowgraphProcess(["--base-port", "0", "--snr", "20"]).start()
    c = Client(fg)
    rng = np.random.default_rng(3)
    valid = TxFrame(1, np.ones(64, np.complex64), STREAM_TEST).to_bytes()
    try:
        for i in range(10_000):
            if i % 3 == 0:
                msg = rng.bytes(int(rng.integers(0, 300)))
            else:
                b = bytearray(valid)
                for _ in range(int(rng.integers(1, 6))):
                    b[int(rng.integers(len(b)))] = int(rng.integers(256))
                msg = bytes(b[: int(rng.integers(1, len(b) + 1))])
            c.tx.send(msg)
        junk = [b"", b"{", b"[]", b"null", b'{"snr_db": "x"}', b'{"channel": "nope"}',
                b'{"snr_db": 1e400}', b'{"cmd": 5}', b"\xff\xfe", b'{"doppler_hz": -1}']
        req = c.ctx.socket(zmq.REQ)
        req.setsockopt(zmq.LINGER, 0)
        req.connect(fg.endpoints["ctrl"])
        answered = 0
        for i in range(2_000):
            req.send(junk[i % len(junk)] if i % 2 else rng.bytes(40))
            assert req.poll(5000), f"control socket hung on request {i}"
            answered += isinstance(json.loads(req.recv()), dict)
        req.close(0)
        assert answered == 2_000  # every malformed request gets an error reply, none kills it
        assert fg.running
        f, s = c.roundtrip(77, n=5000, timeout_ms=30000)
        assert f is not None and s > 15
        st = fg.control({"cmd": "get"})
        assert st["tx"]["frames_bad"] >= 9_000
    finally:
        c.close()
        fg.stop()
