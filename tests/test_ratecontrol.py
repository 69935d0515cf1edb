"""The classical chain's live rate control (core/classical/ratecontrol.py) with the real x265
(HEVC ultrafast, the live codec) on a panning ERP fixture, against the exact QP search."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.classical import codecs as C
from core.classical.chain import make_scheme
from core.classical.ratecontrol import LiveRateControl
from tests.helpers import REPO

FIXTURE = REPO / "tests" / "fixtures" / "baseline_erp_petra_128x64.png"
#: 128x64 at about 1.5 bit per pixel: QP ~30 for x265 (its lowest rate, QP 51, is ~1 200 bits)
MAX_BITS = 12000


@pytest.fixture(scope="module")
def pan():
    """Ten frames of a slow yaw pan (2 pixels a frame), like a 360° camera turning."""
    img = np.asarray(Image.open(FIXTURE).convert("RGB"))
    return [np.ascontiguousarray(np.roll(img, 2 * k, axis=1)) for k in range(10)]


@pytest.fixture(scope="module")
def codec():
    return C.get_codec("hevc", preset="ultrafast")


def exact(codec, rgb, max_bits):
    return C.largest_fitting(codec, rgb, max_bits, C.BitstreamCache(enabled=False))


def test_every_frame_fits_and_stays_within_one_step_of_the_search(codec, pan):
    rc = LiveRateControl(codec)
    lad = list(codec.ladder)
    for k, rgb in enumerate(pan):
        pt = rc.fit(rgb, MAX_BITS)
        best = exact(codec, rgb, MAX_BITS)
        assert pt is not None and pt.bits <= MAX_BITS, k
        assert len(pt.data) * 8 == pt.bits
        assert 0 <= lad.index(best.param) - lad.index(pt.param) <= 1, (k, pt.param, best.param)
    assert rc.stats.searches == 1                       # only the first frame searched
    later = rc.stats.encodes - 5                        # the first frame's search: <= 5 encodes here
    assert rc.stats.encodes_per_frame < 2.0 and later <= 1.5 * (len(pan) - 1), rc.stats


def test_overshoot_walks_down_to_a_fitting_point_and_learns_the_slope(codec, pan):
    rc = LiveRateControl(codec, slope=0.6)              # 5x too steep: predicts too small a drop
    rc.fit(pan[0], MAX_BITS)
    pt = rc.fit(pan[1], MAX_BITS // 4)                  # the CQI fell: a quarter of the bits
    assert rc.stats.overshoots == 1
    assert pt is not None and pt.bits <= MAX_BITS // 4
    lad = list(codec.ladder)
    best = exact(codec, pan[1], MAX_BITS // 4)
    assert 0 <= lad.index(best.param) - lad.index(pt.param) <= 2
    assert rc.slope < 0.5                               # learned from the overshooting encodes


def test_simpler_content_tries_higher_once(codec, pan):
    rc = LiveRateControl(codec)
    rc.fit(pan[0], MAX_BITS)
    flat = np.ascontiguousarray(np.asarray(Image.fromarray(pan[1]).resize((16, 8)).resize((128, 64))))
    pt = rc.fit(flat, MAX_BITS)                         # a scene cut to a flat frame
    assert rc.stats.step_ups == 1 and pt.bits <= MAX_BITS
    lad = list(codec.ladder)
    assert lad.index(pt.param) > lad.index(rc.ladder[0]) + 1


def test_nothing_fits_gives_none(codec, pan):
    rc = LiveRateControl(codec)
    assert rc.fit(pan[0], 200) is None                  # below the lowest rate's header cost
    rc.fit(pan[0], MAX_BITS)
    assert rc.fit(pan[1], 200) is None


def test_chain_with_rate_control_round_trips_without_cache_writes(codec, pan, tmp_path):
    chain = make_scheme("hevc+ldpc", cache=tmp_path, codec_options={"preset": "ultrafast"})
    rc = LiveRateControl(chain.codec)
    for rgb in pan[:3]:
        tx = chain.symbols_for(rgb, 0.1, cqi_db=15.0, rate_control=rc)
        res = chain.receive(tx.symbols, 10 ** (-3.0), tx.meta, original=rgb)   # 30 dB: no errors
        assert res.success and res.psnr > 25
        assert tx.meta["codec_mse"] is None             # the TX does not decode its own frame
    assert not any(tmp_path.rglob("*.bin"))            # live frames never reach the disk cache


def test_tbs_grid_rounds_up_by_at_most_one_64th_and_repeats_sizes():
    from core.classical.ldpc import quantised_payload_bits
    sizes = np.arange(100, 200_000, 37)
    q = np.array([quantised_payload_bits(int(x)) for x in sizes])
    assert np.all(q >= sizes) and np.all(q - sizes <= np.maximum(8, sizes / 64))
    # frames whose bitstreams differ by a few hundred bits share one transport-block size
    assert len({quantised_payload_bits(30_000 + d) for d in range(0, 400, 8)}) <= 2


def test_live_layout_stays_within_the_budget(codec, pan):
    chain = make_scheme("hevc+ldpc", codec_options={"preset": "ultrafast"})
    rc = LiveRateControl(chain.codec)
    for cbr in (0.05, 0.1, 0.3):
        tx = chain.symbols_for(pan[0], cbr, cqi_db=12.0, rate_control=rc)
        assert 0 < tx.symbols.size <= tx.meta["budget"]
        assert tx.meta["layout"]["payload_bits"] >= tx.source_bits + 32
