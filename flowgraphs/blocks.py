"""GNU Radio blocks of the ntscc-xr OFDM link (Python blocks, whole frames per work call).

* :class:`OfdmFrameSource` -- ZMQ PULL of :class:`core.link.frame.TxFrame` messages -> OFDM
  baseband (preamble, PHY header, pilots, IFFT, CP), continuous idle fill between frames.
* :class:`FramePowerProbe` -- pass-through that measures each frame's received power after the
  fading block (so the RX frame can report the instantaneous SNR the emulator applied).
* :class:`SchmidlCoxTrigger` -- frame detection from stock C++ blocks: tags the samples where
  the Schmidl & Cox metric rises above the threshold, so the receiver's Python touches only
  detected frames.
* :class:`OfdmFrameSink` -- the OFDM receiver (:class:`flowgraphs.ofdm_dsp.StreamReceiver`):
  sync, CFO, FFT, pilot channel estimation, soft equalisation, SNR estimation ->
  :class:`core.link.frame.RxFrame` on a ZMQ PUSH socket.

Runs under Debian's ``/usr/bin/python3`` (GNU Radio 3.10, numpy 1.24).
"""
from __future__ import annotations

import collections
import logging
import threading
import time

import numpy as np
import pmt
import zmq
from gnuradio import gr

from core.link.frame import FLAG_HEADER_OK, FrameError, RxFrame, TxFrame, meta_time_ns
from core.phy.ofdm import OfdmConfig
from flowgraphs.ofdm_dsp import FrameModulator, StreamReceiver

log = logging.getLogger(__name__)

FRAME_TAG = pmt.intern("nx_frame")
#: Tag of :class:`SchmidlCoxTrigger` on the sample where the detector's metric rises above the
#: threshold (and, on ``TRIGGER_END_TAG``, where it falls back).
TRIGGER_TAG = pmt.intern("nx_sc_trigger")
TRIGGER_END_TAG = pmt.intern("nx_sc_trigger_end")


class SchmidlCoxTrigger(gr.hier_block2):
    """Schmidl & Cox frame detection from stock GNU Radio blocks (C++, every sample).

    The receiver's metric (:class:`flowgraphs.ofdm_dsp.SchmidlCoxDetector`), in the form
    sqrt(M) = |P| / R with the energy of both halves in R::

        x ─┬────────► multiply_conjugate_cc ─► moving_average_cc(L) ─► complex_to_mag ─┐
           ├─► delay(L) ─┘                                                              ▼
           ├─► complex_to_mag_squared ─► moving_average_ff(2L, 0.5) ──────────────► divide_ff
           │                                                                            ▼
           │                                                                    float_to_short
           │                                                                            ▼
           └────────────────────────────────────────── (samples) ─────────────► burst_tagger (trigger)

    ``float_to_short`` with scale 0.5/sqrt(threshold) rounds sqrt(M) to 1 at and above the
    threshold (0/0 in an all-zero stretch gives NaN, which converts to a negative value: no
    trigger); the metric at sample n covers the window n - 2L + 1 .. n.

    Outputs: 0 -- the samples, tagged ``nx_sc_trigger`` where the trigger goes from 0 to 1
    (``nx_sc_trigger_end`` where it falls back) by ``burst_tagger``; 1 -- the trigger itself
    (int16, > 0 above the threshold), sample-aligned with output 0. The receiver reads the
    rising edges from output 1 (a stream stays aligned through a run-time rewire, lock() /
    unlock(); tag offsets did not: GNU Radio 3.10 restarts the reader's item count but not the
    writer's), refines each with the exact metric, and the PHY header CRC decides; Python
    never looks at the samples between frames.

    Why not ``digital.ofdm_sync_sc_cfb``: its plateau detector marks one sample in the middle
    of each run above the threshold, a run of one sample is "not a plateau", and a run cut by
    the end of a work call is marked twice or off-centre (GNU Radio issue #6891: frames lost
    with header_payload_demux even without noise); here every rising edge is a candidate and
    the receiver checks it. It also costs ~3x the CPU (5.8 Msps per core measured here, its
    complex_to_arg and sample-and-hold run on every sample).

    Parameters
    ----------
    fft_len : int
        N (the repeated halves are N/2 long).
    threshold : float
        Threshold on M = |P|^2 / R^2 (the plateau is ~(snr/(1+snr))^2; noise alone ~ 2/N).
    """

    def __init__(self, fft_len: int = 256, threshold: float = 0.10):
        gr.hier_block2.__init__(self, "ntscc_sc_trigger",
                                gr.io_signature(1, 1, gr.sizeof_gr_complex),
                                gr.io_signature2(2, 2, gr.sizeof_gr_complex, gr.sizeof_short))
        from gnuradio import blocks as gr_blocks
        L = fft_len // 2
        self.delay = gr_blocks.delay(gr.sizeof_gr_complex, L)
        self.corr = gr_blocks.multiply_conjugate_cc()
        self.corr_sum = gr_blocks.moving_average_cc(L, 1.0, 1 << 16)
        self.corr_mag = gr_blocks.complex_to_mag()
        self.energy = gr_blocks.complex_to_mag_squared()
        self.energy_sum = gr_blocks.moving_average_ff(2 * L, 0.5, 1 << 16)
        self.ratio = gr_blocks.divide_ff()
        self.level = gr_blocks.float_to_short(1, 0.5 / float(np.sqrt(threshold)))
        self.tagger = gr_blocks.burst_tagger(gr.sizeof_gr_complex)
        self.tagger.set_true_tag(pmt.symbol_to_string(TRIGGER_TAG), True)
        self.tagger.set_false_tag(pmt.symbol_to_string(TRIGGER_END_TAG), True)
        for b in (self.delay, self.corr, self.corr_sum, self.corr_mag, self.energy,
                  self.energy_sum, self.ratio, self.level, self.tagger):
            try:
                b.set_log_level("warn")
            except Exception:  # noqa: BLE001 - older bindings
                pass
            b.set_min_output_buffer(1 << 16)
        self.connect(self, (self.corr, 0))
        self.connect(self, self.delay, (self.corr, 1))
        self.connect(self.corr, self.corr_sum, self.corr_mag, (self.ratio, 0))
        self.connect(self, self.energy, self.energy_sum, (self.ratio, 1))
        self.connect(self.ratio, self.level, (self.tagger, 1))
        self.connect(self, (self.tagger, 0))
        self.connect(self.tagger, (self, 0))
        self.connect(self.level, (self, 1))

    def set_threshold(self, threshold: float) -> None:
        self.level.set_scale(0.5 / float(np.sqrt(threshold)))


