"""``ntscc-xr tx``: the transmitter process.

Per frame: read the ERP frame, take the viewport pose (viewer control socket or a scripted
head trajectory), derive the ROI and its η map, read the latest CQI from the receiver's
feedback, encode with compatible NTSCC+ (optionally NTSCC++ editing), send the frame to the
flowgraph: its digital side part (side information, on the air: ``core.link.sidepart``) then
the JSCC symbols. The ZeroMQ side link to the receiver carries only what a real deployment
would send outside the radio: the reference frame, ROI and viewport for the metrics, and
telemetry (it is never used to decode). The classical chain (codec + 5G LDPC)
encodes the same frame for the same budget and CQI and rides the same PHY as a second stream.
"""
from __future__ import annotations

import argparse
import json
import logging
import queue
import threading
import time
from dataclasses import asdict

import numpy as np
import zmq

from core.classical.mcs import OuterLoopLinkAdaptation
from core.link import sidepart
from core.link.endpoints import bind_address, endpoints_from
from core.link.frame import STREAM_CLASSICAL, STREAM_LEARNED, TxFrame
from core.link.messages import Control, EndOfStream, Feedback, MessageError, SideMessage
from core.link.security import CurveKeys, bind, connect
from core.media.geometry import (
    ETA_BACKGROUND,
    ETA_ROI,
    QUALITY_BACKGROUND,
    QUALITY_ROI,
    Viewport,
    eta_map,
    head_trajectory,
    roi_grid_mask,
)
from core.media.source import FrameSource, parse_resolution
from core.session.options import add_arguments as add_session_arguments

from .adaptation import CqiTracker, LearnedRateController

log = logging.getLogger(__name__)
SIDE_QUEUE = 8  # bounded: a stalled receiver makes the TX drop side messages, not grow memory
PREFETCH = 2  # source frames decoded ahead of the encoder


class FramePrefetcher:
    """Reads (decodes, resizes) source frames in a thread, ``depth`` ahead of the encoder, so
    that capture of frame n+1 overlaps the encode of frame n (PyAV and the resize release the
    GIL). ``get()`` returns (frame, read_ms), read_ms being the reader's own time for it."""

    def __init__(self, frames, depth: int = PREFETCH):
        self._frames = frames
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._run, daemon=True, name="tx-prefetch")
        self._thread.start()

    def _run(self) -> None:
        while True:
            t0 = time.perf_counter()
            try:
                item = (next(self._frames), 1e3 * (time.perf_counter() - t0))
            except BaseException as exc:  # StopIteration or a bad source: re-raised in get()
                self._queue.put(exc)
                return
            self._queue.put(item)

    def get(self) -> tuple[np.ndarray, float]:
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._queue.put(item)  # every later get() raises it too
            raise item
        return item


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``ntscc-xr tx``'s options: the ``tx`` rows of the session options table."""
    add_session_arguments(p, "tx")

