"""A frame whose side part is corrupted on the air: the real receiver (``rx.app.Receiver``,
real LDPC decoding of the digital part, no mocks) shows the stated fallback -- the previous
picture of the stream -- counts it (``side_failed``) and goes on."""
from __future__ import annotations

import csv
import json
import time

import numpy as np
import pytest

from core.cli import build_parser
from core.link import sidepart
from core.link.frame import STREAM_CLASSICAL, STREAM_LEARNED, RxFrame


@pytest.fixture()
def receiver(tmp_path, base_port):
    from rx.app import Receiver
    args = build_parser("rx").parse_args(["rx", "--base-port", str(base_port), "--out", str(tmp_path),
                                      "--device", "cpu", "--save-every", "0"])
    rx = Receiver(args)
    yield rx
    rx.close()


def _reference(frame_id: int, rgb: np.ndarray, stream: int = STREAM_LEARNED) -> list[bytes]:
    meta = {"stream": stream, "frame_id": frame_id, "height": rgb.shape[0], "width": rgb.shape[1],
            "t_sent_ns": time.time_ns(), "tx_session": 7,
            "viewport": {"yaw": 0.0, "pitch": 0.0, "fov": 90.0, "out_hw": [64, 64]}}
    return [b"S", json.dumps(meta).encode(), b"", rgb.tobytes() if stream == STREAM_LEARNED else b"", b""]


def _rows(path) -> list[dict]:
    with open(path / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_corrupted_side_part_shows_previous_frame_and_is_counted(receiver, tmp_path):
    rx = receiver
    rng = np.random.default_rng(0)
    rgb = (rng.random((64, 128, 3)) * 255).astype(np.uint8)
    rgb[:, :64] = 90
    enc = rx.codec.encode(rgb, 0.18, 0.2, 10.0)
    air = rx.codec.frame_symbols(enc, 10.0)
    n_side = air.size - enc.n_symbols

    def send(frame_id, symbols, cqi=20.0, stream=STREAM_LEARNED):
        rx._on_side(_reference(frame_id, rgb, stream))
        rx._on_phy(RxFrame(frame_id, symbols, cqi, stream=stream).to_bytes())
        rx.flush_reports()  # metrics rows are written by the receiver's report worker

    noise = 0.05 * (rng.standard_normal(air.size) + 1j * rng.standard_normal(air.size))
    send(0, (air + noise).astype(np.complex64))
    good = rx.shown[STREAM_LEARNED].copy()
    assert rx.counters.decoded == 1 and rx.counters.side_failed == 0

    # frame 1: the same JSCC symbols, but the side part hit hard on the air (a burst that
    # flips its body): the LDPC decoder fails, the CRC says so, the fallback is shown
    bad = (air + noise).astype(np.complex64)
    bad[sidepart.control_symbols():n_side] *= -1
    send(1, bad)
    assert rx.counters.side_failed == 1 and rx.counters.decoded == 1
    assert np.array_equal(rx.shown[STREAM_LEARNED], good)  # the previous picture
    rows = _rows(tmp_path)
    assert [r["status"] for r in rows] == ["ok", "side_failed"]
    assert rows[1]["side_failed"] == "1" and rows[0]["side_failed"] == "0"
    assert float(rows[1]["psnr"]) == pytest.approx(float(rows[0]["psnr"]), abs=1e-6)
    assert json.loads((tmp_path / "rx_counters.json").read_text())["side_failed"] == 1

    # frame 2: a whole frame of noise (control block lost too), then the stream goes on
    send(2, (rng.standard_normal(air.size) * 2).astype(np.complex64), cqi=float("nan"))
    send(3, (air + noise).astype(np.complex64))
    rows = _rows(tmp_path)
    assert [r["status"] for r in rows] == ["ok", "side_failed", "side_failed", "ok"]
    assert rx.counters.side_failed == 2 and rx.counters.malformed == 0

    # the classical stream: a lost grant shows mid-grey before its first picture, counted
    send(4, (rng.standard_normal(500) * 2).astype(np.complex64), stream=STREAM_CLASSICAL)
    assert rx.counters.side_failed == 3
    assert (rx.shown[STREAM_CLASSICAL] == 128).all() and rx.shown[STREAM_CLASSICAL].shape == rgb.shape