class FrameRegistry:
    """What the transmitter knows about each frame in flight, looked up by the receiver
    (same process): send time, applied SNR, measured received power. Bounded, thread-safe."""

    def __init__(self, capacity: int = 4096):
        self._d: "collections.OrderedDict[tuple[int, int], dict]" = collections.OrderedDict()
        self._lock = threading.Lock()
        self.capacity = capacity

    def put(self, stream: int, frame_id: int, **info) -> None:
        with self._lock:
            key = (stream & 0xF, frame_id & 0xFFFFFFFF)
            self._d.setdefault(key, {}).update(info)
            self._d.move_to_end(key)
            while len(self._d) > self.capacity:
                self._d.popitem(last=False)

    def update(self, stream: int, frame_id: int, **info) -> None:
        with self._lock:
            d = self._d.get((stream & 0xF, frame_id & 0xFFFFFFFF))
            if d is not None:
                d.update(info)

    def pop(self, stream: int, frame_id: int) -> dict:
        with self._lock:
            return self._d.pop((stream & 0xF, frame_id & 0xFFFFFFFF), {})


class OfdmFrameSource(gr.sync_block):
    """TX: frames from ZMQ to OFDM baseband samples, idle fill in between.

    Parameters
    ----------
    sock : zmq.Socket
        A bound PULL socket delivering :class:`TxFrame` messages (one frame per message).
    config : OfdmConfig
    frame_gain : callable(stream, frame_id) -> (amplitude, snr_db)
        Amplitude applied to the frame (the emulator's per-frame SNR) and the nominal SNR.
    registry : FrameRegistry
    realtime : bool
        True when a radio consumes the samples at its own rate (USRP): never block, always fill
        the whole output. False (simulation): when no frame is waiting, wait up to ``poll_ms``
        for one, then emit ``idle_chunk`` zeros, so the scheduler keeps flowing without
        spinning the CPU.

    Output
    ------
    complex64 stream; a tag ``nx_frame`` marks each frame's first sample.
    """

    def __init__(self, sock, config: OfdmConfig, frame_gain, registry: FrameRegistry,
                 realtime: bool = False, idle_chunk: int = 1024, poll_ms: float = 2.0,
                 tail_pad: int = 0):
        gr.sync_block.__init__(self, name="ntscc_ofdm_frame_source", in_sig=None,
                               out_sig=[np.complex64])
        self.sock = sock
        self.cfg = config
        self.mod = FrameModulator(config)
        self.frame_gain = frame_gain
        self.registry = registry
        self.realtime = realtime
        self.idle_chunk = idle_chunk
        self.poll_ms = poll_ms
        self.tail_pad = tail_pad
        self._pending: np.ndarray | None = None
        self._pos = 0
        self._poller = zmq.Poller()
        self._poller.register(sock, zmq.POLLIN)
        self.stats = {"frames_in": 0, "frames_bad": 0, "samples_out": 0, "frame_samples": 0,
                      "last_error": ""}

    def _next_frame(self, timeout_ms: float) -> TxFrame | None:
        while True:
            try:
                if timeout_ms > 0 and not self._poller.poll(timeout_ms):
                    return None
                msg = self.sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return None
            except zmq.ZMQError:  # socket closed at shutdown
                return None
            try:
                return TxFrame.from_bytes(msg)
            except FrameError as exc:
                self.stats["frames_bad"] += 1
                self.stats["last_error"] = str(exc)
                timeout_ms = 0

    def _start(self, frame: TxFrame) -> None:
        t_in = time.time_ns()
        amp, snr_db = self.frame_gain(frame.stream, frame.frame_id)
        pad = self.tail_pad
        samples = self.mod.modulate(frame.symbols, frame.frame_id, frame.stream, pad=pad)
        if amp != 1.0:
            samples *= np.float32(amp)
        body = samples[:samples.size - pad]
        p_tx = float(np.vdot(body, body).real) / max(body.size, 1)
        t_tx = meta_time_ns(frame.meta) or t_in
        self.registry.put(frame.stream, frame.frame_id, t_tx_ns=t_tx, snr_db=snr_db,
                          t_in_ns=t_in, n_samples=int(samples.size))
        value = pmt.to_pmt({"id": int(frame.frame_id), "stream": int(frame.stream & 0xF),
                            "n_body": int(body.size), "p_tx": p_tx, "snr_db": float(snr_db)})
        self.add_item_tag(0, self.nitems_written(0), FRAME_TAG, value)
        self._pending, self._pos = samples, 0
        self.stats["frames_in"] += 1
        self.stats["frame_samples"] += int(samples.size)

    def work(self, input_items, output_items):
        out = output_items[0]
        n = len(out)
        if self._pending is None:
            frame = self._next_frame(0)
            if frame is None and not self.realtime:
                frame = self._next_frame(self.poll_ms)
            if frame is not None:
                try:
                    self._start(frame)
                except Exception as exc:  # noqa: BLE001 - one bad frame must not stop the link
                    self.stats["frames_bad"] += 1
                    self.stats["last_error"] = f"{type(exc).__name__}: {exc}"
                    log.warning("frame %d dropped: %s", frame.frame_id, exc)
        if self._pending is not None:
            k = min(n, self._pending.size - self._pos)
            out[:k] = self._pending[self._pos:self._pos + k]
            self._pos += k
            if self._pos >= self._pending.size:
                self._pending = None
            self.stats["samples_out"] += k
            return k
        k = n if self.realtime else min(n, self.idle_chunk)
        out[:k] = 0
        self.stats["samples_out"] += k
        return k


