#!/usr/bin/python3
"""The ntscc-xr OFDM link: a GNU Radio 3.10 top block (run under Debian's ``/usr/bin/python3``).

::

    ZMQ PULL (TxFrame) -> OfdmFrameSource (OFDM modulation, idle fill)
        -> [fading_model -> FramePowerProbe]           rayleigh / rician only
        -> channels.channel_model (AWGN, CFO, multipath taps + fractional delay, clock offset)
        -> blocks.delay (integer timing offset)
        -> SchmidlCoxTrigger (stock blocks: S&C metric on every sample, tags rising edges)
        -> OfdmFrameSink (refine tagged detections, CFO, FFT, channel estimation, equaliser, CQI)
        -> ZMQ PUSH (RxFrame)

    --usrp:  OfdmFrameSource -> uhd.usrp_sink  ...air/cable...  uhd.usrp_source -> OfdmFrameSink

A REP control socket takes JSON (:class:`core.link.messages.FlowgraphRequest`): ``{"cmd": "ping"}``,
``{"cmd": "get"}`` (settings and counters), ``{"cmd": "stop"}``, and settings ``{"snr_db": 7, "channel": "rayleigh",
"doppler_hz": 100, "cfo_hz": 500, "timing_offset": 2.5, "k_factor": 4, "multipath": true}``
(with or without ``"cmd": "set"``). Changing between fading and non-fading channels rewires
the flowgraph (lock/unlock); the other settings apply in place, the SNR exactly from the next
frame on.

Start-up prints one line ``READY {"in": ..., "out": ..., "ctrl": ...}`` on stdout.
The ``.grc`` twin of this flowgraph is ``flowgraphs/ofdm_link.grc``.
"""
from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # BLAS threads fight with GNU Radio's threads on 2 cores

import argparse  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import zmq  # noqa: E402
from gnuradio import analog, blocks, channels, gr  # noqa: E402
from gnuradio import filter as gr_filter  # noqa: E402

from core.link.messages import FlowgraphReply, FlowgraphRequest  # noqa: E402
from core.logs import setup as setup_logging  # noqa: E402
from core.phy.ofdm import OfdmConfig  # noqa: E402
from flowgraphs.blocks import (  # noqa: E402
    FramePowerProbe,
    FrameRegistry,
    OfdmFrameSink,
    OfdmFrameSource,
    SchmidlCoxTrigger,
)
from flowgraphs.channel import DEFAULT_TRACE, ChannelState, SnrTrace  # noqa: E402
from flowgraphs.options import add_flowgraph_arguments  # noqa: E402

NOISE_VOLTAGE = 1.0  # fixed unit-variance noise; the SNR is set by the TX frame amplitude
BUFFER_ITEMS = 1 << 16
#: The receiver processes a whole frame at once; a buffer that holds a large frame in front of
#: it lets the source and the channel run ahead meanwhile (TX and RX overlap on two cores).
RX_BUFFER_ITEMS = 1 << 20


def _big_buffer(block, items: int = BUFFER_ITEMS) -> None:
    """Larger output buffer (fewer, bigger work calls), without the INFO log line."""
    try:
        block.set_log_level("warn")
    except Exception:  # noqa: BLE001 - older bindings: keep the log line
        pass
    block.set_min_output_buffer(items)


class UsrpNotFound(RuntimeError):
    """No USRP answered for the given device arguments."""


def _bind(ctx: zmq.Context, kind: int, host: str, port: int, allow_remote: bool, keys) -> tuple:
    """Bound socket and its port (port 0: a free one). Loopback only unless ``allow_remote``;
    with CURVE keys the socket authenticates its clients (core.link.security)."""
    from core.link.security import bind as secure_bind
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    if kind == zmq.PUSH:
        sock.setsockopt(zmq.SNDHWM, 64)
    if kind == zmq.PULL:
        sock.setsockopt(zmq.RCVHWM, 16)  # back-pressure to the sender, bounded memory
    secure_bind(sock, f"tcp://{host}:{port if port else '*'}", allow_remote, keys)
    bound = int(sock.getsockopt(zmq.LAST_ENDPOINT).decode().rsplit(":", 1)[1])
    return sock, bound


