"""GNU Radio Companion wrappers of the ntscc-xr blocks (used by ``flowgraphs/ofdm_link.grc``).

The block definitions GRC reads are ``flowgraphs/grc/*.block.yml``; open the flowgraph with::

    GRC_BLOCKS_PATH=flowgraphs/grc PYTHONPATH=. gnuradio-companion flowgraphs/ofdm_link.grc

and compile it with ``grcc`` the same way. These wrappers take plain parameters (addresses,
SNR) instead of sockets and callables, so GRC can instantiate them; the source and the sink of
one process share :data:`REGISTRY` (send times and applied SNR per frame).

A GRC-generated script ends with ``tb.stop(); tb.wait(); sys.exit(0)`` on SIGINT/SIGTERM and
never closes a socket: at interpreter exit :func:`_close_all` stops the control thread and
closes every socket made here, so no ZeroMQ socket is torn down under a thread blocked in it
(which crashed the process with SIGSEGV now and then).
"""
from __future__ import annotations

import atexit
import threading

import numpy as np
import zmq

from core.link.endpoints import check_bind
from core.link.messages import FlowgraphReply, FlowgraphRequest
from core.phy.ofdm import OfdmConfig
from flowgraphs.blocks import FrameRegistry, OfdmFrameSink, OfdmFrameSource, SchmidlCoxTrigger

REGISTRY = FrameRegistry()
_SOCKETS: list[zmq.Socket] = []
_CONTROLS: list["link_control"] = []


def _close_all() -> None:
    """Clean stop at interpreter exit (after the GRC script's tb.stop(); tb.wait())."""
    for ctl in _CONTROLS:
        ctl.close()
    for sock in _SOCKETS:
        sock.close(0)
    _SOCKETS.clear()


atexit.register(_close_all)


def _bound(kind: int, address: str) -> zmq.Socket:
    check_bind(address, allow_remote=False)
    sock = zmq.Context.instance().socket(kind)
    _SOCKETS.append(sock)
    sock.setsockopt(zmq.LINGER, 0)
    if kind == zmq.PUSH:
        sock.setsockopt(zmq.SNDHWM, 64)
    sock.bind(address)
    return sock


class frame_source(OfdmFrameSource):  # noqa: N801 - GRC naming
    """OFDM frame source bound to ``address`` (ZMQ PULL of TxFrame messages).

    Parameters
    ----------
    address : str
        ZMQ endpoint to bind.
    snr_db : float
        Per-RE SNR of the simulated link with unit noise (ignored when ``amplitude`` > 0).
    noise_voltage : float
        The channel's noise voltage (the frame amplitude is scaled to it).
    realtime : bool
        A radio consumes the samples (never block).
    amplitude : float
        Fixed RMS burst amplitude (for a USRP); 0 = derive it from ``snr_db``.
    """

    def __init__(self, address: str = "tcp://127.0.0.1:5600", snr_db: float = 10.0,
                 noise_voltage: float = 1.0, realtime: bool = False, amplitude: float = 0.0):
        self.snr_db = float(snr_db)
        self.noise_voltage = float(noise_voltage)
        self.amplitude = float(amplitude)
        cfg = OfdmConfig()
        self._occ = cfg.n_occupied / cfg.fft_size
        OfdmFrameSource.__init__(self, _bound(zmq.PULL, address), cfg, self._gain, REGISTRY,
                                 realtime=bool(realtime))

    def _gain(self, stream: int, frame_id: int) -> tuple[float, float]:
        if self.amplitude > 0:
            return self.amplitude, float("nan")
        snr = self.snr_db
        return float(np.sqrt(10 ** (snr / 10) * self._occ) * self.noise_voltage), snr

    def set_snr_db(self, snr_db: float) -> None:
        self.snr_db = float(snr_db)

    def set_noise_voltage(self, v: float) -> None:
        self.noise_voltage = float(v)


class frame_sink(OfdmFrameSink):  # noqa: N801 - GRC naming
    """OFDM receiver bound to ``address`` (ZMQ PUSH of RxFrame messages); ``triggered``: frames
    start at the tags of a :class:`sc_trigger` in front (else the receiver's own search)."""

    def __init__(self, address: str = "tcp://127.0.0.1:5601", equaliser: str = "ummse",
                 simulated: bool = True, triggered: bool = True):
        OfdmFrameSink.__init__(self, _bound(zmq.PUSH, address), OfdmConfig(), REGISTRY,
                               equaliser=equaliser, simulated=bool(simulated),
                               triggered=bool(triggered))


class sc_trigger(SchmidlCoxTrigger):  # noqa: N801 - GRC naming
    """Schmidl & Cox frame detection in stock blocks (tags ``nx_sc_trigger``)."""


class link_control:  # noqa: N801 - GRC naming
    """JSON control socket (ZMQ REP) for a GRC-generated top block.

    ``{"cmd": "ping"}``, ``{"cmd": "stop"}``, and ``{"snr_db": 7, "cfo_hz": 500}``: each key
    calls the top block's variable setter ``set_<key>`` (GRC generates one per variable).
    """

    def __init__(self, top_block, address: str = "tcp://127.0.0.1:5602"):
        self.tb = top_block
        self.sock = _bound(zmq.REP, address)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="ntscc-grc-control", daemon=True)
        _CONTROLS.append(self)
        self.thread.start()

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=2.0)

    def _handle(self, req: FlowgraphRequest) -> FlowgraphReply:
        if req.cmd == "ping":
            return FlowgraphReply(True)
        if req.cmd == "stop":
            threading.Thread(target=lambda: (self.tb.stop(), self.tb.wait()), daemon=True).start()
            return FlowgraphReply(True)
        if req.cmd in ("get", "stats", "status"):
            out = {}
            for name in ("snr_db", "cfo_hz", "delay_samples", "samp_rate"):
                getter = getattr(self.tb, f"get_{name}", None)
                if getter is not None:
                    out[name] = getter()
            return FlowgraphReply(True, body={"state": out})
        for key, value in req.settings.items():
            setter = getattr(self.tb, f"set_{key}", None)
            if setter is None:
                return FlowgraphReply(False, f"no variable {key!r} in this flowgraph")
            setter(value)
        return FlowgraphReply(True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.sock.poll(100):
                    continue
                raw = self.sock.recv()
            except zmq.ZMQError:
                return
            try:
                rep = self._handle(FlowgraphRequest.parse(raw))
            except Exception as exc:  # noqa: BLE001 - report to the client
                rep = FlowgraphReply.failure(exc)
            self.sock.send(rep.to_bytes())
