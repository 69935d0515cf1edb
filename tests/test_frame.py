"""Frame format (core/link/frame.py): round trips, and every kind of damage rejected."""
from __future__ import annotations

import time

import numpy as np
import pytest

from core.link.frame import (
    FLAG_HEADER_OK,
    MAX_SYMBOLS,
    STREAM_CLASSICAL,
    STREAM_TEST,
    FrameError,
    RxFrame,
    TxFrame,
    meta_time_ns,
    time_meta,
)


def _symbols(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)).astype(np.complex64)


@pytest.mark.parametrize("n", [0, 1, 1000, 200_000])
def test_tx_round_trip(n):
    f = TxFrame(frame_id=0xDEADBEEF, symbols=_symbols(n), stream=STREAM_CLASSICAL,
                meta=b"hello", flags=3)
    g = TxFrame.from_bytes(f.to_bytes())
    assert (g.frame_id, g.stream, g.meta, g.flags) == (0xDEADBEEF, STREAM_CLASSICAL, b"hello", 3)
    assert g.symbols.dtype == np.complex64
    np.testing.assert_array_equal(g.symbols, f.symbols)


def test_tx_frame_id_wraps_to_uint32():
    g = TxFrame.from_bytes(TxFrame(2**32 + 5, _symbols(3)).to_bytes())
    assert g.frame_id == 5


def test_rx_round_trip():
    sc = np.linspace(-3, 30, 200).astype(np.float32)
    f = RxFrame(frame_id=42, symbols=_symbols(5000, 1), cqi_db=9.75, subcarrier_snr_db=sc,
                snr_true_db=10.0, stream=STREAM_TEST, flags=FLAG_HEADER_OK, t_tx_ns=123456789)
    g = RxFrame.from_bytes(f.to_bytes())
    assert (g.frame_id, g.stream, g.flags, g.t_tx_ns) == (42, STREAM_TEST, FLAG_HEADER_OK, 123456789)
    assert g.cqi_db == pytest.approx(9.75) and g.snr_true_db == pytest.approx(10.0)
    np.testing.assert_array_equal(g.subcarrier_snr_db, sc)
    np.testing.assert_array_equal(g.symbols, f.symbols)


def test_rx_nan_snr_true_survives():
    g = RxFrame.from_bytes(RxFrame(1, _symbols(4), cqi_db=3.0).to_bytes())
    assert np.isnan(g.snr_true_db)


def test_tx_payload_corruption_rejected():
    raw = bytearray(TxFrame(1, _symbols(100)).to_bytes())
    raw[-5] ^= 0x40
    with pytest.raises(FrameError, match="payload CRC"):
        TxFrame.from_bytes(bytes(raw))


def test_tx_header_corruption_rejected():
    raw = bytearray(TxFrame(1, _symbols(100)).to_bytes())
    raw[8] ^= 0x01  # inside frame_id
    with pytest.raises(FrameError):
        TxFrame.from_bytes(bytes(raw))


@pytest.mark.parametrize("cut", [0, 5, 20, 100, 1])
def test_truncation_rejected(cut):
    raw = TxFrame(9, _symbols(50)).to_bytes()
    with pytest.raises(FrameError):
        TxFrame.from_bytes(raw[:len(raw) - cut] if cut else raw[:10])
    rraw = RxFrame(9, _symbols(50), 1.0).to_bytes()
    with pytest.raises(FrameError):
        RxFrame.from_bytes(rraw[:len(rraw) - cut] if cut else rraw[:10])


def test_extra_bytes_rejected():
    raw = TxFrame(9, _symbols(50)).to_bytes()
    with pytest.raises(FrameError, match="length"):
        TxFrame.from_bytes(raw + b"\0" * 8)


def test_garbage_and_wrong_kind_rejected():
    rng = np.random.default_rng(3)
    for _ in range(50):
        junk = rng.integers(0, 256, rng.integers(0, 400)).astype(np.uint8).tobytes()
        with pytest.raises(FrameError):
            TxFrame.from_bytes(junk)
        with pytest.raises(FrameError):
            RxFrame.from_bytes(junk)
    with pytest.raises(FrameError, match="magic"):
        RxFrame.from_bytes(TxFrame(1, _symbols(8)).to_bytes())
    with pytest.raises(FrameError, match="magic"):
        TxFrame.from_bytes(RxFrame(1, _symbols(8), 0.0).to_bytes())


def test_version_mismatch_rejected():
    raw = bytearray(TxFrame(1, _symbols(8)).to_bytes())
    raw[3] = 99  # version byte
    with pytest.raises(FrameError, match="version"):
        TxFrame.from_bytes(bytes(raw))


def test_oversized_frame_refused_before_allocation():
    with pytest.raises(FrameError):
        TxFrame(1, np.zeros(MAX_SYMBOLS + 1, np.complex64)).to_bytes()


def test_time_meta():
    t = time.time_ns()
    m = time_meta(t)
    assert meta_time_ns(m) == t
    assert meta_time_ns(m + b"more app data") == t
    assert meta_time_ns(b"") is None and meta_time_ns(b"xx12345678") is None
    f = TxFrame.from_bytes(TxFrame(3, _symbols(4), meta=time_meta()).to_bytes())
    assert abs(meta_time_ns(f.meta) - time.time_ns()) < 5e9
