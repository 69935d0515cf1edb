"""``ntscc-xr rx``: the receiver process.

Joins two inputs by (stream, frame id): reference messages from the TX (the original frame
for metrics, ROI, viewport, telemetry — never used to decode) and PHY frames from the flowgraph
(equalised symbols, CQI). Each PHY frame starts with its digital side part (side information or
classical grant, ``core.link.sidepart``), decoded here with the real LDPC decoder. A frame
whose PHY part does not arrive in time (lost preamble, failed header, dead flowgraph) or whose
side part fails its CRC (``side_failed``, counted) shows the stated fallback: the previous
picture of that stream (mid-grey before the first) — and the stream goes on.
Every frame yields metrics (CSV + a PUB socket for the viewer) and the receiver feeds the
CQI (smoothed pilot SNR) and acknowledgements back to the TX.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import queue
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zmq

from core.link import sidepart
from core.link.endpoints import Endpoints, bind_address, endpoints_from
from core.link.frame import STREAM_CLASSICAL, STREAM_LEARNED, RxFrame
from core.link.messages import METRIC_FIELDS, EndOfStream, Feedback, MessageError, MetricsMessage, parse_side
from core.link.security import CurveKeys, bind, connect
from core.media.geometry import Viewport, pixel_mask, render_viewport
from core.media.metrics import frame_metrics, ms_ssim, psnr
from core.paths import new_run_folder
from core.session.options import add_arguments as add_session_arguments

log = logging.getLogger(__name__)
READY_WAIT_S = 10.0  # how long the receiver waits for the flowgraph before announcing READY
MAX_PENDING = 32  # bounded join buffer: older unmatched frames are declared lost


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``ntscc-xr rx``'s options: the ``rx`` rows of the session options table."""
    add_session_arguments(p, "rx")

#: Frames decoded but not yet through metrics/report (bounded: a slow metrics stage slows the
#: decoder down rather than growing memory).
METRICS_QUEUE = 4


@dataclass
class Pending:
    meta: dict
    side: bytes
    t_arrival: float
    phy: RxFrame | None = None


@dataclass
class Counters:
    decoded: int = 0
    lost: int = 0
    malformed: int = 0
    duplicates: int = 0
    late: int = 0
    dropped_pending: int = 0
    side_failed: int = 0  #: frames whose side part (side info / grant) failed its CRC
    extra: dict = field(default_factory=dict)


