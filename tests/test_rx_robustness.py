"""The real receiver process under fuzzing, loss and duplicates: it never crashes or hangs,
counts what it drops, shows the fallback for lost frames and keeps streaming afterwards."""
from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import pytest
import zmq

from core.codec.learned import LearnedCodec
from core.link.endpoints import Endpoints
from core.link.frame import STREAM_LEARNED, RxFrame
from core.link.messages import Feedback, MetricsMessage, SideMessage
from tests.helpers import cli, spawn

N_FUZZ = 10_000


@pytest.fixture(scope="module")
def codec():
    return LearnedCodec(device="cpu")


def _side_parts(meta: dict, side: bytes, rgb: np.ndarray) -> list[bytes]:
    return SideMessage.from_meta(meta, side, rgb).to_parts()


def _frame(codec, frame_id: int, rgb: np.ndarray):
    enc = codec.encode(rgb, 0.18, 0.2, 10.0)
    meta = {"stream": STREAM_LEARNED, "frame_id": frame_id, "height": rgb.shape[0],
            "width": rgb.shape[1], "cbr": enc.cbr, "t_sent_ns": time.time_ns(),
            "viewport": {"yaw": 0.0, "pitch": 0.0, "fov": 90.0, "out_hw": [64, 64]}}
    air = codec.frame_symbols(enc, 10.0)  # side part on the air, then the JSCC symbols
    noisy = air + (0.1 * np.random.default_rng(frame_id).standard_normal(air.size)).astype(np.complex64)
    return _side_parts(meta, b"", rgb), RxFrame(frame_id, noisy, 20.0).to_bytes()


def _monitor(sockets) -> list:
    """Handshake monitors for SUB sockets, set up before the receiver starts."""
    return [s.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED) for s in sockets]


