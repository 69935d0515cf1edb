"""The real transmitter process under fuzzing of its two inputs (viewer control, CQI
feedback): no crash, no hang, and valid commands still take effect afterwards."""
from __future__ import annotations

import os
import signal
import time

import numpy as np
import zmq

from core.link.endpoints import Endpoints
from core.link.messages import Control, Feedback, SideMessage, parse_side
from tests.helpers import cli, spawn

N_FUZZ = 10_000


def _next_meta(side: zmq.Socket, timeout: float = 60.0) -> dict:
    t_end = time.time() + timeout
    while time.time() < t_end:
        if side.poll(200):
            msg = parse_side(side.recv_multipart())
            if isinstance(msg, SideMessage):
                return msg.meta
    raise AssertionError("the transmitter sent nothing")


def _stop(proc, ctx: zmq.Context, *sockets: zmq.Socket) -> None:
    """Ctrl-C the transmitter's process group, then close the test's sockets."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(10)
    for s in sockets:
        s.close(0)
    ctx.term()


def test_transmitter_survives_fuzzed_control_and_feedback(tmp_path, base_port):
    ep = Endpoints.from_base(base_port)
    ctx = zmq.Context()
    side = ctx.socket(zmq.PULL); side.bind(ep.side)          # where the RX would bind
    fb = ctx.socket(zmq.PUB); fb.bind(ep.feedback)           # where the RX would publish CQI
    proc = spawn(cli("tx", "--base-port", str(base_port), "--frames", "0", "--fps", "20",
                     "--resolution", "128x64", "--no-classical", "--device", "cpu",
                     "--trajectory", "static", "--cqi-init", "10"), tmp_path / "tx.log")
    ctl = ctx.socket(zmq.PUSH); ctl.connect(ep.control)
    ctl.setsockopt(zmq.SNDTIMEO, 10_000)
    try:
        assert _next_meta(side)["cqi_used"] == 10.0
        rng = np.random.default_rng(0)
        junk = [b"", b"{", b"null", b"[1,2]", b'{"yaw": "x"}', b'{"cbr": 1e309}',
                b'{"edit_steps": -5}', b'{"cqi_db": "NaN"}', b'{"lam": null}', b"\xff\xfe"]
        t0 = time.time()
        for i in range(N_FUZZ):
            msg = junk[i % len(junk)] if i % 3 else rng.bytes(int(rng.integers(0, 200)))
            ctl.send(msg)
            fb.send(msg)
            if i % 500 == 0:
                while side.poll(0):
                    side.recv_multipart()  # keep the side link drained
        assert time.time() - t0 < 120
        time.sleep(1.0)
        assert proc.poll() is None, (tmp_path / "tx.log").read_text()[-2000:]
        # valid inputs still work afterwards
        ctl.send(Control(yaw=90.0, pitch=10.0).to_bytes())
        for _ in range(5):
            fb.send(Feedback(cqi_db=5.0).to_bytes())
            time.sleep(0.1)
        t_end = time.time() + 60
        while time.time() < t_end:
            meta = _next_meta(side)
            if meta["viewport"]["yaw"] == 90.0 and meta["cqi_used"] == 5.0:
                break
        else:
            raise AssertionError("valid control/feedback ignored after fuzzing")
    finally:
        _stop(proc, ctx, side, fb, ctl)


def test_pause_and_single_step(tmp_path, base_port):
    ep = Endpoints.from_base(base_port)
    ctx = zmq.Context()
    side = ctx.socket(zmq.PULL); side.bind(ep.side)
    proc = spawn(cli("tx", "--base-port", str(base_port), "--frames", "0", "--fps", "20",
                     "--resolution", "128x64", "--no-classical", "--device", "cpu"), tmp_path / "tx.log")
    ctl = ctx.socket(zmq.PUSH); ctl.connect(ep.control)
    try:
        _next_meta(side)
        ctl.send(Control(pause=True).to_bytes())
        time.sleep(1.5)
        while side.poll(0):
            side.recv_multipart()  # frames already in flight
        time.sleep(1.0)
        assert not side.poll(1000), "frames kept coming while paused"
        ctl.send(Control(step=1).to_bytes())
        first = _next_meta(side, timeout=30)
        assert not side.poll(1500), "a single step sent more than one frame"
        ctl.send(Control(pause=False).to_bytes())
        assert _next_meta(side, timeout=30)["frame_id"] > first["frame_id"]
    finally:
        _stop(proc, ctx, side, ctl)


def test_classical_link_adaptation_follows_acknowledgements(tmp_path, base_port):
    """Negative acknowledgements of classical frames raise the TX's OLLA back-off (the
    classical chain then plans with CQI minus the back-off); positive ones lower it."""
    ep = Endpoints.from_base(base_port)
    ctx = zmq.Context()
    side = ctx.socket(zmq.PULL); side.bind(ep.side)
    fb = ctx.socket(zmq.PUB); fb.bind(ep.feedback)
    proc = spawn(cli("tx", "--base-port", str(base_port), "--frames", "0", "--fps", "10",
                     "--resolution", "128x64", "--classical", "--classical-codec", "hevc",
                     "--device", "cpu", "--trajectory", "static", "--cqi-init", "10"),
                 tmp_path / "tx.log")

    def classical_meta(pred, timeout=60.0):
        t_end = time.time() + timeout
        while time.time() < t_end:
            meta = _next_meta(side)
            if meta["stream"] == 1 and pred(meta):
                return meta
        raise AssertionError((tmp_path / "tx.log").read_text()[-2000:])

    def ack(status, n):
        for _ in range(n):
            fb.send(Feedback(cqi_db=10.0, stream="classical", status=status).to_bytes())
            time.sleep(0.02)

    try:
        assert classical_meta(lambda m: True)["olla_margin_db"] == 0.0
        ack("cliff", 3)
        up = classical_meta(lambda m: m["olla_margin_db"] >= 3.0)
        assert up["cqi_used"] == 10.0 - up["olla_margin_db"]
        ack("ok", 250)  # each good frame lowers it by 1 dB * 0.01 / 0.99 (the 1 % default)
        down = classical_meta(lambda m: m["olla_margin_db"] < up["olla_margin_db"] - 2.0)
        assert down["cqi_used"] > up["cqi_used"]
    finally:
        _stop(proc, ctx, side, fb)