class LeanChannel(gr.hier_block2):
    """The AWGN/CFO/multipath part of ``channels.channel_model`` from the same stock blocks,
    without its sample-clock resampler (``mmse_resampler_cc``), which costs half of
    channel_model's CPU at epsilon = 1: ``fir_filter_ccc`` (taps) -> ``rotator_cc`` (CFO) ->
    ``add_cc`` with ``fastnoise_source_c``. Same setters as channel_model (the clock offset is
    not available: use ``--channel-impl channel_model`` with ``--sco-ppm``).
    """

    def __init__(self, noise_voltage: float, frequency_offset: float, taps, seed: int):
        gr.hier_block2.__init__(self, "ntscc_lean_channel",
                                gr.io_signature(1, 1, gr.sizeof_gr_complex),
                                gr.io_signature(1, 1, gr.sizeof_gr_complex))
        self.fir = gr_filter.fir_filter_ccc(1, list(taps))
        self.rot = blocks.rotator_cc(2 * np.pi * frequency_offset)
        self.noise = analog.fastnoise_source_c(analog.GR_GAUSSIAN, noise_voltage, seed, 8192)
        self.add = blocks.add_cc()
        for b in (self.fir, self.rot, self.noise, self.add):
            _big_buffer(b)
        self.connect(self, self.fir, self.rot, (self.add, 0))
        self.connect(self.noise, (self.add, 1))
        self.connect(self.add, self)

    def set_taps(self, taps) -> None:
        self.fir.set_taps(list(taps))

    def set_frequency_offset(self, f: float) -> None:
        self.rot.set_phase_inc(2 * np.pi * f)

    def set_noise_voltage(self, v: float) -> None:
        self.noise.set_amplitude(v)

    def set_timing_offset(self, epsilon: float) -> None:
        if abs(epsilon - 1.0) > 1e-12:
            raise ValueError("the lean channel has no sample-clock offset: start the flowgraph "
                             "with --channel-impl channel_model to use --sco-ppm")


