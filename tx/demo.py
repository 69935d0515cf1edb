"""``ntscc-xr demo``: the lab demo. With a display (and no ``--headless``) the CLI opens the
viewer (:mod:`gui.viewer`) instead; here ``--headless`` (or no display) runs flowgraph + RX + TX
as processes and writes a report:
``metrics.csv``, ``summary.json``, ``plots.png`` and ``viewports.jpg`` (contact sheet).
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from core.codec.provenance import weights_identity
from core.paths import new_run_folder
from core.session.options import add_arguments as add_session_arguments
from core.session.options import config_values

from .session import Session, SessionConfig

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``ntscc-xr demo``'s options (also the viewer's): the ``demo`` rows of the session options table."""
    add_session_arguments(p, "demo")


def config_from(args: argparse.Namespace, kind: str = "demo") -> SessionConfig:
    """The session of the parsed options; without ``--out`` its folder is a new one of its own."""
    out = Path(args.out) if args.out else new_run_folder(kind)
    return SessionConfig(**{**config_values(args), "out": out, "log_level": getattr(args, "log_level", None)})


def run_headless(cfg: SessionConfig, timeout: float) -> dict:
    session = Session(cfg)
    t0 = time.time()
    try:
        session.start()
        if not session.wait_tx(timeout):
            raise RuntimeError(f"the transmitter did not finish within {timeout:.0f} s")
        tx_code = session.procs["tx"].returncode
        if tx_code != 0:
            tail = (cfg.out / "tx.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the transmitter failed (exit {tx_code}):\n{tail}")
        session.wait_rx(60)
    finally:
        session.stop()
    wall = time.time() - t0
    summary = summarize(cfg, wall, session)
    (cfg.out / "summary.json").write_text(json.dumps(summary, indent=1))
    plot_report(cfg.out)
    contact_sheet(cfg.out)
    return summary