class FramePowerProbe(gr.sync_block):
    """Pass-through; averages |x|^2 over each tagged frame and stores the instantaneous SNR
    (nominal SNR + received/transmitted power in dB) in the registry.

    It measures the frame's body only, not its zero tail padding, and stores the SNR in the
    same call that passes the body's last sample on: the receiver can decode a frame as soon
    as its body is through, and must then find the SNR already there (with the padding
    counted, it could pop the registry entry first and report the nominal SNR).
    """

    def __init__(self, registry: FrameRegistry):
        gr.sync_block.__init__(self, name="ntscc_frame_power_probe", in_sig=[np.complex64],
                               out_sig=[np.complex64])
        self.registry = registry
        self._cur: dict | None = None

    def _finish(self) -> None:
        c = self._cur
        if c and c["seen"] > 0 and c["p_tx"] > 0:
            ratio = c["acc"] / c["seen"] / c["p_tx"]
            self.registry.update(c["stream"], c["id"],
                                 snr_inst_db=c["snr_db"] + 10 * np.log10(max(ratio, 1e-12)))
        self._cur = None

    def work(self, input_items, output_items):
        x = input_items[0]
        n = len(x)
        output_items[0][:] = x
        base = self.nitems_read(0)
        tags = self.get_tags_in_window(0, 0, n, FRAME_TAG)
        cuts = [(t.offset - base, pmt.to_python(t.value)) for t in tags]
        pos = 0
        for off, info in cuts + [(n, None)]:
            off = int(max(0, min(n, off)))
            c = self._cur
            if c is not None and off > pos:
                take = min(off - pos, c["n_body"] - c["seen"])
                if take > 0:
                    seg = x[pos:pos + take]
                    c["acc"] += float(np.vdot(seg, seg).real)
                    c["seen"] += take
                if c["seen"] >= c["n_body"]:
                    self._finish()
            if info is not None:
                self._finish()
                self._cur = dict(info, acc=0.0, seen=0)
            pos = off
        return n


