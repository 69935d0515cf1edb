"""The digital part of a frame (side information / classical grant on the air) and the
rate-map coder: round trips, the golden coded size, CRC failure detection, the grant format."""
from __future__ import annotations

import zlib

import numpy as np
import pytest

from core.codec import ratemap
from core.link import sidepart


def _fixture_map() -> np.ndarray:
    """A synthetic 32x48 rate map (smooth field + noise) -- independent of any weights."""
    rng = np.random.default_rng(12)
    y, x = np.mgrid[0:32, 0:48]
    field = 7.5 + 5 * np.sin(x / 5) * np.cos(y / 7) + rng.normal(0, 1, (32, 48))
    return np.clip(np.round(field), 0, 15).astype(np.uint8)


def test_ratemap_round_trip_and_golden_size():
    idx = _fixture_map()
    data = ratemap.encode(idx)
    assert np.array_equal(ratemap.decode(data, idx.shape), idx)
    assert len(data) == 524  # golden: a change of the coder's format or model shows here
    assert len(data) < 0.8 * len(zlib.compress(idx.tobytes(), 9))  # zlib: 706 bytes
    rng = np.random.default_rng(0)
    for shape in ((1, 1), (1, 40), (40, 1), (7, 9)):
        m = rng.integers(0, 16, shape).astype(np.uint8)
        assert np.array_equal(ratemap.decode(ratemap.encode(m), shape), m)
    flat = np.full((32, 48), 5, np.uint8)
    assert len(ratemap.encode(flat)) < 20
    with pytest.raises(ValueError):
        ratemap.encode(np.full((2, 2), 16))


def test_side_mcs_rule():
    assert sidepart.side_mcs(-20.0) == 0 and sidepart.side_mcs(float("nan")) == 0
    mcs = [sidepart.side_mcs(c) for c in range(0, 21, 2)]
    assert mcs == sorted(mcs) and mcs[-1] > mcs[0]
    from core.classical.mcs import mcs_threshold_db
    for c in (5.0, 10.0, 14.0):  # 1 % BLER threshold at most CQI - 3 dB
        assert mcs_threshold_db(sidepart.side_mcs(c), 0.01) <= c - sidepart.SIDE_MARGIN_DB


def test_side_bodies_a_few_bytes_apart_share_one_ldpc_code_and_round_trip_exactly():
    """The side body sits on the TBS grid: live frames whose side information differs by a
    byte or two reuse one LDPC code (a new code costs the TX and the RX 12-40 ms each), and the
    receiver still returns exactly the bytes sent, without the padding."""
    from core.classical.ldpc import quantised_payload_bits
    sizes = range(217, 227)   # the side bytes of the shipped sample video at 512x256
    codes = {sidepart._coder(sidepart._body_payload_bits(n), 4, sidepart._RNTI_BODY).code
             for n in sizes}
    assert len(codes) <= 5 < len(sizes)
    assert all(8 * n <= quantised_payload_bits(8 * n) <= 8 * n * 1.04 for n in sizes)
    rng = np.random.default_rng(3)
    for n in (1, 217, 218, 223):
        data = rng.bytes(n)
        x = sidepart.encode(data, 10.0)
        assert x.size == sidepart.channel_uses(n, 10.0)
        got = sidepart.decode(np.concatenate([x, np.ones(50, np.complex64)]), 1e-3)
        assert got.data == data and got.n_symbols == x.size


@pytest.mark.parametrize("cqi", [0.0, 10.0, 14.0])
def test_side_part_round_trip_over_awgn(cqi):
    rng = np.random.default_rng(1)
    data = rng.bytes(300)
    x = sidepart.encode(data, cqi)
    assert x.size == sidepart.channel_uses(len(data), cqi)
    assert abs(np.mean(np.abs(x) ** 2) - 1) < 0.05
    payload = np.ones(100, np.complex64)
    y = sidepart.awgn(np.concatenate([x, payload]), cqi - 1.0, rng)  # channel 1 dB worse
    got = sidepart.decode(y, 10 ** (-(cqi - 1.0) / 10))
    assert got.ok and got.data == data and got.n_symbols == x.size
    assert got.mcs == sidepart.side_mcs(cqi)


def test_corrupted_side_part_fails_its_crc():
    rng = np.random.default_rng(2)
    data = rng.bytes(200)
    x = sidepart.encode(data, 10.0)
    n_ctrl = sidepart.control_symbols()
    bad_body = x.copy(); bad_body[n_ctrl:] = -bad_body[n_ctrl:]
    got = sidepart.decode(bad_body, 0.01)
    assert not got.ok and got.mcs == sidepart.side_mcs(10.0)
    bad_ctrl = x.copy(); bad_ctrl[:n_ctrl] = rng.standard_normal(n_ctrl) * 3
    got = sidepart.decode(bad_ctrl, 0.01)
    assert not got.ok and got.mcs is None
    for y in (np.zeros(0, np.complex64), np.full(50, np.nan, np.complex64)):
        assert not sidepart.decode(y, float("nan")).ok  # never raises


def test_classical_grant_round_trip():
    from core.classical.ldpc import tb_layout
    from core.classical.mcs import mcs_entry
    e = mcs_entry(13)
    lay = tb_layout(20_000 + 32, e.qm, e.rate)
    meta = {"scheme": "hevc+ldpc", "codec": "hevc", "mcs": 13, "shape": [256, 512],
            "mean_rgb": [12, 200, 99], "param": 37, "layout": lay.to_dict(), "scramble": True,
            "budget": 9999, "cbr": 0.04}
    blob = sidepart.pack_grant(meta)
    assert len(blob) == sidepart.grant_size("hevc")
    back = sidepart.unpack_grant(blob)
    for k in ("codec", "mcs", "shape", "mean_rgb", "param", "layout", "scramble", "scheme"):
        assert back[k] == meta[k], k
    empty = sidepart.unpack_grant(sidepart.pack_grant({**meta, "param": None, "layout": None}))
    assert empty["param"] is None and empty["layout"] is None
    with pytest.raises(ValueError):
        sidepart.unpack_grant(blob[:-1])
