"""Source codecs of the classical chain: real encoders/decoders on small ERP fixtures."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.classical import codecs as C

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def img():
    return np.asarray(Image.open(FIX / "baseline_erp_petra_128x64.png").convert("RGB"))


@pytest.fixture(scope="module")
def odd_img():
    # odd size: the ffmpeg codecs pad and crop
    return np.asarray(Image.open(FIX / "baseline_erp_puydesancy_96x48.png").convert("RGB"))[:45, :91]


def _codec(name):
    return C.get_codec(name, preset="faster") if name == "vvc" else C.get_codec(name)


#: minimum PSNR at the 3/4 point of each ladder (128x64 ERP fixture)
PSNR_FLOOR = {"vvc": 34, "hevc": 34, "av1": 34, "av1-aom": 34, "j2k": 30, "jpeg": 30}


@pytest.mark.parametrize("name", C.CODEC_NAMES)
def test_round_trip_bits_monotone(name, img):
    codec = _codec(name)
    lad = codec.ladder
    params = [lad[len(lad) // 8], lad[len(lad) // 2], lad[3 * len(lad) // 4]]
    bits, psnrs = [], []
    for p in params:
        data = codec.encode(img, p)
        assert isinstance(data, bytes) and len(data) > 0
        rec = codec.decode(data, img.shape)
        assert rec.shape == img.shape and rec.dtype == np.uint8
        bits.append(8 * len(data))
        psnrs.append(C.psnr(img, rec))
    assert bits[0] < bits[1] < bits[2], bits
    assert psnrs[0] < psnrs[1] < psnrs[2], psnrs
    assert psnrs[2] > PSNR_FLOOR[name], psnrs


@pytest.mark.parametrize("name", ["vvc", "hevc", "av1-aom", "j2k"])
def test_odd_sizes(name, odd_img):
    codec = _codec(name)
    p = codec.ladder[len(codec.ladder) * 3 // 4]
    rec = codec.decode(codec.encode(odd_img, p), odd_img.shape)
    assert rec.shape == odd_img.shape
    assert C.psnr(odd_img, rec) > 28


@pytest.mark.parametrize("name", [n for n in C.CODEC_NAMES if C.get_codec(n).has_lossless])
def test_lossless_bit_exact(name, img):
    codec = C.get_codec(name)
    rec = codec.decode(codec.encode(img, C.LOSSLESS), img.shape)
    assert np.array_equal(rec, img)


@pytest.mark.parametrize("name", C.CODEC_NAMES)
def test_garbage_is_detected(name, img):
    codec = _codec(name)
    rng = np.random.default_rng(1)
    with pytest.raises(C.CodecError):
        codec.decode(rng.integers(0, 256, 600, dtype=np.uint8).tobytes(), img.shape)
    with pytest.raises(C.CodecError):
        codec.decode(b"", img.shape)


def test_truncated_vvc_is_detected(img):
    codec = _codec("vvc")
    data = codec.encode(img, 32)
    with pytest.raises(C.CodecError):
        codec.decode(data[: len(data) // 2], img.shape)


def test_cache_and_largest_fitting(img, tmp_path, monkeypatch):
    codec = C.get_codec("jpeg")
    cache = C.BitstreamCache(tmp_path)
    pt = C.largest_fitting(codec, img, 12000, cache)
    assert pt is not None and pt.bits <= 12000
    lad = list(codec.ladder)
    i = lad.index(pt.param)
    assert i + 1 == len(lad) or cache.bits(codec, img, lad[i + 1]) > 12000
    assert pt.data is not None and 8 * len(pt.data) == pt.bits
    assert abs(pt.psnr - C.psnr(img, codec.decode(pt.data, img.shape))) < 1e-9
    assert C.largest_fitting(codec, img, 10, cache) is None
    # the walk from a hint gives the same point
    assert C.largest_fitting(codec, img, 12000, cache, qp_hint=lad[5]).param == pt.param
    assert C.largest_fitting(codec, img, 12000, cache, qp_hint=lad[-1]).param == pt.param
    # everything now comes from disk: the encoder must not run again
    monkeypatch.setattr(codec, "encode", lambda *a, **k: pytest.fail("re-encoded"))
    pt2 = C.largest_fitting(codec, img, 12000, C.BitstreamCache(tmp_path))
    assert (pt2.param, pt2.bits, pt2.mse) == (pt.param, pt.bits, pt.mse)


def test_cache_key_separates_settings(img, tmp_path):
    assert C.get_codec("vvc", preset="faster").tag != C.get_codec("vvc", preset="medium").tag
    assert C.image_key(img) != C.image_key(img[::-1].copy())


def test_mean_image(img):
    m = C.mean_image(img)
    assert m.shape == img.shape
    assert np.all(m == m[0, 0])
    assert np.allclose(m[0, 0], img.reshape(-1, 3).mean(0), atol=0.5)


@pytest.mark.parametrize("name", ["vvc", "hevc", "av1-aom"])
def test_pyav_decode_is_bit_exact_with_the_ffmpeg_command(name, img, odd_img):
    """The in-process decode (PyAV: libavcodec + the same swscale filter) must give the very
    pixels of the ffmpeg command it replaces, for lossy frames and odd (padded) sizes."""
    codec = _codec(name)
    if not C._pyav_can_decode(codec.fmt):
        pytest.skip(f"PyAV here lacks the {codec.fmt} demuxer")
    for x in (img, odd_img):
        data = codec.encode(x, codec.ladder[len(codec.ladder) * 3 // 4])
        ph, pw = x.shape[0] + (-x.shape[0]) % codec.pad_to, x.shape[1] + (-x.shape[1]) % codec.pad_to
        by_command = codec.decode_with_command(data, ph, pw)[: x.shape[0], : x.shape[1]]
        assert np.array_equal(codec.decode(data, x.shape), by_command)


def test_live_hevc_encodes_in_process_byte_exact_with_the_ffmpeg_command(img, odd_img, monkeypatch):
    """The live x265 (one thread, no worker pool) encodes in process through PyAV -- no process
    start per frame -- and must write the very bitstream of the ffmpeg command with the same
    options, colour signalling included; the offline setting stays on the command."""
    live = C.get_codec("hevc", preset="ultrafast", thread_pool=False)
    if not C._pyav_can_encode(live.pyav_encoder):
        pytest.skip("PyAV here lacks libx265")
    for x in (img, odd_img):
        padded = C._pad(x, live.pad_to)
        for qp in (22, 37):
            assert live.encode(x, qp) == live.encode_with_command(padded, qp)
    offline = C.get_codec("hevc", preset="ultrafast")
    monkeypatch.setattr(C, "_encode_in_process", lambda *a: pytest.fail("offline encoded in process"))
    assert offline.encode(img, 30) == offline.encode_with_command(C._pad(img, offline.pad_to), 30)