class OfdmLink(gr.top_block):
    """The OFDM link flowgraph.

    Parameters
    ----------
    opts : argparse.Namespace
        Options of :func:`flowgraphs.options.add_flowgraph_arguments`.
    ctx : zmq.Context
    """

    def __init__(self, opts: argparse.Namespace, ctx: zmq.Context | None = None):
        gr.top_block.__init__(self, "ntscc-xr OFDM link", catch_exceptions=True)
        self.opts = opts
        self.cfg = OfdmConfig()
        self.ctx = ctx or zmq.Context.instance()
        keys = None
        if opts.curve_keys:
            from core.link.security import CurveKeys
            keys = CurveKeys(Path(opts.curve_keys))
        base = opts.base_port
        p = (lambda off: 0 if base == 0 else base + off)
        self.in_sock, self.in_port = _bind(self.ctx, zmq.PULL, opts.host, p(0), opts.allow_remote, keys)
        self.out_sock, self.out_port = _bind(self.ctx, zmq.PUSH, opts.host, p(1), opts.allow_remote, keys)
        self.ctrl_sock, self.ctrl_port = _bind(self.ctx, zmq.REP, opts.host, p(2), opts.allow_remote, keys)

        channel = opts.channel
        self.state = ChannelState(channel=channel, snr_db=opts.snr, cfo_hz=opts.cfo,
                                  timing_offset=opts.timing_offset, doppler_hz=opts.doppler,
                                  k_factor=opts.k_factor, sco_ppm=opts.sco_ppm,
                                  samp_rate=opts.rate, multipath=opts.multipath,
                                  trace=str(opts.trace or DEFAULT_TRACE))
        self.trace = SnrTrace(self.state.trace) if channel == "trace" else None
        self.registry = FrameRegistry()
        self.usrp = bool(opts.usrp)
        # tail_pad: a few zeros after each frame push its last samples through the channel
        # model's interpolator at once instead of with the next idle chunk
        self.src = OfdmFrameSource(self.in_sock, self.cfg, self.frame_gain, self.registry,
                                   realtime=self.usrp, idle_chunk=2048, poll_ms=20.0,
                                   tail_pad=0 if self.usrp else 64 + self.state.integer_delay())
        triggered = getattr(opts, "detector", "gr") == "gr"
        self.sink = OfdmFrameSink(self.out_sock, self.cfg, self.registry,
                                  equaliser=opts.equaliser, simulated=not self.usrp,
                                  triggered=triggered)
        # frame detection in C++ (stock blocks) in front of the receiver; None: Python search
        self.trigger = None
        self.rx_in = self.sink
        if triggered:
            self._new_trigger()
        _big_buffer(self.src)
        if self.usrp:
            self._build_usrp(opts)
        else:
            self._build_sim(opts)

    # ------------------------------------------------------------------ per-frame SNR
    def frame_gain(self, stream: int, frame_id: int) -> tuple[float, float]:
        """TX amplitude and nominal SNR (dB) of one frame."""
        if self.usrp:
            return float(self.opts.tx_amplitude), float("nan")
        st = self.state
        snr = st.snr_db
        if st.channel == "trace":
            if self.trace is None or str(self.trace.path) != st.trace:
                self.trace = SnrTrace(st.trace)
            snr = self.trace.snr_for(frame_id, st.snr_db)
        # per-RE SNR = amp^2 * N / (N_occ * noise) with unit-power bursts
        amp = np.sqrt(10 ** (snr / 10) * self.cfg.n_occupied / self.cfg.fft_size) * NOISE_VOLTAGE
        return float(amp), float(snr)

    # ------------------------------------------------------------------ simulated channel
    def _build_sim(self, opts) -> None:
        st = self.state
        self.fading = None
        self.probe = FramePowerProbe(self.registry)
        self.chan = self._make_chan()
        self.delay = blocks.delay(gr.sizeof_gr_complex, st.integer_delay())
        _big_buffer(self.delay, RX_BUFFER_ITEMS)
        self._wire_sim()

    def _make_chan(self):
        """The AWGN/CFO/multipath/clock part. ``--channel-impl auto`` (default): the lean chain
        while there is no sample-clock offset (channel_model's resampler at epsilon = 1 costs
        half of its CPU and changes nothing), channels.channel_model once one is set."""
        st = self.state
        impl = getattr(self.opts, "channel_impl", "auto")
        if impl == "lean" or (impl == "auto" and st.sco_ppm == 0.0):
            if st.sco_ppm == 0.0:
                return LeanChannel(NOISE_VOLTAGE, st.normalised_cfo(), st.taps(), self.opts.seed)
        chan = channels.channel_model(
            noise_voltage=NOISE_VOLTAGE, frequency_offset=st.normalised_cfo(),
            epsilon=1.0 + st.sco_ppm * 1e-6, taps=list(st.taps()), noise_seed=self.opts.seed,
            block_tags=False)
        _big_buffer(chan)
        return chan

    def _make_fading(self):
        st = self.state
        f = channels.fading_model(8, st.normalised_doppler(), st.channel == "rician",
                                  st.k_factor, self.opts.seed + 1)
        _big_buffer(f)
        self._fading_los = st.channel == "rician"
        return f

    def _wire_sim(self) -> None:
        st = self.state
        if st.fading:
            if self.fading is None or self._fading_los != (st.channel == "rician"):
                self.fading = self._make_fading()
            self.connect(self.src, self.fading, self.probe, self.chan)
        else:
            self.connect(self.src, self.chan)
        self.connect(self.chan, self.delay, self.rx_in)
        self._wire_rx()

    def _new_trigger(self) -> None:
        self.trigger = SchmidlCoxTrigger(self.cfg.fft_size, self.sink.rx.sync.threshold)
        # the receiver takes whole frames: a frame's worth of samples in front of it
        _big_buffer(self.trigger.tagger, RX_BUFFER_ITEMS)
        _big_buffer(self.trigger.level, RX_BUFFER_ITEMS)
        self.rx_in = self.trigger

    def _wire_rx(self) -> None:
        if self.trigger is not None:
            self.connect((self.trigger, 0), (self.sink, 0))
            self.connect((self.trigger, 1), (self.sink, 1))

    # ------------------------------------------------------------------ USRP
    def _build_usrp(self, opts) -> None:
        from gnuradio import uhd
        try:
            self.usrp_sink = uhd.usrp_sink(opts.usrp_args, uhd.stream_args(cpu_format="fc32",
                                                                           channels=[0]), "")
            self.usrp_source = uhd.usrp_source(opts.usrp_args, uhd.stream_args(cpu_format="fc32",
                                                                               channels=[0]))
        except RuntimeError as exc:
            msg = " ".join(str(exc).split())
            if "No devices found" in msg or "LookupError" in msg or "KeyError" in msg:
                raise UsrpNotFound(
                    f"no USRP found for --usrp-args '{opts.usrp_args}' (UHD: {msg.strip()}). "
                    "Check the USB 3 / Ethernet connection and power, run 'uhd_find_devices' "
                    "to list devices and pass one as --usrp-args (e.g. 'type=b200' or "
                    "'addr=192.168.10.2'), or drop --usrp to use the simulated channel.") from exc
            raise
        for dev in (self.usrp_sink, self.usrp_source):
            dev.set_samp_rate(opts.rate)
            dev.set_center_freq(opts.freq, 0)
        self.usrp_sink.set_gain(opts.tx_gain, 0)
        self.usrp_source.set_gain(opts.rx_gain, 0)
        self.connect(self.src, self.usrp_sink)
        _big_buffer(self.usrp_source, RX_BUFFER_ITEMS)
        self.connect(self.usrp_source, self.rx_in)
        self._wire_rx()

    # ------------------------------------------------------------------ control
    def apply(self, settings: dict) -> dict:
        """Apply channel settings at run time; returns the new state."""
        if self.usrp:
            raise ValueError("channel settings do not apply to a USRP link")
        was_fading, was_los = self.state.fading, self.state.channel == "rician"
        changed = self.state.update(**settings)
        st = self.state
        if "channel" in changed and st.channel == "trace":
            self.trace = SnrTrace(st.trace)
        if "cfo_hz" in changed or "samp_rate" in changed:
            self.chan.set_frequency_offset(st.normalised_cfo())
        if {"multipath", "timing_offset", "channel"} & changed.keys():
            self.chan.set_taps(list(st.taps()))
        if "timing_offset" in changed:
            self.delay.set_dly(st.integer_delay())
            self.src.tail_pad = 64 + st.integer_delay()  # flush the delay line with each frame
        new_chan = None
        if "sco_ppm" in changed:
            if (isinstance(self.chan, LeanChannel) and st.sco_ppm != 0.0
                    and getattr(self.opts, "channel_impl", "auto") == "auto"):
                new_chan = self._make_chan()  # a clock offset needs channel_model's resampler
            else:
                self.chan.set_timing_offset(1.0 + st.sco_ppm * 1e-6)
        rewire = (st.fading != was_fading) or (st.fading and (st.channel == "rician") != was_los)
        if rewire or new_chan is not None:
            self.lock()
            self.disconnect_all()
            if new_chan is not None:
                self.chan = new_chan
            self._wire_sim()
            if self.trigger is not None and not self.sink.search_fallback:
                # After lock()/unlock() the detector's trigger stayed above the threshold on
                # every sample (GNU Radio 3.10.5 here; a fresh detector or keeping the receiver
                # side wired did the same): the receiver goes back to its own search.
                self.sink.search_fallback = True
                self.sink.stats["detector"] = "python (fallback after a run-time rewire)"
                print("ntscc-xr flowgraph: channel rewired at run time; frame detection "
                      "falls back to the receiver's Python search", file=sys.stderr, flush=True)
            self.unlock()
        elif self.fading is not None:
            if "doppler_hz" in changed or "samp_rate" in changed:
                self.fading.set_fDTs(st.normalised_doppler())
            if "k_factor" in changed:
                self.fading.set_K(st.k_factor)
        return st.as_dict()

    def status(self) -> dict:
        return {"state": self.state.as_dict() if not self.usrp else {"usrp": True},
                "tx": dict(self.src.stats), "rx": dict(self.sink.stats, **self.sink.rx.stats),
                "recent": list(self.sink.recent)[-8:],
                "ports": {"in": self.in_port, "out": self.out_port, "ctrl": self.ctrl_port}}


