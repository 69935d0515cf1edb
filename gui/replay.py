"""A stand-in link that speaks the session's ZeroMQ protocol, for the viewer's tests, its
latency benchmark and for trying the window without a radio or a trained model.

It binds what the real processes bind and behaves like them at the interfaces the viewer
touches:

* metrics PUB (the RX's): one message per frame and stream in the RX format
  (:class:`core.link.messages.MetricsMessage`);
* control PULL (the TX's): viewport pose / ROI / CBR / λ / NTSCC++ steps, and ``pause`` /
  ``step`` (the protocol the viewer asks the TX to implement);
* flowgraph control REP: ``snr_db``, ``channel``, ``doppler_hz``, ``{"cmd": "ping"}``.

Frames come from the real content (:class:`core.media.source.FrameSource`); the metrics are real
(PSNR / WS-PSNR / viewport PSNR of what is published). The pictures are NOT the codecs':
by default the "learned" picture is a blur + noise degradation that follows SNR and ROI and the
"classical" one a JPEG at a rate set by the MCS, with a cliff below the MCS threshold.
Pass ``learned=`` a callable to publish real decoder output (the tests use the real
:class:`core.codec.learned.LearnedCodec`).

``python -m gui.replay --base-port 5600 --fps 10`` then ``python -m gui.viewer --attach``.
"""
from __future__ import annotations

import argparse
import io
import math
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import zmq
from PIL import Image

from core.link.messages import Control, FlowgraphReply, FlowgraphRequest, MessageError, MetricsMessage
from core.media.geometry import Viewport, head_trajectory, pixel_mask, render_viewport, roi_grid_mask
from core.media.metrics import masked_psnr, psnr, ws_psnr

# (required SNR dB, bits per symbol, code rate) — a coarse 5G-like ladder
MCS_TABLE = [(-2.0, 2, 0.12), (1.0, 2, 0.3), (4.0, 2, 0.6), (7.0, 4, 0.45), (10.0, 4, 0.65),
             (13.0, 6, 0.55), (16.0, 6, 0.75), (20.0, 8, 0.7)]


def qam(bits: int, n: int, rng: np.random.Generator) -> np.ndarray:
    m = int(round(math.sqrt(2 ** bits)))
    lv = np.arange(m) * 2 - (m - 1)
    s = rng.choice(lv, n) + 1j * rng.choice(lv, n)
    return (s / math.sqrt(np.mean(np.abs(lv) ** 2) * 2)).astype(np.complex64)


@dataclass
class LinkState:
    snr_db: float = 10.0
    channel: str = "awgn"
    doppler_hz: float = 0.0
    yaw: float | None = None
    pitch: float = 0.0
    fov: float = 90.0
    roi: bool = True
    cbr: float = 0.04
    lam: float = 0.18
    edit_steps: int = 0
    paused: bool = False
    steps: int = 0