class Transmitter:
    def __init__(self, args):
        import torch
        if args.threads > 0:
            torch.set_num_threads(args.threads)
        from core.codec.learned import LearnedCodec
        self.args = args
        self.ep = endpoints_from(args)
        self.keys = CurveKeys(__import__("pathlib").Path(args.curve_keys)) if args.curve_keys else None
        self.codec = LearnedCodec(device=args.device, weights=args.weights,
                                  fast=getattr(args, "fast", True))
        self.source = FrameSource(args.source, parse_resolution(args.resolution))
        eta_lo, eta_hi = self.codec.model.cfg.eta_range  # steer η inside the range it was trained on
        self.rate = LearnedRateController(budget=args.cbr, eta_min=eta_lo, eta_max=eta_hi)
        self.cqi = CqiTracker(args.cqi_init)
        self.roi_enabled = args.roi
        self.edit_steps = args.edit_steps
        self.pose: Viewport | None = None
        self.classical = None
        self.classical_skipped = 0
        self.phy_dropped = 0
        self.bad_inputs = 0
        self.paused = False
        self.stages: dict[str, float] = {}
        self.steps_pending = 0
        self._drop_rng = np.random.default_rng(1234)
        # a restarted TX counts frames from 0 again; the RX tells sessions apart by this nonce
        self.tx_session = int.from_bytes(__import__("os").urandom(4), "little")
        self._send_lock = threading.Lock()  # zmq sockets are not thread-safe
        self._classical_jobs: queue.Queue = queue.Queue(maxsize=1)
        self.olla = (OuterLoopLinkAdaptation(args.classical_bler_target)
                     if args.classical and args.classical_olla else None)
        if args.classical:
            from .classical import ClassicalTransmitter
            self.classical = ClassicalTransmitter(args.classical_codec,
                                                  bler_target=args.classical_bler_target,
                                                  olla=args.classical_olla)
            if args.classical_mode == "async":
                self._worker = threading.Thread(target=self._classical_worker, daemon=True)
                self._worker.start()
        # every frame's side part is LDPC-coded: load the tables and compile the coder before the
        # sockets exist, so a TX that listens sends without a first-frame stall
        from core.classical.ldpc import preload
        preload()
        sidepart.encode(bytes(16), 10.0)
        ctx = zmq.Context.instance()
        self.to_fg = connect(ctx.socket(zmq.PUSH), self.ep.fg_in, self.keys)
        self.to_fg.setsockopt(zmq.SNDHWM, 4)
        # queue only towards a live flowgraph: while it is down (or restarting) frames are
        # dropped (they decode as lost at the RX) instead of stalling the transmitter
        self.to_fg.setsockopt(zmq.IMMEDIATE, 1)
        self.side = connect(ctx.socket(zmq.PUSH), self.ep.side, self.keys)
        self.side.setsockopt(zmq.SNDHWM, SIDE_QUEUE)
        self.feedback = connect(ctx.socket(zmq.SUB), self.ep.feedback, self.keys)
        self.feedback.setsockopt(zmq.SUBSCRIBE, b"")
        self.control = bind(ctx.socket(zmq.PULL), bind_address(self.ep.control, args.bind_host),
                            args.allow_remote, self.keys)
        for s in (self.to_fg, self.side):
            s.setsockopt(zmq.LINGER, 500)

    # ------------------------------------------------------------------ inputs
    def _poll_inputs(self) -> None:
        """Drain feedback (CQI) and viewer control without blocking."""
        while self.feedback.poll(0):
            try:
                fb = Feedback.parse(self.feedback.recv())
            except MessageError:
                self.bad_inputs += 1  # malformed feedback is ignored, never fatal
                continue
            self.cqi.update(fb.cqi_db)
            if self.olla is not None and fb.stream == "classical":
                self.olla.observe(fb.status == "ok")
        while self.control.poll(0):
            try:
                self._apply_control(Control.parse(self.control.recv()))
            except MessageError:
                self.bad_inputs += 1

    def _apply_control(self, msg: Control) -> None:
        """Apply a viewer command (validated by its parse); values are clamped to our ranges."""
        if msg.yaw is not None:
            self.pose = Viewport(msg.yaw, 0.0 if msg.pitch is None else msg.pitch,
                                 90.0 if msg.fov is None else msg.fov).clamped()
        if msg.roi is not None:
            self.roi_enabled = msg.roi
        if msg.cbr is not None:
            self.rate.budget = float(np.clip(msg.cbr, 0.002, 0.5))
        if msg.lam is not None:
            self.args.lam = float(np.clip(msg.lam, 0.013, 0.72))
        if msg.edit_steps is not None:
            self.edit_steps = int(np.clip(msg.edit_steps, 0, 100))
        if msg.pause is not None:
            self.paused = msg.pause
        if msg.step is not None:
            self.steps_pending = int(np.clip(msg.step, 0, 100))

    # ------------------------------------------------------------------ one frame
    def send_frame(self, frame_id: int, rgb: np.ndarray, pose: Viewport) -> dict:
        t_prep = time.perf_counter()
        h, w = rgb.shape[:2]
        roi = roi_grid_mask((h, w), [pose])
        scale = self.rate.next_eta()
        if self.roi_enabled:
            # keep the paper's in/out ratio η1/η2 = 0.25/0.05, scaled by the controller
            eta = eta_map(roi, ETA_ROI * scale / 0.2, ETA_BACKGROUND * scale / 0.2)
            quality = np.where(np.repeat(np.repeat(roi, 16, 0), 16, 1)[:h, :w], QUALITY_ROI,
                               QUALITY_BACKGROUND).astype(np.float32)
        else:
            eta, quality = scale, None
        nu = self.cqi.for_model
        t0 = time.perf_counter()
        prep_ms = 1e3 * (t0 - t_prep)
        enc = self.codec.encode(rgb, self.args.lam, eta, nu, edit_steps=self.edit_steps,
                                quality=quality if self.edit_steps else None)
        t_enc = time.perf_counter() - t0
        self.rate.observe(scale, enc.cbr)
        air = self.codec.frame_symbols(enc, nu)  # side part (on the air) + JSCC symbols
        meta = {"side_uses": int(air.size - enc.n_symbols),
                "stream": STREAM_LEARNED, "frame_id": frame_id, "lam": self.args.lam,
                "eta_scale": scale, "roi": self.roi_enabled, "cqi_used": nu,
                "cbr": enc.cbr, "budget": self.rate.budget, "n_symbols": enc.n_symbols,
                "encode_ms": 1e3 * t_enc, "viewport": asdict(pose), "edit_steps": self.edit_steps,
                "t_sent_ns": time.time_ns(), "height": h, "width": w, "tx_session": self.tx_session}
        t_send = time.perf_counter()
        with self._send_lock:
            self._send_side(meta, b"", rgb, roi)  # metrics reference only: no side info
            if self._drop_rng.random() >= self.args.drop_rate:
                self._send_phy(TxFrame(frame_id, air, STREAM_LEARNED))
        # the per-frame stage budget (not in the side message: sending is timed after it left)
        self.stages = {"prep_ms": prep_ms, "send_ms": 1e3 * (time.perf_counter() - t_send)}
        if self.classical is not None:
            cqi, margin = self.cqi.value_db, 0.0
            if self.olla is not None:
                cqi, margin = self.olla.effective_cqi(cqi), self.olla.margin_db
            job = (frame_id, rgb, pose, cqi, self.rate.budget, margin)
            if self.args.classical_mode == "sync":
                self._send_classical(*job)
            elif not self._classical_jobs.full():
                self._classical_jobs.put(job)
            else:
                self.classical_skipped += 1
        return meta

    def _send_classical(self, frame_id, rgb, pose, cqi_db, budget, olla_margin_db=0.0) -> None:
        h, w = rgb.shape[:2]
        # the grant rides the frame's digital part (MCS from the CQI without the OLLA back-off);
        # its channel uses come off the frame's budget
        grant_cqi = cqi_db + olla_margin_db
        grant_uses = sidepart.channel_uses(sidepart.grant_size(self.classical.chain.codec.name), grant_cqi)
        cmeta, symbols = self.classical.encode(rgb, cqi_db, max(0.0, budget - grant_uses / (3 * h * w)))
        grant = sidepart.pack_grant(json.loads(cmeta.pop("payload")))
        symbols = np.concatenate([sidepart.encode(grant, grant_cqi), symbols])
        cmeta.update(cbr=symbols.size / (3 * h * w), budget=budget, side_uses=int(symbols.size - cmeta["n_symbols"]),
                     n_symbols=int(symbols.size))
        cmeta.update(stream=STREAM_CLASSICAL, frame_id=frame_id, t_sent_ns=time.time_ns(),
                     olla_margin_db=olla_margin_db,
                     tx_session=self.tx_session,
                     viewport=asdict(pose), height=h, width=w)
        with self._send_lock:
            self._send_side(cmeta, b"", None, None)  # metrics/telemetry only: the grant is on the air
            self._send_phy(TxFrame(frame_id, symbols, STREAM_CLASSICAL))

    def _classical_worker(self) -> None:
        while True:
            job = self._classical_jobs.get()
            if job is None:
                return
            try:
                self._send_classical(*job)
            except Exception as exc:  # a codec failure must not stop the learned stream
                log.warning("classical frame %d failed: %s", job[0], exc)

    def _send_phy(self, frame: TxFrame) -> None:
        try:
            self.to_fg.send(frame.to_bytes(), flags=zmq.NOBLOCK)
        except zmq.Again:
            self.phy_dropped += 1  # flowgraph down or saturated: the RX decodes it as lost

    def _send_side(self, meta: dict, side: bytes, rgb, roi) -> None:
        """The out-of-band message to the RX: REFERENCE ONLY (metrics: the original frame, ROI,
        viewport; telemetry). ``side`` stays empty: side information travels on the air."""
        parts = SideMessage.from_meta(meta, side, rgb, roi).to_parts()
        try:
            self.side.send_multipart(parts, flags=zmq.NOBLOCK)
        except zmq.Again:
            pass  # receiver not keeping up: this frame's side info is dropped (it decodes as lost)

    def run(self) -> int:
        n = self.args.frames
        trajectory = head_trajectory(max(n, 600))
        period = 1.0 / self.args.fps if self.args.fps > 0 else 0.0
        frames = FramePrefetcher(self.source.frames())
        # wait (bounded) for the flowgraph connection: with IMMEDIATE the first frames would
        # otherwise be dropped while the TCP connection is still being set up
        self.to_fg.poll(5000, zmq.POLLOUT)
        t_next = time.perf_counter()
        frame_id = 0
        while n == 0 or frame_id < n:
            self._poll_inputs()
            if self.paused and self.steps_pending == 0:
                time.sleep(0.05)  # paused by the viewer: wait for resume or a single step
                t_next = time.perf_counter()
                continue
            self.steps_pending = max(0, self.steps_pending - 1)
            t_cap = time.perf_counter()
            rgb, read_ms = frames.get()
            capture_ms = 1e3 * (time.perf_counter() - t_cap)
            pose = self.pose or (trajectory[frame_id % len(trajectory)]
                                 if self.args.trajectory == "scripted" else Viewport())
            meta = self.send_frame(frame_id, rgb, pose)
            # capture_ms: the loop's wait for the prefetched frame; read_ms: the reader's own time
            log.info("sent %s", json.dumps({**{k: meta[k] for k in ("frame_id", "cbr", "cqi_used", "encode_ms",
                                                                    "tx_session", "t_sent_ns")},
                                            "capture_ms": round(capture_ms, 2), "read_ms": round(read_ms, 2),
                                            **{k: round(v, 2) for k, v in self.stages.items()}}))
            frame_id += 1
            if period:
                # a frame that ran late pushes the schedule back rather than bursting the
                # following frames out back to back (a live camera does not queue)
                t_next = max(t_next + period, time.perf_counter())
                time.sleep(max(0.0, t_next - time.perf_counter()))
        if self.classical is not None and self.args.classical_mode == "async":
            self._classical_jobs.put(None)
            self._worker.join(timeout=60)
        with self._send_lock:
            self.side.send_multipart(EndOfStream(frame_id, self.phy_dropped, self.classical_skipped).to_parts())
        return 0

    def close(self) -> None:
        for s in (self.to_fg, self.side, self.feedback, self.control):
            s.close(linger=500)


def main(args) -> int:
    tx = Transmitter(args)
    try:
        return tx.run()
    except KeyboardInterrupt:
        return 130
    finally:
        tx.close()
