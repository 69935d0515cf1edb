"""Every message between the processes of a session: one build and one parse each.

::

    message (class)                  from -> to          socket, kind         wire
    side (SideMessage)               TX -> RX            side, PUSH/PULL      [b"S", JSON meta, payload,
                                                                               reference RGB, ROI bits]
    end of stream (EndOfStream)      TX -> RX            side, PUSH/PULL      [b"E", JSON counts]
    PHY frames (frame.TxFrame,       TX -> flowgraph,    fg_in / fg_out,      binary header + CRC-32,
                frame.RxFrame)       flowgraph -> RX     PUSH/PULL            complex64 symbols
    feedback (Feedback)              RX -> TX            feedback, PUB/SUB    JSON: CQI + one ack
    control (Control)                viewer -> TX        control, PUSH/PULL   JSON: pose, ROI, budget...
    flowgraph control                any -> flowgraph    fg_ctrl, REQ/REP     JSON request -> JSON reply
      (FlowgraphRequest / Reply)
    metrics (MetricsMessage)         RX -> viewer        metrics, PUB/SUB     [b"M", JSON row, JSON shape,
                                                                               image, symbols, subcarrier
                                                                               SNR (, reference)]

Each message is a dataclass with ``to_parts()`` / ``to_bytes()`` (the build, which validates
too) and a ``parse`` classmethod; malformed input raises :class:`MessageError` and nothing
else, before anything is allocated from a size the message claims.

The learned chain's side information (:class:`core.codec.sideinfo.SideInfo` bytes: rate-index
map, λ, ν, image size) and the classical chain's grant (JSON: MCS, QP, transport-block layout)
travel as the ``payload`` of a :class:`SideMessage`; their own formats stay with their chains.

The PHY frames keep their binary format in :mod:`core.link.frame`: they are the hot path of
the GNU Radio blocks, carry complex symbols (no JSON), and are versioned and CRC-protected on
their own; :class:`core.link.frame.FrameError` is a :class:`MessageError`.

Torch-free, numpy + stdlib only: the flowgraph process (Debian's ``/usr/bin/python3``,
numpy 1.x) imports this module for its control socket.
"""
from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass, field, fields

import numpy as np

from .errors import MessageError
from .frame import STREAM_CLASSICAL, STREAM_LEARNED, STREAM_TEST

__all__ = ["MessageError", "SideMessage", "EndOfStream", "parse_side", "Feedback", "Control",
           "FlowgraphRequest", "FlowgraphReply", "MetricsMessage", "METRICS_SCHEMA", "METRIC_FIELDS",
           "NUMERIC_METRICS", "STREAM_NAMES", "num"]

#: stream number (frame header, side message) -> stream name (feedback, metrics rows)
STREAM_NAMES = {STREAM_LEARNED: "learned", STREAM_CLASSICAL: "classical", STREAM_TEST: "test"}
MAX_HEIGHT, MAX_WIDTH = 4096, 8192  # ERP frames; larger claims are refused before allocation
MAX_JSON = 1 << 20                  # bytes of one JSON part
ROI_STRIDE = 16                     # pixels per ROI grid cell (core.media.geometry.roi_grid_mask)
MAX_CONSTELLATION = 512             # equalised symbols a metrics message carries


