"""Property-based fuzzing of the binary wire parsers (PHY frames, side information): malformed
input raises MessageError (FrameError is one), never anything else, and never allocates from
an attacker-controlled size. The JSON / multipart messages are fuzzed in test_messages.py."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.codec.sideinfo import SideInfo
from core.link.errors import MessageError
from core.link.frame import FrameError, RxFrame, TxFrame

FUZZ = settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))


def _valid_tx() -> bytes:
    sym = (np.arange(40) * (1 + 1j)).astype(np.complex64)
    return TxFrame(7, sym, 1, meta=b"meta").to_bytes()


def _valid_rx() -> bytes:
    return RxFrame(9, np.ones(30, np.complex64), 12.5, np.arange(8, dtype=np.float32)).to_bytes()


def _valid_side() -> bytes:
    return SideInfo((64, 128), np.arange(32, dtype=np.uint8).reshape(4, 8) % 16, 0.18, 10.0).to_bytes()


def _mutate(data: bytes, positions: list[int], values: list[int], cut: int | None) -> bytes:
    b = bytearray(data)
    for p, v in zip(positions, values):
        b[p % len(b)] = v
    return bytes(b[:cut]) if cut is not None else bytes(b)


mutations = st.tuples(st.lists(st.integers(0, 10_000), max_size=6),
                      st.lists(st.integers(0, 255), max_size=6),
                      st.one_of(st.none(), st.integers(0, 600)))


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_rejected_cleanly(data):
    for parser in (TxFrame.from_bytes, RxFrame.from_bytes, SideInfo.from_bytes):
        try:
            parser(data)
        except MessageError:
            pass


@FUZZ
@given(mutations)
def test_mutated_frames_rejected_or_identical(m):
    for make, parser in ((_valid_tx, TxFrame.from_bytes), (_valid_rx, RxFrame.from_bytes),
                         (_valid_side, SideInfo.from_bytes)):
        original = make()
        data = _mutate(original, *m)
        try:
            parser(data)
        except MessageError:
            continue
        if parser != SideInfo.from_bytes:
            assert data == original  # CRC-protected: any change must be caught


def test_oversized_claim_refused_before_allocation():
    data = bytearray(_valid_tx())
    data[12:16] = (1 << 30).to_bytes(4, "little")  # n_symbols field
    try:
        TxFrame.from_bytes(bytes(data))
    except FrameError as exc:
        assert "CRC" in str(exc) or "MAX_SYMBOLS" in str(exc)
    else:
        raise AssertionError("oversized frame accepted")


def test_round_trips():
    f = TxFrame.from_bytes(_valid_tx())
    assert f.frame_id == 7 and f.stream == 1 and f.meta == b"meta" and f.symbols.size == 40
    r = RxFrame.from_bytes(_valid_rx())
    assert r.frame_id == 9 and r.cqi_db == 12.5 and r.subcarrier_snr_db.size == 8
