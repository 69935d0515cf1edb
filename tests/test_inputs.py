"""Input files are validated with errors a user can act on."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from core.experiments.evaluate import read_trace
from core.media.imageio import read_rgb
from core.media.source import FrameSource, parse_resolution
from tests.helpers import REPO


def test_resolution_parsing():
    assert parse_resolution("512x256") == (512, 256)
    for bad, hint in (("512", "WIDTHxHEIGHT"), ("500x250", "multiples of 16"),
                      ("512x512", "2:1"), ("16384x8192", "larger")):
        with pytest.raises(ValueError, match=hint):
            parse_resolution(bad)


def test_sources_validated(tmp_path):
    with pytest.raises(FileNotFoundError, match="--source"):
        FrameSource(tmp_path / "missing.mp4", (256, 128))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="unsupported"):
        FrameSource(tmp_path / "notes.txt", (256, 128))
    Image.new("RGB", (300, 300)).save(tmp_path / "square.png")
    with pytest.raises(ValueError, match="not a 2:1"):
        next(FrameSource(tmp_path / "square.png", (256, 128)).frames())
    (tmp_path / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(ValueError, match="not a readable image"):
        read_rgb(tmp_path / "broken.png")
    empty = tmp_path / "empty"; empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        FrameSource(empty, (256, 128))


def test_shipped_video_and_panoramas_stream():
    frames = list(itertools.islice(FrameSource(None, (256, 128)).frames(), 3))
    assert all(f.shape == (128, 256, 3) and f.dtype == np.uint8 for f in frames)
    pano = next(FrameSource(REPO / "data" / "erp", (512, 256)).frames())
    assert pano.shape == (256, 512, 3)


def test_trace_validation(tmp_path):
    t = read_trace(str(REPO / "flowgraphs" / "traces" / "cost2100_like.csv"))
    assert t.size >= 900 and -10 < t.mean() < 30
    (tmp_path / "bad.csv").write_text("snr_db\n5\nnan\n")
    with pytest.raises(ValueError, match="finite"):
        read_trace(str(tmp_path / "bad.csv"))
    with pytest.raises(FileNotFoundError):
        read_trace(str(tmp_path / "missing.csv"))


@pytest.mark.parametrize("argv, hint", [
    (["demo", "--headless", "--resolution", "100x33"], "--resolution: resolution 100x33"),
    (["demo", "--headless", "--source", "/nonexistent"], "--source: content /nonexistent does not exist"),
    (["tx", "--resolution", "512"], "is not WIDTHxHEIGHT"),
    (["demo", "--headless", "--frames", "five"], "--frames: invalid int value"),
])
def test_bad_command_line_is_one_line_before_any_process(argv, hint, capsys, monkeypatch):
    from core.cli import main
    from tx import session

    def no_session(*_a, **_k):
        raise AssertionError("a session was started for bad input")
    monkeypatch.setattr(session.Session, "__init__", no_session)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and hint in err and err.startswith(f"ntscc-xr {argv[0]}: error: ")