class OfdmFrameSink(gr.sync_block):
    """RX: OFDM receiver; each decoded frame goes out as an :class:`RxFrame` ZMQ message.

    Parameters
    ----------
    sock : zmq.Socket
        A bound PUSH socket. Sends never block: with no reader (or a full queue) the frame is
        dropped and counted.
    config : OfdmConfig
    registry : FrameRegistry
    equaliser : str
        ``ummse`` (unbiased, default), ``mmse`` or ``zf``.
    simulated : bool
        True when the channel is emulated (RxFrame.snr_true_db is then the applied SNR).

    Input
    -----
    complex64 stream (channel output); with ``triggered``, a second int16 stream, > 0 where the
    detector in front (:class:`SchmidlCoxTrigger`, output 1) sees the metric above threshold.
    """

    def __init__(self, sock, config: OfdmConfig, registry: FrameRegistry,
                 equaliser: str = "ummse", simulated: bool = True, threshold: float = 0.10,
                 triggered: bool = False):
        gr.sync_block.__init__(self, name="ntscc_ofdm_frame_sink",
                               in_sig=[np.complex64, np.int16] if triggered else [np.complex64],
                               out_sig=None)
        self.sock = sock
        self.cfg = config
        self.registry = registry
        self.simulated = simulated
        self.triggered = triggered
        self._trig_last = False  # trigger level of the last sample of the previous call
        #: set by the top block after a run-time rewire: ignore the trigger, search in Python
        self.search_fallback = False
        self.rx = StreamReceiver(config, equaliser=equaliser, threshold=threshold)
        self.stats = {"frames_out": 0, "frames_dropped": 0, "samples_in": 0}
        self.recent: "collections.deque[dict]" = collections.deque(maxlen=64)

    def work(self, input_items, output_items):
        x = input_items[0]
        self.stats["samples_in"] += len(x)
        triggers = None
        if self.triggered and not self.search_fallback:
            up = input_items[1] > 0
            edges = np.flatnonzero(up[1:] & ~up[:-1]) + 1
            if up.size and up[0] and not self._trig_last:
                edges = np.concatenate([[0], edges])
            if up.size:
                self._trig_last = bool(up[-1])
            triggers = edges.tolist()
        try:
            results = self.rx.feed(x, triggers)
        except Exception:  # noqa: BLE001 - resynchronise instead of killing the flowgraph
            self.stats["rx_errors"] = self.stats.get("rx_errors", 0) + 1
            log.exception("receiver error; resynchronising")
            self.rx.reset()
            return len(x)
        for res in results:
            h = res.header
            info = self.registry.pop(h.stream, h.frame_id)
            snr_true = float("nan")
            if self.simulated:
                snr_true = info.get("snr_inst_db", info.get("snr_db", float("nan")))
            frame = RxFrame(frame_id=h.frame_id, symbols=res.symbols, cqi_db=res.cqi_db,
                            subcarrier_snr_db=res.subcarrier_snr_db, snr_true_db=snr_true,
                            stream=h.stream, flags=FLAG_HEADER_OK,
                            t_tx_ns=int(info.get("t_tx_ns", 0)))
            # Counted before the send: a client that has the frame and then asks for the
            # stats must already see it counted (the send wakes it before this thread resumes).
            self.stats["frames_out"] += 1
            try:
                self.sock.send(frame.to_bytes(), zmq.NOBLOCK, copy=False)
            except zmq.Again:
                self.stats["frames_out"] -= 1
                self.stats["frames_dropped"] += 1
            except zmq.ZMQError:
                self.stats["frames_out"] -= 1
                return len(x)
            self.recent.append({"frame_id": h.frame_id, "stream": h.stream, "cqi_db": res.cqi_db,
                                "snr_true_db": snr_true, "cfo": res.cfo,
                                "doppler": res.info.get("doppler")})
        return len(x)
