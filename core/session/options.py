"""The settings of a streaming session: ONE table, from which everything else derives.

Each row of :data:`OPTIONS` is one setting (name, default, help, type/choices, and which parts
of the session use it). From the table come

* the command-line options of ``ntscc-xr tx``, ``ntscc-xr rx`` and ``ntscc-xr demo`` (and
  ``python -m gui.viewer``): :func:`add_arguments` (each takes the rows tagged with it);
* :class:`SessionConfig`, the supervisor's configuration (the rows with ``session=True``), and
  :func:`config_values`, a parsed command line -> its SessionConfig fields;
* the command lines the supervisor (``tx.session.Session``) gives its child processes:
  :func:`to_argv` (``cfg -> argv`` for tx, rx or the flowgraph);
* the defaults and ranges of the viewer's live controls (rows tagged ``viewer``, ``span``);
* the check of bad input before any process starts: at parse time through each row's argparse
  ``type`` and, for a SessionConfig built in code, :func:`validate` (the same ``type``).

``uses`` tags: ``tx``, ``rx``, ``demo`` take the option on their command line; ``flowgraph``:
a session forwards it to the flowgraph, whose own parser is ``flowgraphs/options.py`` (same
flags); ``viewer``: a control of the viewer window starts at its default, within ``span``.

Why ``core/session/`` and not beside the flowgraph's ``flowgraphs/options.py`` or in
``core/link/``: the TX, the RX and the viewer all need the table and ``core/`` is the only
place all of them import from (``core/`` imports no ``tx/``, ``rx/`` or ``gui/``); and
``core/link/`` is the torch-free wire format that the flowgraph's Python imports too, while
this table validates content with ``core.media`` and takes defaults from ``core.classical``
and ``core.codec``. The supervisor that runs a session stays in ``tx/session.py``.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any, Callable

from core.classical.mcs import LIVE_FRAME_ERROR_TARGET
from core.codec import FAST_HELP
from core.link.endpoints import BASE_PORT, Endpoints

#: every ``uses`` tag; PARSED: the commands whose argparse options come from this table
PROCESSES = ("tx", "rx", "demo", "flowgraph", "viewer")
PARSED = ("tx", "rx", "demo")
LINK_GROUP = "link endpoints (ZeroMQ)"
_SAME = object()  # Option.session_default: the SessionConfig default is the command-line one


def _resolution(text: str) -> str:
    """``--resolution`` check (WxH, 2:1, multiples of 16), kept as the text the processes get."""
    from core.media.source import resolution_arg  # numpy + PIL: only once a value is checked
    return resolution_arg(text)


def _source(text: str) -> str:
    """``--source`` check: the content exists and is of a kind we read."""
    from core.media.source import source_arg
    return source_arg(text)


class SessionOptionError(ValueError):
    """A session setting that a process would refuse; one line, worded like argparse's."""