def _wait_connected(sockets, monitors, timeout: float = 60.0) -> None:
    """Wait until each SUB socket's connection to the receiver's PUB is up (ZMTP handshake done),
    then a moment for the subscription to reach the publisher: a PUB drops what it sends before
    that (ZMQ's slow joiner), and the receiver binds only once its model is loaded."""
    from zmq.utils.monitor import recv_monitor_message
    t_end = time.time() + timeout
    for sock, mon in zip(sockets, monitors):
        while True:
            assert mon.poll(max(1, int(1e3 * (t_end - time.time())))), "receiver never bound"
            if recv_monitor_message(mon)["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                break
        sock.disable_monitor()
        mon.close(linger=0)
    time.sleep(0.3)


def _wait_metrics(sub: zmq.Socket, frame_id: int, timeout: float = 30.0) -> dict:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if sub.poll(200):
            row = MetricsMessage.parse(sub.recv_multipart()).row
            if row["frame_id"] == frame_id:
                return row
    raise AssertionError(f"no metrics for frame {frame_id} within {timeout} s")


def _mutations(valid_side: list[bytes], valid_phy: bytes, rng: np.random.Generator):
    """Random bytes, truncations, bit flips, oversize claims, NaN payloads, reorders."""
    for i in range(N_FUZZ):
        kind = i % 6
        if kind == 0:
            yield "phy", [rng.bytes(int(rng.integers(0, 300)))]
        elif kind == 1:
            b = bytearray(valid_phy)
            for _ in range(int(rng.integers(1, 8))):
                b[int(rng.integers(len(b)))] = int(rng.integers(256))
            yield "phy", [bytes(b[: int(rng.integers(1, len(b) + 1))])]
        elif kind == 2:
            parts = [bytes(p) for p in valid_side]
            j = int(rng.integers(len(parts)))
            parts[j] = rng.bytes(int(rng.integers(0, 64)))
            yield "side", parts[: int(rng.integers(1, 6))]
        elif kind == 3:
            meta = {"stream": int(rng.integers(-2, 5)), "frame_id": int(rng.integers(-5, 2**33)),
                    "height": int(rng.integers(-10, 10**6)), "width": "x" if rng.random() < 0.3 else 5}
            yield "side", [b"S", json.dumps(meta).encode(), b"", b"", b""]
        elif kind == 4:
            yield "side", [rng.bytes(3) for _ in range(int(rng.integers(1, 7)))]
        else:
            yield "phy", [valid_phy]  # duplicates of an already finished frame


def test_receiver_survives_fuzz_loss_and_duplicates(tmp_path, base_port, codec):
    ep = Endpoints.from_base(base_port)
    ctx = zmq.Context()
    phy = ctx.socket(zmq.PUSH); phy.bind(ep.fg_out)           # stands where the flowgraph binds
    side = ctx.socket(zmq.PUSH); side.connect(ep.side)
    sub = ctx.socket(zmq.SUB); sub.setsockopt(zmq.SUBSCRIBE, b""); sub.connect(ep.metrics)
    fb = ctx.socket(zmq.SUB); fb.setsockopt(zmq.SUBSCRIBE, b""); fb.connect(ep.feedback)
    for s in (phy, side):
        s.setsockopt(zmq.SNDTIMEO, 10_000)
    monitors = _monitor([sub, fb])
    proc = spawn(cli("rx", "--base-port", str(base_port), "--out", str(tmp_path), "--device", "cpu",
                     "--loss-timeout", "1.0", "--no-exit-on-end", "--save-every", "0"),
                 tmp_path / "rx.log")
    try:
        rgb = (np.random.default_rng(0).random((64, 128, 3)) * 255).astype(np.uint8)
        rgb[:, :64] = 128  # some structure
        _wait_connected([sub, fb], monitors)  # the receiver loaded its model and bound
        side_0, phy_0 = _frame(codec, 0, rgb)
        side.send_multipart(side_0); time.sleep(0.2); phy.send(phy_0)
        row = _wait_metrics(sub, 0, timeout=60)
        assert row["status"] == "ok" and row["psnr"] > 10
        assert fb.poll(5000) and Feedback.parse(fb.recv()).ack == 0

        # lost frame: a reference without its PHY frame shows the fallback, no stall
        side_1, _ = _frame(codec, 1, rgb)
        side.send_multipart(side_1)
        row = _wait_metrics(sub, 1, timeout=20)
        assert row["status"] == "lost" and np.isfinite(row["psnr"])

        # the PHY frame may overtake its side message (two paths): still decoded
        side_3, phy_3 = _frame(codec, 3, rgb)
        phy.send(phy_3); time.sleep(0.3); side.send_multipart(side_3)
        row = _wait_metrics(sub, 3, timeout=20)
        assert row["status"] == "ok"

        # NaN/Inf payload with a valid CRC is repaired, not fatal
        side_2, _ = _frame(codec, 2, rgb)
        enc = codec.encode(rgb, 0.18, 0.2, 10.0)
        bad = codec.frame_symbols(enc, 10.0)
        n_side = bad.size - enc.n_symbols  # the side part stays clean, the JSCC part is NaN/Inf
        bad[n_side:] = np.nan; bad[n_side::3] = np.inf
        side.send_multipart(side_2); time.sleep(0.1); phy.send(RxFrame(2, bad, float("nan")).to_bytes())
        row = _wait_metrics(sub, 2, timeout=20)
        assert row["status"] == "ok"

        t0 = time.time()
        for target, parts in _mutations(side_0, phy_0, np.random.default_rng(1)):
            (phy.send(parts[0]) if target == "phy" else side.send_multipart(parts))
        assert time.time() - t0 < 120, "the receiver stalled the senders (back-pressure hang)"
        assert proc.poll() is None, "the receiver crashed under fuzzing"

        # the stream keeps going afterwards
        side_9, phy_9 = _frame(codec, 9, rgb)
        side.send_multipart(side_9); time.sleep(0.2); phy.send(phy_9)
        row = _wait_metrics(sub, 9, timeout=60)
        assert row["status"] == "ok"
        counters = json.loads((tmp_path / "rx_counters.json").read_text())
        assert counters["malformed"] > N_FUZZ // 3
        assert counters["late"] + counters["duplicates"] > 0
        assert counters["lost"] >= 1
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(10)
        for s in (phy, side, sub, fb):
            s.close(0)
        ctx.term()
    assert proc.returncode in (0, 130, -2), (tmp_path / "rx.log").read_text()[-2000:]