# ---------------------------------------------------------------------- field checks
def _json_object(raw, what: str) -> dict:
    if not isinstance(raw, (bytes, bytearray, memoryview, str)):
        raise MessageError(f"{what}: not bytes")
    if len(raw) > MAX_JSON:
        raise MessageError(f"{what}: JSON part of {len(raw)} bytes is too large")
    try:
        obj = json.loads(bytes(raw) if not isinstance(raw, str) else raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageError(f"{what}: bad JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise MessageError(f"{what}: JSON is a {type(obj).__name__}, not an object")
    return obj


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def _float(v, what: str, finite: bool = True, optional: bool = True) -> float | None:
    """A JSON number as float; None stays None when ``optional``; NaN/inf refused when ``finite``."""
    if v is None and optional:
        return None
    if not _is_number(v):
        raise MessageError(f"{what} must be a number, not {type(v).__name__}")
    try:
        f = float(v)
    except OverflowError:  # an integer beyond any float
        raise MessageError(f"{what} is out of range") from None
    if finite and not math.isfinite(f):
        raise MessageError(f"{what} must be finite, not {f}")
    return f


def _int(v, what: str, lo: int | None = None, hi: int | None = None, optional: bool = True) -> int | None:
    """A JSON integer (an integral float is accepted) within [lo, hi]."""
    if v is None and optional:
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not isinstance(v, numbers.Integral) or isinstance(v, (bool, np.bool_)):
        raise MessageError(f"{what} must be an integer, not {type(v).__name__}")
    i = int(v)
    if (lo is not None and i < lo) or (hi is not None and i > hi):
        raise MessageError(f"{what}={i} outside [{lo}, {hi}]")
    return i


def _bool(v, what: str, optional: bool = True) -> bool | None:
    if v is None and optional:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, numbers.Integral) and int(v) in (0, 1):
        return bool(v)
    raise MessageError(f"{what} must be true or false, not {v!r}")


def _str(v, what: str, choices=None, optional: bool = True, max_len: int = 256) -> str | None:
    if v is None and optional:
        return None
    if not isinstance(v, str) or len(v) > max_len:
        raise MessageError(f"{what} must be a string (at most {max_len} characters)")
    if choices is not None and v not in choices:
        raise MessageError(f"{what}={v!r} is not one of {sorted(choices)}")
    return v


def _dump(obj: dict) -> bytes:
    return json.dumps(obj, default=float).encode()


def num(value) -> float:
    """A row value as float; None, strings and missing values become NaN."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _known_and_extra(cls, d: dict) -> tuple[dict, dict]:
    names = {f.name for f in fields(cls)} - {"extra"}
    return {k: v for k, v in d.items() if k in names}, {k: v for k, v in d.items() if k not in names}


# ---------------------------------------------------------------------- side link (TX -> RX)
SIDE_TOPIC = b"S"
END_TOPIC = b"E"


@dataclass
class SideMessage:
    """What the receiver needs of one frame besides its PHY symbols (TX -> RX, side link).

    Wire: ``[b"S", JSON meta, payload, reference, roi]``; the JSON meta holds every field
    below that is not None, plus ``extra``.

    Parameters
    ----------
    stream : int
        ``STREAM_LEARNED`` (0), ``STREAM_CLASSICAL`` (1) or ``STREAM_TEST`` (2).
    frame_id : int
        Frame number (uint32), the same as in the PHY frame header; (stream, frame_id) joins
        the side message with its PHY frame.
    height, width : int
        ERP frame size in pixels (1..4096, 1..8192).
    payload : bytes
        Empty on the live link: the side information (learned: :class:`core.codec.sideinfo.SideInfo`
        bytes; classical: the grant) travels on the air in the frame's digital part
        (:mod:`core.link.sidepart`). The field stays so that the message format is unchanged.
    reference : np.ndarray or None
        The original frame, (height, width, 3) uint8, for the receiver's quality metrics.
        Required on the learned stream.
    roi_grid : np.ndarray or None
        Boolean (ceil(height/16), ceil(width/16)) grid of the viewport ROI (sent as packed bits).
    t_sent_ns : int or None
        Send time, ns since the epoch (``time.time_ns()``); the RX derives the air time.
    tx_session : int or None
        Random uint32 drawn at TX start: a new value tells the RX the TX restarted (frame ids
        start over).
    viewport : dict or None
        The pose the frame was encoded for: ``yaw``, ``pitch``, ``fov`` in degrees (finite),
        optionally ``out_hw`` (viewport picture size, pixels).
    cqi_used : float or None
        CQI (dB) the TX encoded for (learned: the model's ν; classical: after the OLLA back-off).
    cbr : float or None
        Achieved channel bandwidth ratio, channel uses / (3·H·W), side information included.
    budget : float or None
        The CBR budget of the frame.
    n_symbols : int or None
        Complex channel symbols in the PHY frame.
    encode_ms : float or None
        Encoder time, milliseconds.
    lam, eta_scale : float or None
        Learned: SQI λ and the bandwidth scale η the rate controller chose.
    roi : bool or None
        Learned: viewport ROI transmission on.
    edit_steps : int or None
        Learned: NTSCC++ online editing steps T.
    codec : str or None
        Classical: source codec name.
    mcs : int or None
        Classical: 5G NR MCS index.
    qp : int, float or None
        Classical: the codec's quantiser (or quality) parameter.
    olla_margin_db : float or None
        Classical: outer-loop link adaptation back-off, dB.
    extra : dict
        Further JSON keys, carried unchanged (newer senders may add some).
    """

    stream: int
    frame_id: int
    height: int
    width: int
    payload: bytes = b""
    reference: np.ndarray | None = None
    roi_grid: np.ndarray | None = None
    t_sent_ns: int | None = None
    tx_session: int | None = None
    viewport: dict | None = None
    cqi_used: float | None = None
    cbr: float | None = None
    budget: float | None = None
    n_symbols: int | None = None
    encode_ms: float | None = None
    lam: float | None = None
    eta_scale: float | None = None
    roi: bool | None = None
    edit_steps: int | None = None
    codec: str | None = None
    mcs: int | None = None
    qp: float | None = None
    olla_margin_db: float | None = None
    extra: dict = field(default_factory=dict)

    _BINARY = ("payload", "reference", "roi_grid")

    def __post_init__(self) -> None:
        self.stream = _int(self.stream, "stream", 0, 255, optional=False)
        self.frame_id = _int(self.frame_id, "frame_id", 0, 0xFFFFFFFF, optional=False)
        self.height = _int(self.height, "height", 1, MAX_HEIGHT, optional=False)
        self.width = _int(self.width, "width", 1, MAX_WIDTH, optional=False)
        self.t_sent_ns = _int(self.t_sent_ns, "t_sent_ns", 0, 2**64 - 1)
        self.tx_session = _int(self.tx_session, "tx_session", 0, 2**64 - 1)
        for key in ("cqi_used", "cbr", "budget", "encode_ms", "lam", "eta_scale", "olla_margin_db"):
            setattr(self, key, _float(getattr(self, key), key, finite=False))
        for key in ("n_symbols", "edit_steps", "mcs"):
            setattr(self, key, _int(getattr(self, key), key, 0, 2**40))
        if self.qp is not None:
            _float(self.qp, "qp", finite=False)  # QP (int) or a codec's quality (number): kept as sent
        self.roi = _bool(self.roi, "roi")
        self.codec = _str(self.codec, "codec")
        if self.viewport is not None:
            if not isinstance(self.viewport, dict):
                raise MessageError("viewport must be an object")
            vp = dict(self.viewport)
            for key in ("yaw", "pitch", "fov"):
                vp[key] = _float(vp.get(key), f"viewport.{key}", optional=False)
            if "out_hw" in vp:
                hw = vp["out_hw"]
                if not (isinstance(hw, (list, tuple)) and len(hw) == 2):
                    raise MessageError("viewport.out_hw must be [height, width]")
                vp["out_hw"] = [_int(x, "viewport.out_hw", 1, MAX_WIDTH, optional=False) for x in hw]
            self.viewport = vp
        if not isinstance(self.extra, dict):
            raise MessageError("extra must be a dict")
        self.payload = bytes(self.payload)
        shape = (self.height, self.width, 3)
        if self.reference is not None:
            ref = np.asarray(self.reference)
            if ref.shape != shape or ref.dtype != np.uint8:
                raise MessageError(f"reference frame {ref.shape} {ref.dtype} is not {shape} uint8")
            self.reference = ref
        elif self.stream == STREAM_LEARNED:
            raise MessageError("a learned side message carries the reference frame")
        if self.roi_grid is not None:
            grid = np.asarray(self.roi_grid)
            if grid.shape != self.grid_shape:
                raise MessageError(f"ROI grid {grid.shape} is not {self.grid_shape}")
            self.roi_grid = grid.astype(bool)

    @property
    def grid_shape(self) -> tuple[int, int]:
        """Shape of the ROI grid: one cell per 16 x 16 pixels."""
        return math.ceil(self.height / ROI_STRIDE), math.ceil(self.width / ROI_STRIDE)

    @property
    def key(self) -> tuple[int, int]:
        """(stream, frame_id): what joins it with its PHY frame."""
        return self.stream, self.frame_id

    @property
    def meta(self) -> dict:
        """The JSON part: every set field (binary parts excluded) plus ``extra``."""
        out = {f.name: getattr(self, f.name) for f in fields(self)
               if f.name not in self._BINARY and f.name != "extra" and getattr(self, f.name) is not None}
        return {**out, **self.extra}

    @classmethod
    def from_meta(cls, meta: dict, payload: bytes = b"", reference=None, roi_grid=None) -> "SideMessage":
        """Build from a JSON-style dict (known keys become fields, the rest ``extra``)."""
        known, extra = _known_and_extra(cls, meta)
        for key in cls._BINARY:
            known.pop(key, None)
        missing = {"stream", "frame_id", "height", "width"} - known.keys()
        if missing:
            raise MessageError(f"side message lacks {sorted(missing)}")
        try:
            return cls(**known, payload=payload, reference=reference, roi_grid=roi_grid, extra=extra)
        except TypeError as exc:
            raise MessageError(f"side message: {exc}") from None

    def to_parts(self) -> list[bytes]:
        ref = b"" if self.reference is None else np.ascontiguousarray(self.reference).tobytes()
        roi = b"" if self.roi_grid is None else np.packbits(self.roi_grid).tobytes()
        return [SIDE_TOPIC, _dump(self.meta), self.payload, ref, roi]

    @classmethod
    def parse(cls, parts: list[bytes]) -> "SideMessage":
        if len(parts) != 5 or bytes(parts[0]) != SIDE_TOPIC:
            raise MessageError(f"not a side message ({len(parts)} parts)")
        meta = _json_object(parts[1], "side message")
        # the claimed size is checked before any buffer is interpreted
        h = _int(meta.get("height"), "height", 1, MAX_HEIGHT, optional=False)
        w = _int(meta.get("width"), "width", 1, MAX_WIDTH, optional=False)
        reference = roi_grid = None
        if parts[3]:
            if len(parts[3]) != h * w * 3:
                raise MessageError(f"reference of {len(parts[3])} bytes is not {h}x{w}x3")
            reference = np.frombuffer(parts[3], np.uint8).reshape(h, w, 3)
        if parts[4]:
            gh, gw = math.ceil(h / ROI_STRIDE), math.ceil(w / ROI_STRIDE)
            if len(parts[4]) != (gh * gw + 7) // 8:
                raise MessageError(f"ROI bits of {len(parts[4])} bytes do not fit a {gh}x{gw} grid")
            bits = np.unpackbits(np.frombuffer(parts[4], np.uint8))[:gh * gw]
            roi_grid = bits.reshape(gh, gw).astype(bool)
        return cls.from_meta(meta, bytes(parts[2]), reference, roi_grid)


@dataclass
class EndOfStream:
    """The TX's last side message: it sent everything (TX -> RX, side link).

    Parameters
    ----------
    frames : int
        Frames the TX sent (per stream).
    phy_dropped : int
        PHY frames the TX could not hand to the flowgraph (it was down or saturated).
    classical_skipped : int
        Frames the asynchronous classical chain skipped while busy.
    """

    frames: int
    phy_dropped: int = 0
    classical_skipped: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            setattr(self, f.name, _int(getattr(self, f.name), f.name, 0, 2**63, optional=False))

    def to_parts(self) -> list[bytes]:
        return [END_TOPIC, _dump({f.name: getattr(self, f.name) for f in fields(self)})]

    @classmethod
    def parse(cls, parts: list[bytes]) -> "EndOfStream":
        if len(parts) != 2 or bytes(parts[0]) != END_TOPIC:
            raise MessageError(f"not an end-of-stream message ({len(parts)} parts)")
        d = _json_object(parts[1], "end of stream")
        return cls(frames=d.get("frames", 0), phy_dropped=d.get("phy_dropped", 0),
                   classical_skipped=d.get("classical_skipped", 0))


def parse_side(parts: list[bytes]) -> SideMessage | EndOfStream:
    """Either message of the side link; raises :class:`MessageError`."""
    if not parts:
        raise MessageError("empty side message")
    topic = bytes(parts[0])
    if topic == END_TOPIC:
        return EndOfStream.parse(parts)
    return SideMessage.parse(parts)


# ---------------------------------------------------------------------- feedback (RX -> TX)
ACK_STATUSES = ("ok", "lost", "cliff", "side_failed")


@dataclass
class Feedback:
    """Channel quality and one frame's acknowledgement (RX -> TX, feedback PUB).

    Parameters
    ----------
    cqi_db : float
        The RX's smoothed pilot SNR estimate (dB); NaN before its first PHY frame.
    ack : int or None
        Frame id this message acknowledges.
    stream : str or None
        Stream of that frame: ``"learned"``, ``"classical"`` or ``"test"``.
    status : str or None
        ``"ok"`` (decoded), ``"lost"`` (no PHY frame in time) or ``"cliff"`` (classical:
        LDPC failed).
    lost, decoded : int or None
        The RX's running counts of lost and decoded frames.
    extra : dict
        Further JSON keys, carried unchanged.
    """

    cqi_db: float = float("nan")
    ack: int | None = None
    stream: str | None = None
    status: str | None = None
    lost: int | None = None
    decoded: int | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cqi_db = _float(self.cqi_db, "cqi_db", finite=False, optional=False)
        if math.isinf(self.cqi_db):
            raise MessageError("cqi_db must be finite or NaN")
        self.ack = _int(self.ack, "ack", 0, 0xFFFFFFFF)
        self.stream = _str(self.stream, "stream", STREAM_NAMES.values())
        self.status = _str(self.status, "status", ACK_STATUSES)
        self.lost = _int(self.lost, "lost", 0)
        self.decoded = _int(self.decoded, "decoded", 0)

    def to_bytes(self) -> bytes:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return _dump({k: v for k, v in d.items() if v is not None or k == "cqi_db"} | self.extra)

    @classmethod
    def parse(cls, raw: bytes) -> "Feedback":
        known, extra = _known_and_extra(cls, _json_object(raw, "feedback"))
        known.setdefault("cqi_db", float("nan"))
        return cls(**known, extra=extra)


# ---------------------------------------------------------------------- control (viewer -> TX)
@dataclass
class Control:
    """One viewer command to the transmitter (viewer -> TX, control PUSH); every field optional.

    The TX clamps values to its ranges (pose via ``Viewport.clamped``, CBR 0.002..0.5,
    λ 0.013..0.72, editing steps 0..100); the parse only refuses what is not a value.

    Parameters
    ----------
    yaw, pitch, fov : float or None
        Head pose in degrees (yaw + right, pitch + up, field of view); a pose needs ``yaw``.
    roi : bool or None
        Viewport ROI transmission on / off.
    cbr : float or None
        Per-frame CBR budget, channel uses / (3·H·W).
    lam : float or None
        SQI λ of the compatible model.
    edit_steps : int or None
        NTSCC++ online editing steps T.
    pause : bool or None
        Pause (True) or resume (False) the stream.
    step : int or None
        While paused: send this many more frames.
    extra : dict
        Further JSON keys, carried unchanged (the TX ignores them).
    """

    yaw: float | None = None
    pitch: float | None = None
    fov: float | None = None
    roi: bool | None = None
    cbr: float | None = None
    lam: float | None = None
    edit_steps: int | None = None
    pause: bool | None = None
    step: int | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("yaw", "pitch", "fov", "cbr", "lam"):
            setattr(self, key, _float(getattr(self, key), key))
        for key in ("edit_steps", "step"):
            setattr(self, key, _int(getattr(self, key), key, -2**31, 2**31))
        for key in ("roi", "pause"):
            setattr(self, key, _bool(getattr(self, key), key))
        if (self.pitch is not None or self.fov is not None) and self.yaw is None:
            raise MessageError("a pose needs yaw")

    def as_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {k: v for k, v in d.items() if v is not None} | self.extra

    def to_bytes(self) -> bytes:
        return _dump(self.as_dict())

    @classmethod
    def from_dict(cls, d: dict) -> "Control":
        if not isinstance(d, dict):
            raise MessageError("control message must be an object")
        known, extra = _known_and_extra(cls, d)
        for key, value in known.items():
            if value is None:
                raise MessageError(f"{key} is null")
        return cls(**known, extra=extra)

    @classmethod
    def parse(cls, raw: bytes) -> "Control":
        return cls.from_dict(_json_object(raw, "control"))


# ---------------------------------------------------------------------- flowgraph control (REQ/REP)
FLOWGRAPH_COMMANDS = ("set", "ping", "get", "stats", "status", "stop")


@dataclass
class FlowgraphRequest:
    """A request on the flowgraph's control socket (any -> flowgraph, REQ/REP).

    Wire: ``{"cmd": cmd, **settings}``; a ``"set"`` may leave out ``cmd``.

    Parameters
    ----------
    cmd : str
        ``"set"`` (apply ``settings``), ``"ping"``, ``"get"`` / ``"stats"`` / ``"status"``
        (settings and counters), ``"stop"`` (stop the flowgraph cleanly).
    settings : dict
        For ``"set"``: channel settings, e.g. ``snr_db`` (dB), ``channel`` (``awgn`` /
        ``rayleigh`` / ``rician`` / ``trace`` / ...), ``doppler_hz`` (Hz), ``cfo_hz`` (Hz),
        ``timing_offset`` (samples), ``k_factor`` (linear), ``sco_ppm`` (ppm),
        ``multipath`` (bool), ``trace`` (path). Values are finite numbers, booleans or
        strings; which names apply is the flowgraph's business (the GRC twin calls its
        ``set_<name>`` variable setters).
    """

    cmd: str = "set"
    settings: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cmd = _str(self.cmd, "cmd", FLOWGRAPH_COMMANDS, optional=False)
        if not isinstance(self.settings, dict):
            raise MessageError("settings must be an object")
        if self.settings and self.cmd != "set":
            raise MessageError(f"'{self.cmd}' takes no settings")
        clean = {}
        for key, value in self.settings.items():
            if not (isinstance(key, str) and key.isidentifier()):
                raise MessageError(f"setting name {key!r} is not an identifier")
            if isinstance(value, (bool, np.bool_)):
                clean[key] = bool(value)
            elif _is_number(value):
                clean[key] = _float(value, key) if not isinstance(value, numbers.Integral) else int(value)
            elif isinstance(value, str):
                clean[key] = _str(value, key, max_len=4096)
            else:
                raise MessageError(f"setting {key} must be a number, boolean or string")
        self.settings = clean

    def as_dict(self) -> dict:
        return dict(self.settings) if self.cmd == "set" else {"cmd": self.cmd}

    def to_bytes(self) -> bytes:
        return _dump(self.as_dict())

    @classmethod
    def from_dict(cls, d: dict) -> "FlowgraphRequest":
        if not isinstance(d, dict):
            raise MessageError("flowgraph request must be an object")
        d = dict(d)
        return cls(cmd=d.pop("cmd", "set"), settings=d)

    @classmethod
    def parse(cls, raw: bytes) -> "FlowgraphRequest":
        return cls.from_dict(_json_object(raw, "flowgraph request"))


@dataclass
class FlowgraphReply:
    """The flowgraph's answer to a :class:`FlowgraphRequest` (flowgraph -> requester, REP).

    Wire: ``{"ok": ok, "error": error (on failure), **body}``.

    Parameters
    ----------
    ok : bool
        The request was applied.
    error : str or None
        What went wrong, for the user.
    body : dict
        The rest: ``state`` (channel settings after a set / get), for ``get`` also ``tx`` /
        ``rx`` counters, ``recent`` frames and ``ports``.
    """

    ok: bool
    error: str | None = None
    body: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ok = _bool(self.ok, "ok", optional=False)
        self.error = _str(self.error, "error", max_len=1 << 16)
        if not isinstance(self.body, dict):
            raise MessageError("reply body must be an object")

    def as_dict(self) -> dict:
        out = {"ok": self.ok, **self.body}
        if self.error is not None:
            out["error"] = self.error
        return out

    def to_bytes(self) -> bytes:
        return _dump(self.as_dict())

    @classmethod
    def failure(cls, exc: BaseException | str) -> "FlowgraphReply":
        text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        return cls(False, text)

    @classmethod
    def parse(cls, raw: bytes) -> "FlowgraphReply":
        d = _json_object(raw, "flowgraph reply")
        if "ok" not in d:
            raise MessageError("flowgraph reply lacks 'ok'")
        ok, error = d.pop("ok"), d.pop("error", None)
        return cls(ok, error, d)


# ---------------------------------------------------------------------- metrics (RX -> viewer)
METRICS_TOPIC = b"M"
MAX_SIDE = 8192  # refuse absurd image shapes before allocating

#: The metrics row, once: (name, kind, unit and meaning). ``kind`` is ``int``, ``num`` (float,
#: NaN = not measured), ``str`` or ``bool``; every value may also be null. The RX writes these
#: columns, in this order, to metrics.csv and publishes them in every metrics message.
METRICS_SCHEMA: tuple[tuple[str, str, str], ...] = (
    ("frame_id", "int", "frame number (uint32)"),
    ("stream", "str", "'learned' or 'classical'"),
    ("status", "str", "'ok', 'lost' (no PHY frame in time: the previous picture), 'cliff' (LDPC failed) "
                      "or 'side_failed' (side part failed its CRC: the previous picture)"),
    ("psnr", "num", "ERP frame PSNR, dB"),
    ("ws_psnr", "num", "WS-PSNR (sphere-weighted), dB"),
    ("viewport_psnr", "num", "PSNR of the rendered viewport, dB"),
    ("roi_psnr", "num", "PSNR inside the ROI, dB"),
    ("cbr", "num", "channel bandwidth ratio, channel uses / (3·H·W)"),
    ("snr_true_db", "num", "SNR the channel emulator was set to, dB (NaN over a radio)"),
    ("cqi_db", "num", "pilot SNR estimate of the frame, dB"),
    ("cqi_used", "num", "CQI the TX encoded for, dB"),
    ("encode_ms", "num", "encoder time, ms"),
    ("air_ms", "num", "send to receive, decoding excluded, ms"),
    ("decode_ms", "num", "decoder time, ms"),
    ("lam", "num", "learned: SQI λ"),
    ("eta_scale", "num", "learned: bandwidth scale η"),
    ("roi", "bool", "learned: viewport ROI transmission on"),
    ("mcs", "int", "classical: 5G NR MCS index"),
    ("qp", "num", "classical: codec quantiser / quality parameter"),
    ("olla_margin_db", "num", "classical: link adaptation back-off, dB"),
    ("codec", "str", "classical: source codec"),
    ("yaw", "num", "viewport yaw, degrees"),
    ("pitch", "num", "viewport pitch, degrees"),
    ("fov", "num", "viewport field of view, degrees"),
    ("t_wall", "num", "RX wall clock at publication, s since the epoch"),
    ("policy", "str", "classical: the live link policy, e.g. 'no HARQ, frame-error target 1 % (OLLA)'"),
    ("viewport_msssim", "num", "MS-SSIM of the rendered viewport (every --msssim-every frames), 0-1"),
    ("tx_session", "int", "TX process session id (changes when a supervisor restarts the TX)"),
    ("wait_ms", "num", "RX: side message in -> both parts in, ms"),
    ("metrics_ms", "num", "RX: metrics stage (in its worker thread), ms"),
    ("side_failed", "int", "the frame's digital side part failed its CRC: the stated fallback was shown"),
)
#: metrics.csv columns (and the order of a row)
METRIC_FIELDS: tuple[str, ...] = tuple(name for name, _, _ in METRICS_SCHEMA)
#: row keys read as numbers
NUMERIC_METRICS: tuple[str, ...] = tuple(n for n, kind, _ in METRICS_SCHEMA if kind in ("num", "int"))
_KIND = {name: kind for name, kind, _ in METRICS_SCHEMA}


def _check_row(row: dict) -> dict:
    if not isinstance(row, dict):
        raise MessageError("metrics row is not an object")
    for key in ("frame_id", "stream", "status"):
        if key not in row:
            raise MessageError(f"metrics row lacks {key!r}")
    _int(row["frame_id"], "frame_id", optional=False)
    for key, value in row.items():
        kind = _KIND.get(key)
        if value is None or kind is None:
            continue  # unknown keys ride along (a newer RX may add some)
        if kind == "num" or kind == "int":
            _float(value, key, finite=False)
        elif kind == "str":
            _str(value, key)
        elif kind == "bool":
            _bool(value, key)
    return row


def _image(buf: bytes, shape) -> np.ndarray | None:
    if not buf:
        return None
    if (not isinstance(shape, list) or len(shape) != 3 or shape[2] != 3
            or not all(isinstance(s, int) and not isinstance(s, bool) and 0 < s <= MAX_SIDE for s in shape)):
        raise MessageError(f"bad image shape {shape!r}")
    if len(buf) != shape[0] * shape[1] * 3:
        raise MessageError(f"image of {len(buf)} bytes does not match shape {shape}")
    return np.frombuffer(buf, np.uint8).reshape(shape)


@dataclass
class MetricsMessage:
    """One decoded frame for the viewer (RX -> viewer, metrics PUB; the replay sends it too).

    Wire: ``[b"M", JSON row, JSON shape, image, symbols, subcarrier SNR (, reference)]``.

    Parameters
    ----------
    row : dict
        The metrics row (:data:`METRICS_SCHEMA`; unknown keys ride along, missing ones read
        as NaN / None).
    image : np.ndarray or None
        The reconstruction, (H, W, 3) uint8 ERP; None when the frame gave no picture.
    symbols : np.ndarray
        Equalised symbols (complex64, at most 512) for the constellation plot.
    subcarrier_snr_db : np.ndarray
        Per-subcarrier SNR of the frame (float32, dB).
    reference : np.ndarray or None
        The original ERP frame (same shape as ``image``) when the RX sends it; otherwise the
        viewer reads the original itself (:mod:`gui.reference`).
    t_recv : float
        ``time.monotonic()`` at arrival (set by the parse, not sent).
    extra : dict
        Viewer-side annotations (not sent).
    """

    row: dict
    image: np.ndarray | None = None
    symbols: np.ndarray = field(default_factory=lambda: np.zeros(0, np.complex64))
    subcarrier_snr_db: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    reference: np.ndarray | None = None
    t_recv: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def stream(self) -> str:
        return str(self.row.get("stream", "learned"))

    @property
    def frame_id(self) -> int:
        try:
            return int(self.row.get("frame_id", -1))
        except (TypeError, ValueError):
            return -1

    @property
    def status(self) -> str:
        return str(self.row.get("status", "ok"))

    def value(self, key: str) -> float:
        """A row value as float (NaN when missing or not a number)."""
        return num(self.row.get(key))

    def to_parts(self) -> list[bytes]:
        _check_row(self.row)
        image = self.image
        sym = np.asarray(self.symbols, np.complex64).reshape(-1)[:MAX_CONSTELLATION]
        sc = np.asarray(self.subcarrier_snr_db, np.float32).reshape(-1)
        parts = [METRICS_TOPIC, _dump(self.row),
                 _dump(list(image.shape) if image is not None else []),
                 b"" if image is None else np.ascontiguousarray(image, np.uint8).tobytes(),
                 sym.tobytes(), sc.tobytes()]
        if self.reference is not None:
            parts.append(np.ascontiguousarray(self.reference, np.uint8).tobytes())
        return parts

    @classmethod
    def parse(cls, parts: list[bytes], t_recv: float = 0.0) -> "MetricsMessage":
        if len(parts) < 6 or len(parts) > 7 or bytes(parts[0]) != METRICS_TOPIC:
            raise MessageError(f"not a metrics message ({len(parts)} parts)")
        row = _check_row(_json_object(parts[1], "metrics row"))
        try:
            shape = json.loads(bytes(parts[2])) if parts[2] else []
        except (ValueError, UnicodeDecodeError) as exc:
            raise MessageError(f"bad JSON shape: {exc}") from None
        image = _image(parts[3], shape)
        if len(parts[4]) % 8 or len(parts[5]) % 4:
            raise MessageError("symbol / subcarrier buffers have a partial element")
        if len(parts[4]) > 8 * MAX_CONSTELLATION or len(parts[5]) > 4 * 65536:
            raise MessageError("symbol / subcarrier buffers are too large")
        symbols = np.frombuffer(parts[4], np.complex64)
        sc = np.frombuffer(parts[5], np.float32)
        reference = _image(parts[6], shape) if len(parts) > 6 and parts[6] else None
        return cls(row, image, symbols, sc, reference, t_recv)