def _read_rows(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


#: The per-frame time budget of a chain by stage (ms, means over the run; the TX stages for the
#: learned chain only):
#: TX capture = the loop's wait for a prefetched source frame (read = the reader thread's own
#: decode + resize, overlapped with the previous encode), prep = ROI and η map, encode, send
#: (side information + PHY frame into ZMQ); RX wait = from the side information's arrival until
#: both parts are in (the PHY path), decode, metrics (PSNR, WS-PSNR, viewport, in a worker that
#: overlaps the next decode); air = TX send -> RX decoded, minus the decode.
BUDGET_STAGES = (("tx_capture", "capture_ms"), ("tx_read", "read_ms"), ("tx_prep", "prep_ms"),
                 ("encode", "encode_ms"), ("tx_send", "send_ms"), ("rx_wait", "wait_ms"),
                 ("decode", "decode_ms"), ("metrics", "metrics_ms"), ("air", "air_ms"))


def _tx_stage_lines(path: Path) -> list[dict]:
    """The TX's per-frame JSON lines of the learned stream from its log."""
    out = []
    if not path.exists():
        return out
    for line in path.read_text(errors="replace").splitlines():
        if '"frame_id"' in line and "{" in line:  # "<time> ... sent {json}" lines
            try:
                out.append(json.loads(line[line.index("{"):]))
            except ValueError:
                pass
    return out


def stage_budget(rows: list[dict], tx_lines: list[dict]) -> dict:
    """Mean ms per stage (None for a stage nobody measured), see :data:`BUDGET_STAGES`."""
    budget = {}
    for name, key in BUDGET_STAGES:
        source = tx_lines if key in ("capture_ms", "read_ms", "prep_ms", "send_ms") else rows
        v = np.array([_num(r.get(key)) for r in source], dtype=float)
        v = v[np.isfinite(v)]
        budget[name] = round(float(v.mean()), 2) if v.size else None
    return budget


def summarize(cfg: SessionConfig, wall: float, session: Session) -> dict:
    rows = _read_rows(cfg.out / "metrics.csv")
    out = {"frames_requested": cfg.frames, "wall_s": round(wall, 2), "resolution": cfg.resolution,
           "channel": cfg.channel, "snr_db": cfg.snr_db, "cbr_budget": cfg.cbr, "roi": cfg.roi,
           "edit_steps": cfg.edit_steps, "flowgraph_restarts": session.restarts, "streams": {}}
    for stream in ("learned", "classical"):
        rs = [r for r in rows if r["stream"] == stream]
        if not rs:
            continue
        def mean(key):
            v = np.array([_num(r[key]) for r in rs])
            v = v[np.isfinite(v)]
            return round(float(v.mean()), 3) if v.size else None
        t = np.array([_num(r["t_wall"]) for r in rs])
        span = float(t.max() - t.min()) if len(t) > 1 else float("nan")
        enc = mean("encode_ms")
        out["streams"][stream] = {
            "frames": len(rs), "ok": sum(r["status"] == "ok" for r in rs),
            "lost": sum(r["status"] == "lost" for r in rs),
            "cliff": sum(r["status"] == "cliff" for r in rs),
            "psnr": mean("psnr"), "ws_psnr": mean("ws_psnr"), "viewport_psnr": mean("viewport_psnr"),
            "viewport_msssim": mean("viewport_msssim"),
            "roi_psnr": mean("roi_psnr"), "cbr": mean("cbr"), "cqi_db": mean("cqi_db"),
            "snr_true_db": mean("snr_true_db"), "encode_ms": enc, "decode_ms": mean("decode_ms"),
            "air_ms": mean("air_ms"), "olla_margin_db": mean("olla_margin_db"),
            "fps_end_to_end": round((len(rs) - 1) / span, 2) if len(rs) > 1 and span > 0 else None,
            "fps_codec": round(1000.0 / (enc + mean("decode_ms")), 2) if enc else None}
        policies = sorted({r.get("policy") for r in rs if r.get("policy")})
        if policies:
            out["streams"][stream]["policy"] = "; ".join(policies)
        # the TX's capture, read, prep and send stages are logged for the learned frame only
        # (the classical worker takes the same captured frame); the RX's stages for both
        tx_lines = _tx_stage_lines(cfg.out / "tx.log") if stream == "learned" else []
        out["streams"][stream]["budget_ms"] = stage_budget(rs, tx_lines)
        if stream == "learned":
            out["model"] = weights_identity()  # a session's TX and RX load the shipped checkpoint
    counters = cfg.out / "rx_counters.json"
    if counters.exists():
        out["rx_counters"] = json.loads(counters.read_text())
    return out


def plot_report(out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = _read_rows(out / "metrics.csv")
    fig, ax = plt.subplots(3, 1, figsize=(11, 8), sharex=True)
    for stream, style in (("learned", "-o"), ("classical", "--s")):
        rs = [r for r in rows if r["stream"] == stream]
        if not rs:
            continue
        f = [int(r["frame_id"]) for r in rs]
        ax[0].plot(f, [_num(r["viewport_psnr"]) for r in rs], style, ms=3, label=f"{stream} viewport PSNR")
        ax[0].plot(f, [_num(r["psnr"]) for r in rs], style, ms=2, alpha=0.4, label=f"{stream} ERP PSNR")
        ax[2].plot(f, [_num(r["cbr"]) for r in rs], style, ms=3, label=f"{stream} CBR")
        if stream == "learned":
            ax[1].plot(f, [_num(r["snr_true_db"]) for r in rs], "-", label="channel SNR (set)")
            ax[1].plot(f, [_num(r["cqi_db"]) for r in rs], ".", label="CQI (estimated)")
    ax[0].set_ylabel("PSNR (dB)"); ax[1].set_ylabel("SNR (dB)"); ax[2].set_ylabel("CBR")
    ax[2].set_xlabel("frame")
    ax[0].set_title("headless demo: per-frame quality, channel and rate", fontsize=10)
    for a in ax:  # legends beside the axes, never over the data
        a.grid(alpha=0.3); a.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout(); fig.savefig(out / "plots.png", dpi=100, bbox_inches="tight"); plt.close(fig)


def _label(tile: np.ndarray, text: str, top: bool = False) -> np.ndarray:
    """``text`` on a dark strip at the bottom (or top) of ``tile``."""
    from PIL import Image, ImageDraw
    img = Image.fromarray(tile)
    draw = ImageDraw.Draw(img)
    y = 0 if top else img.height - 14
    draw.rectangle((0, y, img.width, y + 14), fill=(0, 0, 0))
    draw.text((3, y + 1), text, fill=(255, 255, 255))
    return np.asarray(img)


def contact_sheet(out: Path, max_rows: int = 6) -> None:
    """Rows of [original viewport | learned | classical] for the frames the RX saved, under a
    header that names the columns; each tile carries its frame and viewport PSNR."""
    from core.media.geometry import Viewport, render_viewport
    from core.media.imageio import read_rgb, write_rgb
    frames = out / "frames"
    if not frames.is_dir():
        return
    rows = {(r["stream"], int(r["frame_id"])): r for r in _read_rows(out / "metrics.csv")}
    tiles = []
    for ref_path in sorted(frames.glob("reference_*.jpg"))[:max_rows]:
        fid = int(ref_path.stem.split("_")[1])
        r = rows.get(("learned", fid))
        if r is None:
            continue
        vp = Viewport(_num(r["yaw"]), _num(r["pitch"]), 90.0, (160, 160))
        row = [_label(render_viewport(read_rgb(ref_path), vp), f"frame {fid}")]
        for stream in ("learned", "classical"):
            p = frames / f"{stream}_{fid:05d}.jpg"
            tile = render_viewport(read_rgb(p), vp) if p.exists() else np.zeros_like(row[0])
            s = rows.get((stream, fid))
            psnr = _num(s["viewport_psnr"]) if s else float("nan")
            row.append(_label(tile, f"vp PSNR {psnr:.1f} dB" if np.isfinite(psnr) else "not received"))
        tiles.append(np.concatenate(row, 1))
    if tiles:
        header = np.full((16, tiles[0].shape[1], 3), 0, np.uint8)
        w = tiles[0].shape[1] // 3
        header = np.concatenate([_label(header[:, i * w:(i + 1) * w].copy(), name, top=True)
                                 for i, name in enumerate(("original viewport", "NTSCC+ (learned)",
                                                           "classical"))], 1)
        write_rgb(out / "viewports.jpg", np.concatenate([header, *tiles], 0))


def main(args) -> int:
    cfg = config_from(args)
    if not args.headless:
        log.info("no display found: running the headless demo")
    try:
        summary = run_headless(cfg, args.timeout)
    except RuntimeError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=1))
    for stream, stats in summary.get("streams", {}).items():
        if stats.get("budget_ms"):
            print(f"{stream} per-frame budget (ms): " + ", ".join(
                f"{k} {v:.1f}" for k, v in stats["budget_ms"].items() if v is not None), file=sys.stderr)
    print(f"report written to {cfg.out}/ (summary.json, metrics.csv, plots.png, viewports.jpg)",
          file=sys.stderr)
    return 0
