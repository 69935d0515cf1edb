"""core.link.messages: for each message, the build/parse round trip, the exact wire the other
end reads (backward compatible keys), and the rejection of malformed input with MessageError
and nothing else (hand-picked cases and hypothesis fuzzing)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.codec.sideinfo import SideInfo
from core.link.frame import STREAM_CLASSICAL, STREAM_LEARNED, FrameError
from core.link.messages import (
    METRIC_FIELDS,
    METRICS_SCHEMA,
    Control,
    EndOfStream,
    Feedback,
    FlowgraphReply,
    FlowgraphRequest,
    MessageError,
    MetricsMessage,
    SideMessage,
    parse_side,
)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                           max_leaves=8)
json_objects = st.dictionaries(st.sampled_from(["yaw", "pitch", "fov", "roi", "cbr", "lam", "edit_steps", "pause",
                                                "step", "cqi_db", "ack", "stream", "status", "cmd", "snr_db",
                                                "ok", "error", "frame_id", "height", "width", "x"]),
                               json_values, max_size=6)


def _only_message_errors(parse, data) -> None:
    try:
        parse(data)
    except MessageError:
        pass


def test_one_exception_type():
    assert issubclass(FrameError, MessageError) and issubclass(MessageError, ValueError)
    with pytest.raises(MessageError):
        SideInfo.from_bytes(b"\0")


# ---------------------------------------------------------------------- side link
def _learned(**kw) -> SideMessage:
    h, w = 40, 80
    rgb = np.random.default_rng(0).integers(0, 255, (h, w, 3), np.uint8)
    side = SideInfo((h, w), np.arange(15, dtype=np.uint8).reshape(3, 5), 0.18, 10.0).to_bytes()
    grid = np.zeros((3, 5), bool); grid[1, 2:4] = True
    base = dict(stream=STREAM_LEARNED, frame_id=7, height=h, width=w, payload=side, reference=rgb,
                roi_grid=grid, t_sent_ns=123, tx_session=99, lam=0.18, eta_scale=0.2, roi=True,
                viewport={"yaw": 10.0, "pitch": -5.0, "fov": 90.0, "out_hw": (64, 64)}, cqi_used=10.0,
                cbr=0.04, budget=0.04, n_symbols=1234, encode_ms=12.5, edit_steps=0)
    return SideMessage(**{**base, **kw})


class TestSideMessage:
    def test_round_trip(self):
        msg = _learned()
        back = parse_side(msg.to_parts())
        assert isinstance(back, SideMessage)
        assert back.meta == msg.meta and back.key == (STREAM_LEARNED, 7)
        assert np.array_equal(back.reference, msg.reference) and np.array_equal(back.roi_grid, msg.roi_grid)
        assert SideInfo.from_bytes(back.payload).lam == pytest.approx(0.18, abs=1e-3)

    def test_classical_with_grant_and_unknown_keys(self):
        grant = json.dumps({"scheme": "hevc+ldpc", "layout": {"num_cbs": 2}}).encode()
        meta = {"stream": STREAM_CLASSICAL, "frame_id": 3, "height": 40, "width": 80, "codec": "hevc",
                "mcs": 9, "qp": 32, "olla_margin_db": 1.5, "new_key": [1, 2]}
        back = SideMessage.parse(SideMessage.from_meta(meta, grant).to_parts())
        assert back.meta == meta and back.payload == grant and back.extra == {"new_key": [1, 2]}
        assert back.reference is None and back.roi_grid is None

    def test_wire_is_what_older_receivers_read(self):
        parts = _learned().to_parts()
        meta = json.loads(parts[1])
        assert parts[0] == b"S" and len(parts) == 5
        assert meta["viewport"]["yaw"] == 10.0 and meta["height"] == 40 and meta["cqi_used"] == 10.0
        assert len(parts[3]) == 40 * 80 * 3 and len(parts[4]) == 2  # 15 ROI bits, packed

    def test_end_of_stream(self):
        eos = parse_side(EndOfStream(60, 2, 1).to_parts())
        assert eos == EndOfStream(60, 2, 1)
        assert parse_side([b"E", b"{}"]).frames == 0

    @pytest.mark.parametrize("change", [
        lambda p: p[:4], lambda p: [b"X", *p[1:]], lambda p: [p[0], b"{", *p[2:]],
        lambda p: [p[0], b"[]", *p[2:]], lambda p: [*p[:3], p[3][:-1], p[4]],
        lambda p: [*p[:3], b"", p[4]],  # learned without its reference frame
        lambda p: [*p[:4], b"\0" * 3],
        lambda p: [p[0], json.dumps({**json.loads(p[1]), "height": 10**6}).encode(), *p[2:]],
        lambda p: [p[0], json.dumps({**json.loads(p[1]), "width": "x"}).encode(), *p[2:]],
        lambda p: [p[0], json.dumps({**json.loads(p[1]), "frame_id": -1}).encode(), *p[2:]],
        lambda p: [p[0], json.dumps({**json.loads(p[1]), "viewport": {"yaw": "x"}}).encode(), *p[2:]],
        lambda p: [p[0], json.dumps({**json.loads(p[1]), "roi": "yes"}).encode(), *p[2:]],
        lambda p: [p[0], json.dumps({k: v for k, v in json.loads(p[1]).items() if k != "stream"}).encode(), *p[2:]],
        lambda p: [b"E", b"{\"frames\": -3}"], lambda p: [],
    ])
    def test_malformed_rejected(self, change):
        with pytest.raises(MessageError):
            parse_side(change(_learned().to_parts()))

    def test_build_validates(self):
        with pytest.raises(MessageError):
            _learned(reference=np.zeros((4, 4, 3), np.uint8))
        with pytest.raises(MessageError):
            _learned(roi_grid=np.zeros((2, 2), bool))

    @FUZZ
    @given(st.lists(st.binary(max_size=64), max_size=7), json_objects)
    def test_fuzz(self, parts, obj):
        _only_message_errors(parse_side, parts)
        _only_message_errors(parse_side, [b"S", json.dumps(obj).encode(), b"", b"", b""])


# ---------------------------------------------------------------------- feedback
class TestFeedback:
    def test_round_trip(self):
        fb = Feedback(11.5, 42, "classical", "cliff", 3, 39)
        assert Feedback.parse(fb.to_bytes()) == fb
        nan = Feedback.parse(Feedback().to_bytes())
        assert math.isnan(nan.cqi_db) and nan.ack is None

    def test_wire_keys(self):
        d = json.loads(Feedback(11.5, 42, "learned", "ok", 0, 1).to_bytes())
        assert d == {"cqi_db": 11.5, "ack": 42, "stream": "learned", "status": "ok", "lost": 0, "decoded": 1}
        assert Feedback.parse(b'{"cqi_db": 5.0}').cqi_db == 5.0  # minimal senders still work

    @pytest.mark.parametrize("raw", [b"", b"{", b"null", b"[1]", b'{"cqi_db": "NaN"}', b'{"cqi_db": 1e999}',
                                     b'{"cqi_db": 1, "stream": "video"}', b'{"cqi_db": 1, "status": 3}',
                                     b'{"cqi_db": 1, "ack": -1}', b"\xff\xfe"])
    def test_malformed_rejected(self, raw):
        with pytest.raises(MessageError):
            Feedback.parse(raw)

    @FUZZ
    @given(st.binary(max_size=100), json_objects)
    def test_fuzz(self, raw, obj):
        _only_message_errors(Feedback.parse, raw)
        _only_message_errors(Feedback.parse, json.dumps(obj).encode())


# ---------------------------------------------------------------------- viewer control
class TestControl:
    def test_round_trip(self):
        c = Control(yaw=30.0, pitch=-10.0, fov=100.0, roi=False, cbr=0.05, lam=0.2, edit_steps=3,
                    pause=True, step=1)
        assert Control.parse(c.to_bytes()) == c
        assert json.loads(Control(pause=False).to_bytes()) == {"pause": False}

    def test_viewer_dicts(self):
        assert Control.from_dict({"yaw": 1, "pitch": 2, "fov": 90}).as_dict() == {"yaw": 1.0, "pitch": 2.0,
                                                                                "fov": 90.0}
        assert Control.parse(b'{"roi": 1, "edit_steps": 4.0}').edit_steps == 4

    @pytest.mark.parametrize("raw", [b"", b"{", b"null", b"[1,2]", b'{"yaw": "x"}', b'{"cbr": 1e309}',
                                     b'{"lam": null}', b'{"pause": "yes"}', b'{"step": 1.5}', b'{"pitch": 3}',
                                     b'{"yaw": NaN}', b"\xff\xfe"])
    def test_malformed_rejected(self, raw):
        with pytest.raises(MessageError):
            Control.parse(raw)

    @FUZZ
    @given(st.binary(max_size=100), json_objects)
    def test_fuzz(self, raw, obj):
        _only_message_errors(Control.parse, raw)
        _only_message_errors(Control.parse, json.dumps(obj).encode())


# ---------------------------------------------------------------------- flowgraph control
class TestFlowgraphControl:
    def test_round_trip(self):
        for req in (FlowgraphRequest("ping"), FlowgraphRequest("get"),
                    FlowgraphRequest(settings={"snr_db": 7, "channel": "rayleigh", "multipath": True})):
            assert FlowgraphRequest.parse(req.to_bytes()) == req
        rep = FlowgraphReply(True, body={"state": {"snr_db": 7.0}})
        assert FlowgraphReply.parse(rep.to_bytes()) == rep
        bad = FlowgraphReply.failure(ValueError("loud"))
        assert FlowgraphReply.parse(bad.to_bytes()).as_dict() == {"ok": False, "error": "ValueError: loud"}

    def test_wire(self):
        assert json.loads(FlowgraphRequest(settings={"snr_db": 7}).to_bytes()) == {"snr_db": 7}
        assert json.loads(FlowgraphRequest("ping").to_bytes()) == {"cmd": "ping"}
        assert FlowgraphRequest.parse(b'{"cmd": "set", "cfo_hz": 500}').settings == {"cfo_hz": 500}

    @pytest.mark.parametrize("raw", [b"", b"{", b"[]", b"null", b'{"cmd": 5}', b'{"cmd": "reboot"}',
                                     b'{"snr_db": 1e400}', b'{"snr_db": [1]}', b'{"cmd": "ping", "snr_db": 3}',
                                     b'{"1x": 2}', b"\xff\xfe"])
    def test_malformed_request_rejected(self, raw):
        with pytest.raises(MessageError):
            FlowgraphRequest.parse(raw)

    @pytest.mark.parametrize("raw", [b"", b"[]", b"{}", b'{"ok": "yes"}', b'{"ok": true, "error": 5}'])
    def test_malformed_reply_rejected(self, raw):
        with pytest.raises(MessageError):
            FlowgraphReply.parse(raw)

    @FUZZ
    @given(st.binary(max_size=100), json_objects)
    def test_fuzz(self, raw, obj):
        for parse in (FlowgraphRequest.parse, FlowgraphReply.parse):
            _only_message_errors(parse, raw)
            _only_message_errors(parse, json.dumps(obj).encode())


# ---------------------------------------------------------------------- metrics
class TestMetricsMessage:
    def test_round_trip(self):
        img = np.random.default_rng(0).integers(0, 255, (16, 32, 3), np.uint8)
        sym = (np.arange(600) * (1 + 1j)).astype(np.complex64)
        row = {"frame_id": 7, "stream": "classical", "status": "cliff", "psnr": float("nan"), "mcs": 4,
               "roi": None, "ms_ssim": 0.9}
        msg = MetricsMessage.parse(MetricsMessage(row, img, sym, np.ones(48), img).to_parts(), 5.0)
        assert msg.frame_id == 7 and msg.stream == "classical" and msg.status == "cliff" and msg.t_recv == 5.0
        assert np.array_equal(msg.image, img) and np.array_equal(msg.reference, img)
        assert msg.symbols.size == 512 and msg.subcarrier_snr_db.size == 48
        assert np.isnan(msg.value("psnr")) and msg.value("ms_ssim") == 0.9 and np.isnan(msg.value("qp"))
        assert len(MetricsMessage(row).to_parts()) == 6  # no picture, no reference part

    def test_schema_is_the_csv_header(self):
        assert METRIC_FIELDS[:3] == ("frame_id", "stream", "status") and len(METRIC_FIELDS) == len(METRICS_SCHEMA)
        assert len(set(METRIC_FIELDS)) == len(METRIC_FIELDS)

    @pytest.mark.parametrize("index", range(8))
    def test_malformed_rejected(self, index):
        img = np.zeros((16, 32, 3), np.uint8)
        good = MetricsMessage({"frame_id": 1, "stream": "learned", "status": "ok"}, img).to_parts()
        bad = [[b"X"] + good[1:], good[:3], [good[0], b"{", *good[2:]],
               [*good[:2], b"[16, 32, 3]", b"\0" * 5, *good[4:]],
               [*good[:2], b"[99999, 2, 3]", *good[3:]], [*good[:4], b"\0" * 7, good[5]],
               [good[0], b'{"frame_id": 1, "stream": "learned"}', *good[2:]],
               [good[0], b'{"frame_id": 1, "stream": "learned", "status": "ok", "psnr": "high"}', *good[2:]]]
        with pytest.raises(MessageError):
            MetricsMessage.parse(bad[index])

    @FUZZ
    @given(st.lists(st.binary(max_size=64), max_size=8), json_objects)
    def test_fuzz(self, parts, obj):
        _only_message_errors(MetricsMessage.parse, parts)
        _only_message_errors(MetricsMessage.parse, [b"M", json.dumps(obj).encode(), b"[2, 2, 3]", b"\0" * 12,
                                                    b"", b""])