class ReplayLink:
    def __init__(self, metrics: str, control: str | None = None, fg_ctrl: str | None = None,
                 source: str | None = None, resolution: tuple[int, int] = (512, 256),
                 fps: float = 10.0, snr_db: float = 10.0, frames: int = 0, classical: bool = True,
                 send_reference: bool = False,
                 learned: Callable[[int, np.ndarray, LinkState], tuple] | None = None, seed: int = 0):
        from core.media.source import FrameSource
        self.addresses = (metrics, control, fg_ctrl)
        self.source = FrameSource(source, resolution)
        self.fps = fps
        self.frames = frames
        self.classical = classical
        self.send_reference = send_reference
        self.learned = learned
        self.state = LinkState(snr_db=snr_db)
        self.rng = np.random.default_rng(seed)
        self.trajectory = head_trajectory(600)
        self.sent = 0
        self.commands: list[dict] = []  # everything received on both control sockets
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "ReplayLink":
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("replay link did not bind its sockets")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    # ------------------------------------------------------------------ control
    def _on_control(self, msg: dict) -> None:
        s = self.state
        if "yaw" in msg:
            s.yaw, s.pitch = float(msg["yaw"]), float(msg.get("pitch", 0.0))
            s.fov = float(msg.get("fov", s.fov))
        for key, cast in (("roi", bool), ("cbr", float), ("lam", float), ("edit_steps", int)):
            if key in msg:
                setattr(s, key, cast(msg[key]))
        if "pause" in msg:
            s.paused = bool(msg["pause"])
        if "step" in msg:
            s.steps += int(msg["step"])

    def _on_fg(self, msg: dict) -> dict:
        if msg.get("cmd") == "ping":
            return {"ok": True}
        s = self.state
        if "snr_db" in msg:
            s.snr_db = float(msg["snr_db"])
        if "channel" in msg:
            s.channel = str(msg["channel"])
        if "doppler_hz" in msg:
            s.doppler_hz = float(msg["doppler_hz"])
        return {"ok": True, "snr_db": s.snr_db, "channel": s.channel, "doppler_hz": s.doppler_hz}

    # ------------------------------------------------------------------ one frame
    def _channel_snr(self) -> float:
        s = self.state
        if s.channel == "rayleigh":  # block fading: exponential power around the mean
            return s.snr_db + 10 * math.log10(max(self.rng.exponential(), 1e-3))
        if s.channel == "trace":
            return s.snr_db + 4 * math.sin(self.sent / 15.0)
        return s.snr_db

    def _subcarriers(self, snr: float, n: int = 48) -> np.ndarray:
        k = np.arange(n)
        ripple = 3 * np.sin(2 * np.pi * k / n * (3 if self.state.channel == "multipath" else 1)
                            + self.sent / 5) if self.state.channel != "awgn" else 0.0
        return (snr + ripple + self.rng.normal(0, 0.7, n)).astype(np.float32)

    def _noisy(self, sym: np.ndarray, snr: float) -> np.ndarray:
        sigma = math.sqrt(10 ** (-snr / 10) / 2)
        n = sym.size
        return (sym + sigma * (self.rng.standard_normal(n) + 1j * self.rng.standard_normal(n))).astype(np.complex64)

    def _stand_in_learned(self, rgb: np.ndarray, snr: float, roi_px: np.ndarray | None) -> np.ndarray:
        h, w = rgb.shape[:2]
        s = self.state
        budget = float(np.clip(s.cbr / 0.04, 0.25, 4.0))
        def degrade(factor: float) -> np.ndarray:
            f = max(1.0, factor)
            small = Image.fromarray(rgb).resize((max(8, int(w / f)), max(4, int(h / f))), Image.BILINEAR)
            return np.asarray(small.resize((w, h), Image.BILINEAR), np.float32)
        base = 1.5 + max(0.0, 14.0 - snr) / 3.0
        out = degrade(base / math.sqrt(budget))
        if roi_px is not None:
            out = np.where(roi_px[..., None], degrade(0.6 * base / math.sqrt(budget)), degrade(2.5 * base))
        out += self.rng.normal(0, 40 * 10 ** (-max(snr, -5) / 20), out.shape)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    def _classical(self, rgb: np.ndarray, cqi: float, snr: float) -> tuple:
        mcs = max([i for i, (req, _, _) in enumerate(MCS_TABLE) if req <= cqi - 1.0] or [0])
        req, bits, rate = MCS_TABLE[mcs]
        t0 = time.perf_counter()
        budget_bytes = self.state.cbr * 3 * rgb.shape[0] * rgb.shape[1] * bits * rate / 8
        h, w = rgb.shape[:2]
        img = Image.fromarray(rgb)
        for scale in (1, 2, 4, 8):  # best (resolution, JPEG quality) within the budget
            small = img if scale == 1 else img.resize((w // scale, h // scale), Image.BILINEAR)
            for quality in (90, 75, 60, 45, 30, 20, 10):
                buf = io.BytesIO()
                small.save(buf, "JPEG", quality=quality)
                if len(buf.getvalue()) <= budget_bytes:
                    break
            if len(buf.getvalue()) <= budget_bytes:
                break
        qp = min(51, int(round(51 - quality / 2)) + 6 * (scale.bit_length() - 1))
        enc_ms = 1e3 * (time.perf_counter() - t0)
        t0 = time.perf_counter()
        ok = snr >= req
        if ok:
            rec = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
            rec = np.asarray(rec.resize((w, h), Image.BILINEAR) if scale > 1 else rec)
        else:  # the cliff: LDPC failed, the codec gets nothing -> per-channel mean image
            rec = np.broadcast_to(rgb.reshape(-1, 3).mean(0).astype(np.uint8), rgb.shape).copy()
        dec_ms = 1e3 * (time.perf_counter() - t0)
        sym = self._noisy(qam(bits, 512, self.rng), snr)
        n_sym = 8 * len(buf.getvalue()) / (bits * rate)
        cbr = n_sym / (3 * rgb.shape[0] * rgb.shape[1])
        return rec, sym, {"mcs": mcs, "qp": qp, "codec": "jpeg-standin", "cbr": cbr,
                          "encode_ms": enc_ms, "decode_ms": dec_ms, "status": "ok" if ok else "cliff"}

    def _metrics(self, ref, rec, vp: Viewport, roi_px) -> dict:
        v = Viewport(vp.yaw, vp.pitch, vp.fov, (128, 128))
        return {"psnr": psnr(ref, rec), "ws_psnr": ws_psnr(ref, rec),
                "viewport_psnr": psnr(render_viewport(ref, v), render_viewport(rec, v)),
                "roi_psnr": masked_psnr(ref, rec, roi_px) if roi_px is not None else float("nan")}

    def publish_frame(self, pub: zmq.Socket, frame_id: int, rgb: np.ndarray) -> None:
        s = self.state
        h, w = rgb.shape[:2]
        if s.yaw is None:
            tp = self.trajectory[frame_id % len(self.trajectory)]
            vp = Viewport(tp.yaw, tp.pitch, s.fov)
        else:
            vp = Viewport(s.yaw, s.pitch, s.fov).clamped()
        roi_px = pixel_mask(roi_grid_mask((h, w), [vp]), (h, w)) if s.roi else None
        snr = self._channel_snr()
        cqi = snr + float(self.rng.normal(0, 0.5))
        common = {"frame_id": frame_id, "snr_true_db": s.snr_db, "cqi_db": cqi, "yaw": vp.yaw,
                  "pitch": vp.pitch, "fov": vp.fov, "roi": s.roi, "t_wall": time.time()}
        t0 = time.perf_counter()
        if self.learned is not None:
            rec, sym, cbr = self.learned(frame_id, rgb, s)
            sym = np.asarray(sym, np.complex64)[:512]
        else:
            rec = self._stand_in_learned(rgb, snr, roi_px)
            sym = self._noisy((self.rng.standard_normal(512) + 1j * self.rng.standard_normal(512)).astype(np.complex64)
                              / np.float32(math.sqrt(2)), snr)
            cbr = s.cbr * float(self.rng.uniform(0.9, 1.02))
        t_enc = 1e3 * (time.perf_counter() - t0)
        row = dict(common, stream="learned", status="ok", cbr=cbr, encode_ms=t_enc, decode_ms=t_enc,
                   air_ms=12.0 + float(self.rng.uniform(0, 3)), lam=s.lam, eta_scale=0.2,
                   edit_steps=s.edit_steps, mcs=None, qp=None, codec=None,
                   **self._metrics(rgb, rec, vp, roi_px))
        ref = rgb if self.send_reference else None
        pub.send_multipart(MetricsMessage(row, rec, sym, self._subcarriers(snr), ref).to_parts())
        if self.classical:
            rec, sym, extra = self._classical(rgb, cqi, snr)
            row = dict(common, stream="classical", air_ms=15.0 + float(self.rng.uniform(0, 3)),
                       lam=None, eta_scale=None, **extra, **self._metrics(rgb, rec, vp, None))
            pub.send_multipart(MetricsMessage(row, rec, sym, self._subcarriers(snr), ref).to_parts())

    # ------------------------------------------------------------------ loop
    def run(self) -> None:
        ctx = zmq.Context.instance()
        metrics, control, fg_ctrl = self.addresses
        pub = ctx.socket(zmq.PUB)
        pub.setsockopt(zmq.SNDHWM, 4)
        pub.setsockopt(zmq.LINGER, 0)
        pub.bind(metrics)
        socks = [pub]
        poller = zmq.Poller()
        ctl = fg = None
        if control:
            ctl = ctx.socket(zmq.PULL)
            ctl.setsockopt(zmq.LINGER, 0)
            ctl.bind(control)
            poller.register(ctl, zmq.POLLIN)
            socks.append(ctl)
        if fg_ctrl:
            fg = ctx.socket(zmq.REP)
            fg.setsockopt(zmq.LINGER, 0)
            fg.bind(fg_ctrl)
            poller.register(fg, zmq.POLLIN)
            socks.append(fg)
        self._ready.set()
        frames = self.source.frames()
        period = 1.0 / self.fps if self.fps > 0 else 0.0
        t_next = time.perf_counter()
        try:
            while not self._stop.is_set():
                timeout = max(0.0, t_next - time.perf_counter())
                events = dict(poller.poll(int(1000 * timeout))) if (ctl or fg) else {}
                if not events and timeout > 0 and not (ctl or fg):
                    time.sleep(timeout)
                if ctl is not None and ctl in events:
                    while True:
                        try:
                            msg = Control.parse(ctl.recv(zmq.NOBLOCK)).as_dict()
                        except zmq.Again:
                            break
                        except MessageError:
                            continue
                        self.commands.append({"to": "tx", **msg})
                        self._on_control(msg)
                if fg is not None and fg in events:
                    try:
                        msg = FlowgraphRequest.parse(fg.recv()).as_dict()
                        reply = self._on_fg(msg)
                    except ValueError as exc:  # MessageError included
                        reply = {"ok": False, "error": str(exc)}
                        msg = {}
                    self.commands.append({"to": "flowgraph", **msg})
                    ok = bool(reply.pop("ok"))
                    fg.send(FlowgraphReply(ok, reply.pop("error", None), reply).to_bytes())
                if time.perf_counter() < t_next:
                    continue
                t_next += period
                if time.perf_counter() > t_next + 1.0:
                    t_next = time.perf_counter() + period  # fell behind: do not burst
                if self.state.paused:
                    if self.state.steps <= 0:
                        continue
                    self.state.steps -= 1
                rgb = next(frames)
                self.publish_frame(pub, self.sent, rgb)
                self.sent += 1
                if self.frames and self.sent >= self.frames:
                    break
        finally:
            for s in socks:
                s.close(0)


def main(argv: list[str] | None = None) -> int:
    from core.link.endpoints import Endpoints
    from core.media.source import parse_resolution
    p = argparse.ArgumentParser(prog="python -m gui.replay", description=__doc__.split("\n")[0])
    p.add_argument("--base-port", type=int, default=5600)
    p.add_argument("--source", default=None)
    p.add_argument("--resolution", default="512x256")
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--snr", type=float, default=10.0)
    p.add_argument("--frames", type=int, default=0, help="0 = forever")
    p.add_argument("--send-reference", action="store_true", help="add the original as a 7th part")
    p.add_argument("--no-control", action="store_true", help="publish metrics only")
    args = p.parse_args(argv)
    ep = Endpoints.from_base(args.base_port)
    link = ReplayLink(ep.metrics, None if args.no_control else ep.control,
                      None if args.no_control else ep.fg_ctrl, args.source,
                      parse_resolution(args.resolution), args.fps, args.snr, args.frames,
                      send_reference=args.send_reference)
    try:
        link.run()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