class Receiver:
    def __init__(self, args):
        import torch
        if args.threads > 0:
            torch.set_num_threads(args.threads)
        from core.codec.learned import LearnedCodec
        self.args = args
        self.ep: Endpoints = endpoints_from(args)
        keys = CurveKeys(Path(args.curve_keys)) if args.curve_keys else None
        self.codec = LearnedCodec(device=args.device, weights=args.weights,
                                  fast=getattr(args, "fast", True))
        self.classical = None
        # Every frame of either chain starts with its LDPC-coded side part, so the LDPC tables
        # (sionna, seconds to import) and the coder's JIT are loaded here, in the main thread and
        # before the sockets exist: a receiver that listens is ready to decode (a background import
        # could hold the import lock and delay a Ctrl-C for as long).
        from core.classical.ldpc import preload
        preload()
        sidepart.decode(sidepart.encode(bytes(16), 10.0), 0.1)  # warm-up: compile the coder now
        ctx = zmq.Context.instance()
        self.phy = ctx.socket(zmq.PULL)
        # watched until its first connection: "READY" is announced once the flowgraph's frames
        # can reach us (the flowgraph drops frames while no receiver is connected)
        self._phy_monitor = self.phy.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        connect(self.phy, self.ep.fg_out, keys)
        self.phy.setsockopt(zmq.RCVHWM, 16)
        here = lambda addr: bind_address(addr, args.bind_host)  # noqa: E731
        self.side = bind(ctx.socket(zmq.PULL), here(self.ep.side), args.allow_remote, keys)
        self.side.setsockopt(zmq.RCVHWM, 16)
        self.feedback = bind(ctx.socket(zmq.PUB), here(self.ep.feedback), args.allow_remote, keys)
        self.metrics_pub = bind(ctx.socket(zmq.PUB), here(self.ep.metrics), args.allow_remote, keys)
        self.metrics_pub.setsockopt(zmq.SNDHWM, 4)
        self.pending: OrderedDict[tuple[int, int], Pending] = OrderedDict()
        self.refs: OrderedDict[int, tuple[np.ndarray, np.ndarray | None]] = OrderedDict()
        self.done_ids: OrderedDict[tuple[int, int], None] = OrderedDict()
        self.orphans: OrderedDict[tuple[int, int], RxFrame] = OrderedDict()
        self.counters = Counters()
        self.shown: dict[int, np.ndarray] = {}  # last picture per stream: the fallback
        self.cqi_ewma = float("nan")
        self.last_input = time.time()
        self.expected_frames: int | None = None
        self.tx_session: int | None = None
        out = Path(args.out) if args.out else new_run_folder("rx"); out.mkdir(parents=True, exist_ok=True)
        self.out = out
        append = getattr(args, "metrics_append", False) and (out / "metrics.csv").exists()
        self.csv_file = open(out / "metrics.csv", "a" if append else "w", newline="")
        self.csv = csv.DictWriter(self.csv_file, METRIC_FIELDS, extrasaction="ignore")
        if not append or self.csv_file.tell() == 0:
            self.csv.writeheader()
        # metrics, the CSV row and the viewer publication of frame n run in this worker while
        # the main thread receives and decodes frame n+1 (it owns csv and metrics_pub)
        self._report_queue: queue.Queue = queue.Queue(maxsize=METRICS_QUEUE)
        self._counter_lock = threading.Lock()
        self._counters_written: dict = {}     # the last rx_counters.json, ``decoded`` masked
        self._counters_written_at = 0.0
        self._reporter = threading.Thread(target=self._report_worker, daemon=True, name="rx-report")
        self._reporter.start()

    # ------------------------------------------------------------------ inputs
    def _on_side(self, parts: list[bytes]) -> None:
        msg = parse_side(parts)
        if isinstance(msg, EndOfStream):
            self.expected_frames = msg.frames
            return
        meta = msg.meta
        key = msg.key
        session = msg.tx_session
        if session is not None and session != self.tx_session:
            if self.tx_session is not None:  # the TX restarted: its frame ids start over
                log.info("new transmitter session, resetting frame bookkeeping")
                self.counters.extra["tx_restarts"] = self.counters.extra.get("tx_restarts", 0) + 1
                self.pending.clear(); self.done_ids.clear(); self.refs.clear(); self.orphans.clear()
                self.shown.clear()
            self.tx_session = session
        if key in self.pending or key in self.done_ids:
            self.counters.duplicates += 1
            return
        if msg.stream == STREAM_LEARNED:  # its parse made sure the reference frame is there
            roi = None if msg.roi_grid is None else pixel_mask(msg.roi_grid, (msg.height, msg.width))
            self.refs[key[1]] = (msg.reference, roi)
            while len(self.refs) > MAX_PENDING:
                self.refs.popitem(last=False)
        self.pending[key] = Pending(meta, msg.payload, time.time())
        if key in self.orphans:  # its PHY frame overtook the side message
            self.pending[key].phy = self.orphans.pop(key)
            self._finish(key, self.pending.pop(key))
            return
        while len(self.pending) > MAX_PENDING:
            old_key, old = self.pending.popitem(last=False)
            self.counters.dropped_pending += 1
            self._finish(old_key, old)

    def _on_phy(self, msg: bytes) -> None:
        frame = RxFrame.from_bytes(msg)
        if math.isfinite(frame.cqi_db):
            a = 0.5
            self.cqi_ewma = frame.cqi_db if not math.isfinite(self.cqi_ewma) else (
                a * frame.cqi_db + (1 - a) * self.cqi_ewma)
        key = (frame.stream, frame.frame_id)
        if key in self.done_ids:
            self.counters.late += 1
            return
        p = self.pending.get(key)
        if p is None:
            # the two paths race: the side message may still be queued behind others
            self.orphans[key] = frame
            while len(self.orphans) > MAX_PENDING:
                self.orphans.popitem(last=False)
                self.counters.extra["phy_without_side"] = self.counters.extra.get("phy_without_side", 0) + 1
            return
        if p.phy is None:
            p.phy = frame
        self._finish(key, self.pending.pop(key))
        self._expire_overtaken(key)

    def _expire_overtaken(self, key: tuple[int, int]) -> None:
        """The PHY path (TX -> flowgraph -> RX) keeps its order, so once frame n's PHY part is
        in, an earlier frame of the same stream still waiting for its own will never get it."""
        stream, frame_id = key
        for k in [k for k, p in self.pending.items() if k[0] == stream and k[1] < frame_id and p.phy is None]:
            self._finish(k, self.pending.pop(k))

    # ------------------------------------------------------------------ decoding
    def _finish(self, key: tuple[int, int], p: Pending) -> None:
        self.done_ids[key] = None
        while len(self.done_ids) > 4 * MAX_PENDING:
            self.done_ids.popitem(last=False)
        stream, frame_id = key
        ref_roi = self.refs.get(frame_id)
        t0 = time.perf_counter()
        status = "ok" if p.phy is not None else "lost"
        symbols = p.phy.symbols if p.phy is not None else np.zeros(0, np.complex64)
        cqi = p.phy.cqi_db if p.phy is not None else float("nan")
        noise_var = 10 ** (-cqi / 10) if math.isfinite(cqi) else 0.1
        extra: dict = {}
        try:
            fallback = self._fallback(stream, p.meta)
            if stream not in (STREAM_LEARNED, STREAM_CLASSICAL):
                return
            if p.phy is None:
                rec = fallback
            elif stream == STREAM_LEARNED:
                nu = float(np.clip(cqi, 0.0, 14.0)) if math.isfinite(cqi) else None
                rec, side_ok = self.codec.receive_frame(symbols, noise_var, nu, fallback)
                status = status if side_ok else "side_failed"
            else:
                side = sidepart.decode(symbols, noise_var)
                try:
                    grant = sidepart.unpack_grant(side.data) if side.data is not None else None
                except ValueError:
                    grant = None
                if grant is None:
                    rec, status = fallback, "side_failed"
                else:
                    rec, extra = self._decode_classical(symbols[side.n_symbols:], p, cqi,
                                                        json.dumps(grant).encode(), side.n_symbols)
                    status = status if extra.get("ok", False) else "cliff"
        except Exception as exc:  # one bad frame must never stop the stream
            self.counters.malformed += 1
            log.warning("frame %s undecodable: %s: %s", key, type(exc).__name__, exc)
            return
        t_dec = time.perf_counter() - t0
        self.shown[stream] = rec
        extra["side_failed"] = int(status == "side_failed")
        with self._counter_lock:
            self.counters.decoded += status == "ok"
            self.counters.lost += status == "lost"
            self.counters.side_failed += status == "side_failed"
        # the acknowledgement and CQI need the decode only, not the metrics
        self._send_feedback(frame_id, "learned" if stream == STREAM_LEARNED else "classical", status)
        self.write_counters(only_if_news=True)
        t_done = time.time_ns()
        wait_ms = (t_done / 1e6 - 1e3 * p.t_arrival) - 1e3 * t_dec  # side info in -> both parts in
        self._report_queue.put((stream, frame_id, rec, ref_roi, p, status, cqi, t_dec, extra,
                                symbols, wait_ms, t_done))

    def _report_worker(self) -> None:
        while True:
            job = self._report_queue.get()
            try:
                if job is None:
                    return
                self._report(*job)
            except Exception as exc:  # the reporter must outlive any one bad frame
                log.warning("report failed: %s: %s", type(exc).__name__, exc)
            finally:
                self._report_queue.task_done()

    def _report(self, stream, frame_id, rec, ref_roi, p, status, cqi, t_dec, extra, symbols,
                wait_ms, t_done_ns) -> None:
        t0 = time.perf_counter()
        try:
            row = self._metrics(stream, frame_id, rec, ref_roi, p, status, cqi, t_dec, extra,
                                t_done_ns)
        except Exception as exc:
            with self._counter_lock:
                self.counters.malformed += 1
            log.warning("frame %s metrics failed: %s: %s", (stream, frame_id), type(exc).__name__, exc)
            return
        row.update(wait_ms=wait_ms, metrics_ms=1e3 * (time.perf_counter() - t0))
        self.csv.writerow(row)
        self.csv_file.flush()
        self._publish(row, rec, symbols, p.phy, ref_roi[0] if ref_roi is not None else None)

    def flush_reports(self) -> None:
        """Wait until every decoded frame went through metrics, CSV and publication."""
        self._report_queue.join()

    def _fallback(self, stream: int, meta: dict) -> np.ndarray:
        """What a frame without usable side information shows: the stream's previous picture,
        mid-grey before the first (its size from the session's resolution)."""
        if stream in self.shown:
            return self.shown[stream]
        h, w = int(meta.get("height", 256)), int(meta.get("width", 512))
        if not (0 < h <= 4096 and 0 < w <= 8192):
            raise MessageError("side message: implausible frame size")
        return np.full((h, w, 3), 128, np.uint8)

    def _decode_classical(self, symbols, p: Pending, cqi: float, grant: bytes, offset: int = 0):
        """``symbols``: the frame's symbols after the side part (which took ``offset``)."""
        if self.classical is None:
            from .classical import ClassicalReceiver
            self.classical = ClassicalReceiver()
        sc = p.phy.subcarrier_snr_db if p.phy is not None else None
        return self.classical.decode(symbols, p.meta, grant, cqi, sc, offset)

    def _metrics(self, stream, frame_id, rec, ref_roi, p: Pending, status, cqi, t_dec, extra,
                 t_done_ns: int | None = None) -> dict:
        """The frame's CSV row; times (air_ms, t_wall) are taken at ``t_done_ns``, when its
        decode finished (default: now)."""
        t_done_ns = time.time_ns() if t_done_ns is None else t_done_ns
        vp = Viewport(**p.meta["viewport"]) if "viewport" in p.meta else Viewport()
        row = {"frame_id": frame_id, "stream": "learned" if stream == STREAM_LEARNED else "classical",
               "status": status, "cbr": p.meta.get("cbr"), "cqi_db": cqi, "cqi_used": p.meta.get("cqi_used"),
               "snr_true_db": p.phy.snr_true_db if p.phy is not None else float("nan"),
               "encode_ms": p.meta.get("encode_ms"), "decode_ms": 1e3 * t_dec,
               "air_ms": (t_done_ns - p.meta.get("t_sent_ns", t_done_ns)) / 1e6 - 1e3 * t_dec,
               "lam": p.meta.get("lam"), "eta_scale": p.meta.get("eta_scale"), "roi": p.meta.get("roi"),
               "mcs": extra.get("mcs", p.meta.get("mcs")), "qp": p.meta.get("qp"),
               "olla_margin_db": p.meta.get("olla_margin_db"), "policy": p.meta.get("policy"),
               "codec": p.meta.get("codec"), "yaw": vp.yaw, "pitch": vp.pitch, "fov": vp.fov,
               "t_wall": t_done_ns / 1e9, "tx_session": p.meta.get("tx_session"),
               "side_failed": extra.get("side_failed", 0)}
        if ref_roi is not None and rec is not None and rec.shape == ref_roi[0].shape:
            ref, roi = ref_roi
            vp_ref, vp_rec = render_viewport(ref, vp), render_viewport(rec, vp)
            row.update(frame_metrics(ref, rec, roi), viewport_psnr=psnr(vp_ref, vp_rec))
            every = getattr(self.args, "msssim_every", 0)
            if every and frame_id % every == 0:
                row["viewport_msssim"] = ms_ssim(vp_ref, vp_rec)
            if self.args.save_every and frame_id % self.args.save_every == 0:
                from core.media.imageio import write_rgb
                write_rgb(self.out / "frames" / f"{row['stream']}_{frame_id:05d}.jpg", rec)
                if stream == STREAM_LEARNED:
                    write_rgb(self.out / "frames" / f"reference_{frame_id:05d}.jpg", ref)
        return row

    def _publish(self, row: dict, rec, symbols, phy, reference=None) -> None:
        """Metrics, the reconstruction and the original frame for the viewer; dropped when
        nobody keeps up (HWM)."""
        sc = phy.subcarrier_snr_db if phy is not None else None
        try:
            parts = MetricsMessage(row, rec, symbols, sc if sc is not None else np.zeros(0, np.float32),
                                   reference).to_parts()
            self.metrics_pub.send_multipart(parts, flags=zmq.NOBLOCK)
        except zmq.Again:
            pass
        except MessageError as exc:  # a row the schema refuses: a bug here, never a crash
            self.counters.malformed += 1
            log.error("metrics of frame %s not published: %s", row.get("frame_id"), exc)

    def _send_feedback(self, frame_id: int, stream: str, status: str) -> None:
        """CQI plus the frame's acknowledgement (``status`` ok / lost / cliff per stream)."""
        msg = Feedback(cqi_db=self.cqi_ewma, ack=frame_id, stream=stream, status=status,
                       lost=self.counters.lost,
                       decoded=self.counters.decoded)
        self.feedback.send(msg.to_bytes())

    # ------------------------------------------------------------------ loop
    def _expire(self) -> None:
        # a PHY part already queued here is not late: the loop was busy decoding (a slow machine,
        # a long classical decode); it is read before anything is declared lost
        if self.phy.poll(0, zmq.POLLIN):
            return
        now = time.time()
        for key in [k for k, p in self.pending.items() if now - p.t_arrival > self.args.loss_timeout]:
            self._finish(key, self.pending.pop(key))

    def announce_ready(self, timeout_s: float = READY_WAIT_S) -> bool:
        """Print ``READY {endpoints}`` on stdout (the line a supervisor waits for, as the
        flowgraph's) once the PHY socket is connected to the flowgraph, or after ``timeout_s``
        without it (a flowgraph on another host may come later; ZeroMQ reconnects). True when
        connected."""
        connected = bool(self._phy_monitor.poll(int(timeout_s * 1000)))
        self._close_monitor()
        if not connected:
            log.warning("no flowgraph at %s after %.0f s; listening anyway", self.ep.fg_out, timeout_s)
        sys.stdout.write("READY " + json.dumps({"phy": self.ep.fg_out, "side": self.ep.side,
                                                "connected": connected}) + "\n")
        sys.stdout.flush()
        return connected

    def _close_monitor(self) -> None:
        if self._phy_monitor is not None:
            self.phy.disable_monitor()
            self._phy_monitor.close(linger=0)
            self._phy_monitor = None

    def run(self) -> int:
        self.announce_ready()
        poller = zmq.Poller()
        poller.register(self.phy, zmq.POLLIN)
        poller.register(self.side, zmq.POLLIN)
        while True:
            events = dict(poller.poll(100))
            if self.side in events:
                self.last_input = time.time()
                try:
                    self._on_side(self.side.recv_multipart(zmq.NOBLOCK))
                except Exception as exc:  # anything malformed is counted and dropped
                    self.counters.malformed += 1
                    log.warning("dropped side message: %s: %s", type(exc).__name__, exc)
            if self.phy in events:
                self.last_input = time.time()
                try:
                    self._on_phy(self.phy.recv(zmq.NOBLOCK))
                except Exception as exc:
                    self.counters.malformed += 1
                    log.warning("dropped PHY message: %s: %s", type(exc).__name__, exc)
            self._expire()
            if self.args.exit_on_end and self.expected_frames is not None and not self.pending:
                break
            if self.args.idle_exit and time.time() - self.last_input > self.args.idle_exit:
                break
        self.flush_reports()
        self.write_counters()
        return 0

    def write_counters(self, only_if_news: bool = False) -> None:
        """rx_counters.json, atomically for readers. ``only_if_news`` (per frame): only when a
        counter besides ``decoded`` changed or a second has passed since the last write --
        the write and rename cost ~2.5 ms on this machine's file system, on the path from one
        decode to the next."""
        state = {**vars(self.counters), "extra": dict(self.counters.extra)}
        news = {**state, "decoded": None} != self._counters_written
        if only_if_news and not news and time.monotonic() - self._counters_written_at < 1.0:
            return
        tmp = self.out / "rx_counters.json.tmp"
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self.out / "rx_counters.json")
        self._counters_written = {**state, "decoded": None}
        self._counters_written_at = time.monotonic()

    def close(self) -> None:
        try:
            self._report_queue.put(None, timeout=10)
        except queue.Full:
            pass
        self._reporter.join(timeout=10)
        self.write_counters()  # also after Ctrl-C, which skips the end of run()
        self.csv_file.close()
        self._close_monitor()
        for s in (self.phy, self.side, self.feedback, self.metrics_pub):
            s.close(linger=0)


def main(args) -> int:
    rx = Receiver(args)
    try:
        return rx.run()
    except KeyboardInterrupt:
        return 130
    finally:
        rx.close()
