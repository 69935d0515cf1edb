"""GNU Radio blocks of the ntscc-xr OFDM link (Python blocks, whole frames per work call).

* :class:`OfdmFrameSource` -- ZMQ PULL of :class:`core.link.frame.TxFrame` messages -> OFDM
  baseband (preamble, PHY header, pilots, IFFT, CP), continuous idle fill between frames.
* :class:`FramePowerProbe` -- pass-through that measures each frame's received power after the
  fading block (so the RX frame can report the instantaneous SNR the emulator applied).
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
        samples = self.mod.modulate(frame.symbols, frame.frame_id, frame.stream, pad=self.tail_pad)
        if amp != 1.0:
            samples *= np.float32(amp)
        p_tx = float(np.vdot(samples, samples).real) / max(samples.size, 1)
        t_tx = meta_time_ns(frame.meta) or t_in
        self.registry.put(frame.stream, frame.frame_id, t_tx_ns=t_tx, snr_db=snr_db,
                          t_in_ns=t_in, n_samples=int(samples.size))
        value = pmt.to_pmt({"id": int(frame.frame_id), "stream": int(frame.stream & 0xF),
                            "n": int(samples.size), "p_tx": p_tx, "snr_db": float(snr_db)})
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
    (nominal SNR + received/transmitted power in dB) in the registry."""

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
                take = min(off - pos, c["n"] - c["seen"])
                if take > 0:
                    seg = x[pos:pos + take]
                    c["acc"] += float(np.vdot(seg, seg).real)
                    c["seen"] += take
                if c["seen"] >= c["n"]:
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
    complex64 stream (channel output).
    """

    def __init__(self, sock, config: OfdmConfig, registry: FrameRegistry,
                 equaliser: str = "ummse", simulated: bool = True, threshold: float = 0.10):
        gr.sync_block.__init__(self, name="ntscc_ofdm_frame_sink", in_sig=[np.complex64],
                               out_sig=None)
        self.sock = sock
        self.cfg = config
        self.registry = registry
        self.simulated = simulated
        self.rx = StreamReceiver(config, equaliser=equaliser, threshold=threshold)
        self.stats = {"frames_out": 0, "frames_dropped": 0, "samples_in": 0}
        self.recent: "collections.deque[dict]" = collections.deque(maxlen=64)

    def work(self, input_items, output_items):
        x = input_items[0]
        self.stats["samples_in"] += len(x)
        try:
            results = self.rx.feed(x)
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
            try:
                self.sock.send(frame.to_bytes(), zmq.NOBLOCK, copy=False)
                self.stats["frames_out"] += 1
            except zmq.Again:
                self.stats["frames_dropped"] += 1
            except zmq.ZMQError:
                return len(x)
            self.recent.append({"frame_id": h.frame_id, "stream": h.stream, "cqi_db": res.cqi_db,
                                "snr_true_db": snr_true, "cfo": res.cfo,
                                "doppler": res.info.get("doppler")})
        return len(x)