class ControlServer(threading.Thread):
    """REP socket loop: :class:`FlowgraphRequest` -> :class:`FlowgraphReply` (never raises)."""

    def __init__(self, tb: OfdmLink, stop_event: threading.Event):
        super().__init__(name="ntscc-control", daemon=True)
        self.tb, self.stop_event = tb, stop_event

    def handle(self, req: FlowgraphRequest) -> FlowgraphReply:
        if req.cmd == "ping":
            return FlowgraphReply(True)
        if req.cmd in ("get", "stats", "status"):
            return FlowgraphReply(True, body=self.tb.status())
        if req.cmd == "stop":
            self.stop_event.set()
            return FlowgraphReply(True)
        return FlowgraphReply(True, body={"state": self.tb.apply(req.settings)})

    def run(self) -> None:
        sock = self.tb.ctrl_sock
        while not self.stop_event.is_set():
            try:
                if not sock.poll(100):
                    continue
                raw = sock.recv()
            except zmq.ZMQError:
                return
            try:
                rep = self.handle(FlowgraphRequest.parse(raw))
            except Exception as exc:  # noqa: BLE001 - report any bad request to the client
                rep = FlowgraphReply.failure(exc)
            try:
                sock.send(rep.to_bytes())
            except zmq.ZMQError:
                return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ofdm_link", description=__doc__.split("\n")[0])
    add_flowgraph_arguments(parser)
    opts = parser.parse_args(argv)
    setup_logging()  # the level of $NTSCC_LOG_LEVEL (set by ntscc-xr --log-level)
    ctx = zmq.Context.instance()
    # the "ERROR: ", "READY " and "STOPPED " lines below are the launcher's protocol, not logs
    try:
        tb = OfdmLink(opts, ctx)
    except UsrpNotFound as exc:
        print(f"ERROR: {exc}", file=sys.stderr, flush=True)
        return 3
    except zmq.ZMQError as exc:
        print(f"ERROR: cannot bind the ZMQ sockets on {opts.host} (base port {opts.base_port}): "
              f"{exc}. Another flowgraph running? Use --base-port.", file=sys.stderr, flush=True)
        return 4
    except (OSError, ValueError, PermissionError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr, flush=True)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    ctrl = ControlServer(tb, stop)
    tb.start()
    ctrl.start()
    ready = {"in": f"tcp://{opts.host}:{tb.in_port}", "out": f"tcp://{opts.host}:{tb.out_port}",
             "ctrl": f"tcp://{opts.host}:{tb.ctrl_port}", "channel": opts.channel,
             "usrp": bool(opts.usrp), "pid": os.getpid()}
    # GNU Radio's logger writes to stdout without a trailing newline: start a fresh line
    print("\nREADY " + json.dumps(ready), flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        tb.stop()
        tb.wait()
        ctrl.join(timeout=1.0)
        for s in (tb.in_sock, tb.out_sock, tb.ctrl_sock):
            s.close(0)
        if opts.curve_keys:  # the ZAP authenticator thread would hold the exit for good
            from core.link.security import stop_authenticators
            stop_authenticators()
        print("STOPPED " + json.dumps(tb.status()["rx"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