@dataclass(frozen=True)
class Option:
    """One row of the table; see the module docstring for ``uses``."""

    name: str                                # SessionConfig field; the flag is --name-with-dashes
    default: Any                             # the command-line default (every process alike)
    help: str
    uses: frozenset[str]
    type: Callable[[str], Any] | None = None  # argparse type=: parses AND validates, at parse time
    kind: str = "value"                      # value | switch (--x/--no-x) | flag (--x, store_true)
    choices: tuple[str, ...] | None = None
    flag: str | None = None                  # when the flag is not --name (--snr for snr_db)
    group: str | None = None                 # argparse group shown in --help
    session: bool = False                    # a SessionConfig field
    session_default: Any = _SAME             # SessionConfig's default, where it differs
    fallback: str | None = None              # None in a session: forward this other field instead
    forward_if: Callable[[Any], bool] | None = None  # forwarded to the children only when true
    span: tuple[float, float] | None = None  # the viewer control's range (not enforced on the CLI)

    @property
    def option_string(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def dest(self) -> str:
        """The argparse attribute: from the flag, as argparse names it (``snr`` for ``--snr``)."""
        return self.option_string[2:].replace("-", "_")

    @property
    def config_default(self) -> Any:
        return self.default if self.session_default is _SAME else self.session_default

    @property
    def annotation(self) -> Any:
        default = self.config_default
        if isinstance(default, Path):
            return Path
        if default is not None:
            return type(default)
        return (self.type if self.type in (int, float) else str) | None

    def argparse_kwargs(self) -> dict[str, Any]:
        if self.kind == "switch":
            return dict(action=argparse.BooleanOptionalAction, default=self.default, help=self.help)
        if self.kind == "flag":
            return dict(action="store_true", help=self.help)
        kw = dict(default=self.default, help=self.help)
        if self.type is not None:
            kw["type"] = self.type
        if self.choices is not None:
            kw["choices"] = list(self.choices)
        return kw

    def argv(self, value: Any) -> list[str]:
        """This option with ``value`` on a command line (None: left out, the process's default)."""
        if value is None:
            return []
        if self.kind == "switch":
            return [self.option_string if value else "--no-" + self.option_string[2:]]
        if self.kind == "flag":
            return [self.option_string] if value else []
        return [self.option_string, str(value)]


def _opt(name: str, default: Any, help: str, uses: str, **kw) -> Option:
    return Option(name, default, help, frozenset(uses.split()), **kw)


def _doppler_applies(cfg) -> bool:
    # Only rayleigh takes the session's Doppler, and 0 leaves the flowgraph's own default
    # (50 Hz): a demo at --channel rayleigh without --doppler has always faded at 50 Hz.
    return cfg.channel == "rayleigh" and bool(cfg.doppler_hz)


_ROWS: list[Option] = [
    # ---- the session (SessionConfig fields), in SessionConfig's historical order
    _opt("out", None, "run folder: metrics.csv, decoded viewports, logs and the demo report (default: a "
         "new runs/<kind>/<date-time>, kind = demo, viewer or rx; runs/<kind>/latest links to the newest)",
         "rx demo", session=True, session_default=Path("runs/demo")),
    _opt("frames", 60, "frames to send (0 = forever)", "tx demo", type=int, session=True),
    _opt("resolution", "512x256", "ERP resolution WxH (2:1, multiples of 16)", "tx demo",
         type=_resolution, session=True),
    _opt("source", None, "ERP video, image folder or panorama (default: shipped sample video)",
         "tx demo", type=_source, session=True),
    _opt("channel", "awgn", "simulated channel of the flowgraph", "demo flowgraph viewer",
         choices=("awgn", "rayleigh", "multipath", "trace"), session=True),
    _opt("snr_db", 10.0, "channel SNR in dB (mean SNR for fading)", "demo flowgraph viewer",
         flag="--snr", type=float, session=True, span=(-5.0, 30.0)),
    _opt("doppler_hz", 0.0, "Doppler (Hz) for --channel rayleigh (0: the flowgraph's default, 50 Hz)",
         "demo flowgraph viewer", flag="--doppler", type=float, session=True,
         forward_if=_doppler_applies, span=(0.0, 2000.0)),
    _opt("trace", None, "SNR trace CSV for --channel trace (default: shipped COST2100-like trace)",
         "demo flowgraph", session=True),
    _opt("cbr", 0.04, "per-frame CBR budget (channel uses / (3HW))", "tx demo viewer", type=float,
         session=True, span=(0.002, 0.5)),
    # the span is the λ range the shipped model was trained on
    _opt("lam", 0.18, "SQI λ of the compatible model", "tx demo viewer", type=float, session=True,
         span=(0.013, 0.72)),
    _opt("roi", True, "viewport ROI transmission", "tx demo viewer", kind="switch", session=True),
    _opt("edit_steps", 0, "NTSCC++ online editing steps T (0 = real time)", "tx demo viewer", type=int,
         session=True, span=(0, 100)),
    _opt("classical", True, "also stream the classical chain (codec + 5G LDPC) on the same link",
         "tx demo", kind="switch", session=True),
    _opt("classical_codec", "hevc", "classical source codec for the live chain (hevc: x265 ultrafast, vvc: "
         "vvenc faster; the QP comes from the live rate control, about one encode per frame)", "tx demo",
         session=True),
    _opt("classical_olla", True, "outer-loop link adaptation for the classical chain: a CQI back-off "
         "steered by the RX's acknowledgements to the frame BLER target", "tx demo", kind="switch",
         session=True),
    _opt("classical_bler_target", LIVE_FRAME_ERROR_TARGET, "frame error rate the classical chain's link "
         "adaptation (MCS choice and OLLA) aims at; there is no HARQ, so every frame error is a cliff "
         f"(default: {LIVE_FRAME_ERROR_TARGET})", "tx demo", type=float, session=True),
    _opt("fps", 0.0, "pace the stream (0 = as fast as it encodes)", "tx demo", type=float, session=True),
    _opt("device", "auto", "auto (CUDA if present) | cpu | cuda", "tx rx demo", session=True),
    _opt("base_port", BASE_PORT, "flowgraph in/out/control = base+0..2, side/feedback/metrics = "
         "base+10..12 (bound by the RX), viewer control = base+13 (bound by the TX)",
         "tx rx demo flowgraph", type=int, group=LINK_GROUP, session=True),
    _opt("trajectory", "scripted", "head motion when no viewer sends poses", "tx",
         choices=("scripted", "static"), session=True),
    # a session starts the TX at the channel's SNR, a lone TX at 10 dB
    _opt("cqi_init", 10.0, "CQI assumed before the first feedback", "tx", type=float, session=True,
         session_default=None, fallback="snr_db"),
    _opt("classical_mode", "sync", "sync: every frame through both chains (frame-aligned report); async: "
         "the classical chain encodes in a worker and skips frames while busy (live view)", "tx",
         choices=("sync", "async"), session=True),
    _opt("drop_rate", 0.0, "fault injection: probability of not sending a frame's PHY part (it decodes "
         "as lost)", "tx", type=float, session=True),
    # ---- per process, not set by a session
    _opt("threads", 1, "torch CPU threads (default 1: TX, RX and the flowgraph share the cores)", "tx rx",
         type=int),
    _opt("fast", True, FAST_HELP, "tx rx", kind="switch"),
    _opt("weights", None, "model weights (default: the shipped checkpoint)", "tx rx"),
    _opt("loss_timeout", 1.5, "seconds to wait for a PHY frame after its side info before decoding it "
         "as lost", "rx", type=float),
    _opt("idle_exit", 0.0, "exit after this many seconds without any input (0 = never)", "rx", type=float),
    _opt("exit_on_end", True, "exit once the TX's end-of-stream marker arrived and nothing is pending",
         "rx", kind="switch"),
    _opt("save_every", 10, "save a viewport contact image every N frames (0 = never)", "rx", type=int),
    _opt("classical_preload", True, "kept for compatibility: the LDPC tables are always loaded at "
         "start-up now, since every frame's side part is LDPC-coded", "rx", kind="switch"),
    _opt("metrics_append", False, "append to an existing metrics.csv instead of starting it over (for a "
         "receiver that a supervisor restarts: the rows before the restart stay)", "rx", kind="flag"),
    _opt("msssim_every", 5, "MS-SSIM of the rendered viewport every N frames per stream (0 = never); "
         "~0.1 s per 256x256 viewport on one CPU core, hence not every frame", "rx", type=int),
    _opt("fg_host", "127.0.0.1", "host running the flowgraph (connect)", "tx rx", group=LINK_GROUP),
    _opt("rx_host", "127.0.0.1", "host running the receiver (connect)", "tx rx", group=LINK_GROUP),
    _opt("tx_host", "127.0.0.1", "host running the transmitter (connect)", "tx rx", group=LINK_GROUP),
    _opt("bind_host", "127.0.0.1", "interface this process binds its own sockets on (non-loopback "
         "needs --allow-remote)", "tx rx", group=LINK_GROUP),
    _opt("allow_remote", False, "allow binding non-loopback addresses (use with --curve-keys)", "tx rx",
         kind="flag", group=LINK_GROUP),
    _opt("curve_keys", None, "folder made by 'ntscc-xr keys': CURVE-authenticate every socket", "tx rx",
         group=LINK_GROUP),
    # ---- the demo command itself
    _opt("headless", False, "no window: run and write the report", "demo", kind="flag"),
    _opt("timeout", 1800, "give up after this many seconds", "demo", type=float),
]

#: name -> row, in table order (the order of --help and of SessionConfig's fields)
OPTIONS: dict[str, Option] = {o.name: o for o in _ROWS}


def options_for(process: str) -> list[Option]:
    """The rows tagged ``process`` (one of :data:`PROCESSES`), in table order."""
    if process not in PROCESSES:
        raise ValueError(f"unknown process {process!r}; one of {PROCESSES}")
    return [o for o in OPTIONS.values() if process in o.uses]


def add_arguments(parser: argparse.ArgumentParser, process: str) -> None:
    """Add the command-line options of ``process`` (tx, rx or demo) to ``parser``."""
    if process not in PARSED:
        raise ValueError(f"{process!r} has no command line from this table; one of {PARSED}")
    groups: dict[str, Any] = {}
    for o in options_for(process):
        if o.group and o.group not in groups:
            groups[o.group] = parser.add_argument_group(o.group)
        target = groups[o.group] if o.group else parser
        target.add_argument(o.option_string, dest=o.dest, **o.argparse_kwargs())


class _SessionConfigBase:
    @property
    def endpoints(self) -> Endpoints:
        return Endpoints.from_base(self.base_port)


def _config_fields() -> list[tuple[str, Any, Any]]:
    rows = [(o.name, o.annotation, field(default=o.config_default)) for o in OPTIONS.values() if o.session]
    # Session settings that are no tx/rx/demo option, hence no row: the children's log level
    # (core.cli's --log-level of every subcommand, handed down in $NTSCC_LOG_LEVEL; None: this
    # process's) and raw flowgraph options (flowgraphs/options.py) appended to its command line.
    return rows + [("log_level", str | None, field(default=None)),
                   ("extra_fg_args", list[str], field(default_factory=list))]


SessionConfig = make_dataclass("SessionConfig", _config_fields(), bases=(_SessionConfigBase,))
SessionConfig.__module__ = __name__  # make_dataclass would name another module (pickle, repr)
SessionConfig.__doc__ = """One streaming session: a field per table row with ``session=True``
(same name and default), plus ``log_level`` and ``extra_fg_args``; ``endpoints`` from ``base_port``."""


def config_values(args: argparse.Namespace) -> dict[str, Any]:
    """The SessionConfig fields a parsed command line holds (``--snr`` -> ``snr_db``, ...)."""
    return {o.name: getattr(args, o.dest) for o in OPTIONS.values() if o.session and hasattr(args, o.dest)}


def _value(cfg, o: Option) -> Any:
    value = getattr(cfg, o.name)
    return getattr(cfg, o.fallback) if value is None and o.fallback else value


def to_argv(cfg, process: str) -> list[str]:
    """The options a session passes to its child ``process`` (tx, rx or flowgraph): every
    session field tagged with it, explicitly (None: left to the child's default)."""
    argv: list[str] = []
    for o in options_for(process):
        if o.session and (o.forward_if is None or o.forward_if(cfg)):
            argv += o.argv(_value(cfg, o))
    return argv


def _check(o: Option, value: Any) -> None:
    try:
        o.type(str(value))
    except argparse.ArgumentTypeError as exc:
        raise SessionOptionError(f"argument {o.option_string}: {exc}") from None
    except (TypeError, ValueError):
        raise SessionOptionError(f"argument {o.option_string}: invalid {o.type.__name__} value: "
                                 f"{value!r}") from None


def validate(cfg) -> None:
    """Refuse a SessionConfig that a child would refuse at parse time (bad resolution, missing
    source, ...), with the same one line, before any process starts. Choices are left to the
    children: the flowgraph takes more channels (rician) than the demo's command line offers."""
    for o in OPTIONS.values():
        value = getattr(cfg, o.name, None) if o.session else None
        if value is not None and o.type is not None:
            _check(o, value)
