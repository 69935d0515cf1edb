"""``ntscc-xr link-test``: random complex Gaussian frames through the real GNU Radio OFDM link.

Starts the flowgraph process (``/usr/bin/python3 -m flowgraphs.ofdm_link``), sends N frames
over ZeroMQ, collects the received frames and prints one JSON object:

``frames_sent, frames_received, frames_lost`` -- frames handed to / returned by the flowgraph;
``snr_set_db`` -- the configured average SNR (per resource element, Es/N0);
``snr_measured_db`` -- from the equalised symbols' error against the sent symbols: per frame,
the error SNR of each subcarrier (small-sample bias removed) averaged linearly over the
subcarriers, then the mean over frames in dB. In a flat channel this is the plain
10 log10(|x|^2 / |x^ - x|^2); in a frequency-selective one it is the mean per-RE SNR, the
quantity the CQI estimates;
``snr_mse_db`` -- the plain ratio over all payload symbols (dominated by faded carriers with
the unbiased equaliser);
``cqi_db`` -- mean of the receiver's pilot-based per-frame SNR estimates;
``snr_true_db`` -- mean of the SNR the emulator applied to each frame (instantaneous for fading);
``throughput_msps`` -- channel samples through the flowgraph per second (frames kept in flight
back to back), ``payload_msps`` the payload symbols per second;
``latency_ms_p50 / p95`` -- TX send to RX receive, per frame.

No torch import: this runs fine without the learned model.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from core.link.frame import STREAM_TEST, FrameError, RxFrame, TxFrame, time_meta
from core.phy.ofdm import OfdmConfig
from flowgraphs.launcher import FlowgraphError, FlowgraphProcess
from flowgraphs.options import add_flowgraph_arguments, to_argv

WARMUP_ID_BASE = 0xFFFF0000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=100, help="frames to send (default: 100)")
    parser.add_argument("--symbols-per-frame", type=int, default=20000,
                        help="complex payload symbols per frame (default: 20000)")
    parser.add_argument("--json", action="store_true",
                        help="print only the JSON report (no progress bar)")
    parser.add_argument("--window", type=int, default=4,
                        help="frames in flight at once (default: 4)")
    parser.add_argument("--frame-timeout", type=float, default=5.0,
                        help="seconds without any received frame before the rest count as lost")
    parser.add_argument("--data-seed", type=int, default=1, help="seed of the random symbols")
    parser.add_argument("--no-per-frame", action="store_true",
                        help="leave the per-frame lists out of the JSON")
    add_flowgraph_arguments(parser)
    # link-test starts its own flowgraph: free ports unless told otherwise
    parser.set_defaults(base_port=0)
    action = parser._option_string_actions.get("--base-port")  # noqa: SLF001 - adjust help only
    if action is not None:
        action.help = ("flowgraph ports: frames in = base, out = base+1, control = base+2 "
                       "(default: 0 = free ports)")


def carrier_of_payload(cfg: OfdmConfig, n_payload: int) -> np.ndarray:
    """Occupied-carrier index of each payload symbol (the PHY's mapping order)."""
    n_h = cfg.n_header_symbols
    dmask = ~cfg.pilot_mask(n_h + cfg.n_data_symbols(n_payload))[n_h:]
    return np.nonzero(dmask)[1][:n_payload]


def frame_snr(x: np.ndarray, xh: np.ndarray, carriers: np.ndarray,
              n_carriers: int) -> tuple[float, float, float, float]:
    """Per-frame (snr_percarrier_db, snr_mse_db, signal_energy, error_energy)."""
    e = np.abs(xh - x) ** 2
    s = np.abs(x) ** 2
    es = np.bincount(carriers, weights=e, minlength=n_carriers)
    ss = np.bincount(carriers, weights=s, minlength=n_carriers)
    nk = np.bincount(carriers, minlength=n_carriers)
    used = nk > 1
    # (n-1)/n removes the small-sample bias of 1/mean(|e|^2) for Gaussian errors
    per = (nk[used] - 1) / nk[used] * ss[used] / np.maximum(es[used], 1e-30)
    snr_pc = 10 * np.log10(np.mean(per)) if per.size else float("nan")
    snr_mse = 10 * np.log10(s.sum() / max(e.sum(), 1e-30)) if x.size else float("nan")
    return float(snr_pc), float(snr_mse), float(s.sum()), float(e.sum())


def _clean(obj):
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _pct(values, q) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def _mean(values) -> float | None:
    v = [x for x in values if x is not None and np.isfinite(x)]
    return float(np.mean(v)) if v else None


def _open_sockets(args: argparse.Namespace, fg: FlowgraphProcess):
    """(context, PUSH into the flowgraph, PULL out of it), CURVE-authenticated if asked."""
    import zmq

    from core.link.security import CurveKeys, connect
    ctx = zmq.Context()
    tx, rx = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
    for sock in (tx, rx):
        sock.setsockopt(zmq.LINGER, 0)
    keys = None
    if getattr(args, "curve_keys", None):
        from pathlib import Path
        keys = CurveKeys(Path(args.curve_keys))
    connect(tx, fg.endpoints["in"], keys)
    connect(rx, fg.endpoints["out"], keys)
    return ctx, tx, rx


def _warm_up(tx, rx, rng: np.random.Generator, timeout_s: float = 30.0) -> int:
    """Send short frames until one comes back (all sockets connected, the flowgraph scheduling),
    then drain the late ones; returns how many warm-up frames were sent."""
    t0 = time.monotonic()
    sent = 0
    while time.monotonic() - t0 < timeout_s:
        x = (rng.standard_normal(2000) + 1j * rng.standard_normal(2000)) / np.sqrt(2)
        tx.send(TxFrame(WARMUP_ID_BASE + sent, x, STREAM_TEST, meta=time_meta()).to_bytes())
        sent += 1
        t1 = time.monotonic()
        while time.monotonic() - t1 < 1.5:
            if rx.poll(100) and RxFrame.from_bytes(rx.recv()).frame_id >= WARMUP_ID_BASE:
                while rx.poll(300):  # drain late warm-up frames
                    rx.recv()
                return sent
    raise FlowgraphError(f"the flowgraph returned no frame within {timeout_s:.0f} s of warm-up")


class _Measurement:
    """The frames in flight and what came back of them (one record per received test frame)."""

    def __init__(self, rx, cfg: OfdmConfig, n_payload: int, progress=None):
        self.rx, self.cfg, self.progress = rx, cfg, progress
        self.carriers = carrier_of_payload(cfg, n_payload)
        self.sent: dict[int, np.ndarray] = {}
        self.records: dict[int, dict] = {}
        self.in_flight: set[int] = set()
        self.t_first = self.t_last_rx = time.monotonic()
        self.bad = 0

    def sending(self, frame_id: int, x: np.ndarray) -> None:
        self.sent[frame_id] = x
        self.in_flight.add(frame_id)

    def receive(self, timeout_ms: int) -> bool:
        """Take one frame off the socket (False: none within the timeout)."""
        if not self.rx.poll(timeout_ms):
            return False
        raw = self.rx.recv()
        t_rx = time.time_ns()
        try:
            f = RxFrame.from_bytes(raw)
        except FrameError:
            self.bad += 1
            return True
        if f.stream != STREAM_TEST or f.frame_id not in self.sent or f.frame_id in self.records:
            return True
        self.t_last_rx = time.monotonic()
        x = self.sent.pop(f.frame_id)
        self.in_flight.discard(f.frame_id)
        # the PHY delivers in order: anything sent before this frame and still missing is lost
        self.in_flight.difference_update([i for i in self.in_flight if i < f.frame_id])
        self.records[f.frame_id] = self._record(f, x, t_rx)
        if self.progress is not None and "length_mismatch" not in self.records[f.frame_id]:
            self.progress.update(1)
        return True

    def _record(self, f: RxFrame, x: np.ndarray, t_rx: int) -> dict:
        if f.symbols.size != x.size:
            return {"frame_id": f.frame_id, "length_mismatch": True}
        snr_pc, snr_mse, se, ee = frame_snr(x, f.symbols, self.carriers, self.cfg.n_occupied)
        return {
            "frame_id": f.frame_id, "snr_measured_db": snr_pc, "snr_mse_db": snr_mse,
            "signal": se, "error": ee, "cqi_db": float(f.cqi_db),
            "snr_true_db": float(f.snr_true_db),
            "latency_ms": (t_rx - f.t_tx_ns) / 1e6 if f.t_tx_ns else None,
            "subcarrier_snr_min_db": float(np.min(f.subcarrier_snr_db)) if f.subcarrier_snr_db.size else None,
        }


def _stream(tx, m: _Measurement, rng: np.random.Generator, args: argparse.Namespace) -> None:
    """Send the test frames with at most ``args.window`` in flight; collect what returns."""
    K, timeout_ms = args.symbols_per_frame, int(args.frame_timeout * 1000)
    for i in range(args.frames):
        # unit-power complex Gaussian, generated in float32 (half the cost of complex128)
        x = rng.standard_normal(2 * K, dtype=np.float32).view(np.complex64)
        x *= np.float32(np.sqrt(0.5))
        m.sending(i, x)
        tx.send(TxFrame(i, x, STREAM_TEST, meta=time_meta()).to_bytes())
        while len(m.in_flight) >= args.window:
            if not m.receive(timeout_ms):
                m.in_flight.clear()  # nothing came back: count those as lost, go on
                break
        while m.receive(0):
            pass
    while m.in_flight and m.receive(timeout_ms):
        pass


def run_link_test(args: argparse.Namespace, fg: FlowgraphProcess, progress=None) -> dict:
    cfg = OfdmConfig()
    ctx, tx, rx = _open_sockets(args, fg)
    rng = np.random.default_rng(args.data_seed)
    try:
        warmup_frames = _warm_up(tx, rx, rng)
        m = _Measurement(rx, cfg, args.symbols_per_frame, progress)
        _stream(tx, m, rng, args)
        try:
            fg_stats = fg.control({"cmd": "get"})
        except Exception as exc:  # noqa: BLE001 - the report still stands without it
            fg_stats = {"error": str(exc)}
    finally:
        tx.close(0)
        rx.close(0)
        ctx.term()
    return _report(args, cfg, m, warmup_frames, fg_stats)


def _report(args: argparse.Namespace, cfg: OfdmConfig, m: _Measurement, warmup_frames: int,
            fg_stats: dict) -> dict:
    K, N = args.symbols_per_frame, args.frames
    recs = [m.records[k] for k in sorted(m.records) if not m.records[k].get("length_mismatch")]
    n_rx = len(recs)
    elapsed = max(m.t_last_rx - m.t_first, 1e-9)
    lat = [r["latency_ms"] for r in recs if r["latency_ms"] is not None]
    sig = sum(r["signal"] for r in recs)
    err = sum(r["error"] for r in recs)
    spf = cfg.frame_samples(K)
    report = {
        "frames_sent": N,
        "frames_received": n_rx,
        "frames_lost": N - n_rx,
        "warmup_frames": warmup_frames,  # sent before the measurement (more than one if the first was slow)
        "channel": args.channel,
        "snr_set_db": args.snr,
        "snr_measured_db": _mean([r["snr_measured_db"] for r in recs]),
        "snr_mse_db": float(10 * np.log10(sig / err)) if err > 0 else None,
        "cqi_db": _mean([r["cqi_db"] for r in recs]),
        "snr_true_db": _mean([r["snr_true_db"] for r in recs]),
        "throughput_msps": n_rx * spf / elapsed / 1e6,
        "payload_msps": n_rx * K / elapsed / 1e6,
        "latency_ms_p50": _pct(lat, 50),
        "latency_ms_p95": _pct(lat, 95),
        "cfo_hz": args.cfo,
        "timing_offset": args.timing_offset,
        "doppler_hz": args.doppler if args.channel in ("rayleigh", "rician") else None,
        "multipath": bool(args.multipath or args.channel == "multipath"),
        "equaliser": args.equaliser,
        "symbols_per_frame": K,
        "samples_per_frame": spf,
        "phy_overhead": 1.0 - K / spf,
        "window": args.window,
        "elapsed_s": elapsed,
        "length_mismatches": sum(1 for r in m.records.values() if r.get("length_mismatch")),
        "bad_messages": m.bad,
        "flowgraph": {k: fg_stats.get(k) for k in ("tx", "rx", "state") if k in fg_stats},
    }
    if not args.no_per_frame:
        report["per_frame"] = {k: [r[k] for r in recs] for k in
                               ("frame_id", "snr_true_db", "cqi_db", "snr_measured_db",
                                "snr_mse_db", "latency_ms")}
    return report


def main(args: argparse.Namespace) -> int:
    progress = None
    if not args.json:
        try:
            from tqdm import tqdm
            progress = tqdm(total=args.frames, desc=f"link-test {args.channel} {args.snr:g} dB",
                            unit="frame", file=sys.stderr)
        except ImportError:
            progress = None
    fg = FlowgraphProcess(to_argv(args))
    try:
        fg.start()
    except FlowgraphError as exc:
        print(f"ntscc-xr link-test: {exc}", file=sys.stderr)
        return exc.returncode or 2
    try:
        report = run_link_test(args, fg, progress)
    except FlowgraphError as exc:
        print(f"ntscc-xr link-test: {exc}", file=sys.stderr)
        return 2
    finally:
        if progress is not None:
            progress.close()
        fg.stop()
    print(json.dumps(_clean(report), indent=None if args.json else 2))
    return 0
