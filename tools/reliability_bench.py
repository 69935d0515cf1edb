"""Reliability measurements for docs/results/reliability.md.

    .venv/bin/python tools/reliability_bench.py --out runs/reliability [--soak-frames 2000]

1. frame loss 0 / 5 / 20 %: PSNR of the learned chain, lost counts, no stall;
2. flowgraph killed mid-stream: the supervisor restarts it; recovery time = kill -> first
   correctly received frame;
3. soak: N frames headless, resident memory (VmRSS) of TX and RX sampled every second,
   their thread and open-file counts at the start and the end.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tx.demo import run_headless  # noqa: E402
from tx.session import Session, SessionConfig  # noqa: E402


def learned_rows(out: Path) -> list[dict]:
    if not (out / "metrics.csv").exists():
        return []
    return [r for r in csv.DictReader(open(out / "metrics.csv")) if r["stream"] == "learned"]


def proc_stats(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])
    threads = int(next(line for line in status.splitlines() if line.startswith("Threads")).split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return {"rss_kb": rss, "threads": threads, "fds": fds}


def loss_sweep(out: Path, base: int, frames: int) -> list[dict]:
    res = []
    for rate in (0.0, 0.05, 0.2):
        d = out / f"loss_{int(rate * 100)}"
        cfg = SessionConfig(out=d, frames=frames, resolution="512x256", snr_db=10.0,
                            classical=False, drop_rate=rate, base_port=base, device="cpu")
        t0 = time.time()
        run_headless(cfg, timeout=3600)
        rows = learned_rows(d)
        ps = np.array([float(r["psnr"]) for r in rows])
        res.append({"drop_rate": rate, "frames": len(rows),
                    "lost": sum(r["status"] == "lost" for r in rows),
                    "psnr_mean": round(float(ps.mean()), 2),
                    "psnr_ok_frames": round(float(np.mean([float(r["psnr"]) for r in rows if r["status"] == "ok"])), 2),
                    "psnr_lost_frames": (round(float(np.mean([float(r["psnr"]) for r in rows if r["status"] == "lost"])), 2)
                                         if any(r["status"] == "lost" for r in rows) else None),
                    "wall_s": round(time.time() - t0, 1), "stalled": len(rows) != frames})
        print(res[-1], file=sys.stderr)
    return res


def restart_recovery(out: Path, base: int, trials: int = 3) -> list[dict]:
    d = out / "restart"
    cfg = SessionConfig(out=d, frames=0, fps=5.0, resolution="256x128", snr_db=10.0,
                        classical=False, base_port=base, device="cpu")
    s = Session(cfg)
    res = []
    try:
        s.start()
        while len(learned_rows(d)) < 5:
            time.sleep(0.2)
        for _ in range(trials):
            t_kill = time.time()
            s.kill("flowgraph")
            t_detect = time.time()
            s.supervise()  # what the demo loop does every 200 ms
            t_up = time.time()
            while True:
                ok = [float(r["t_wall"]) for r in learned_rows(d)
                      if r["status"] == "ok" and float(r["t_wall"]) > t_up]
                if ok:
                    break
                time.sleep(0.05)
            res.append({"flowgraph_back_s": round(t_up - t_detect, 2),
                        "first_good_frame_after_kill_s": round(min(ok) - t_kill, 2)})
            print(res[-1], file=sys.stderr)
            time.sleep(2)
    finally:
        s.stop()
    return res


def soak(out: Path, base: int, frames: int) -> dict:
    d = out / "soak"
    cfg = SessionConfig(out=d, frames=frames, resolution="256x128", snr_db=10.0, classical=False,
                        base_port=base, device="cpu")
    s = Session(cfg)
    samples = {"tx": [], "rx": []}
    t0 = time.time()
    try:
        s.start()
        while s.procs["tx"].poll() is None:
            for name in ("tx", "rx"):
                try:
                    samples[name].append((time.time() - t0, proc_stats(s.procs[name].pid)))
                except (FileNotFoundError, StopIteration, ProcessLookupError):
                    pass
            s.supervise()
            time.sleep(1.0)
        s.wait_rx(120)
    finally:
        s.stop()
    rows = learned_rows(d)
    report = {"frames": len(rows), "wall_s": round(time.time() - t0, 1),
              "ok": sum(r["status"] == "ok" for r in rows)}
    for name, xs in samples.items():
        if len(xs) < 4:
            continue
        # growth measured after warm-up (model load, first allocations): 10 % in -> end
        warm = xs[len(xs) // 10]
        last = xs[-1]
        report[name] = {"rss_mb_after_warmup": round(warm[1]["rss_kb"] / 1024, 1),
                        "rss_mb_end": round(last[1]["rss_kb"] / 1024, 1),
                        "rss_growth_pct": round(100 * (last[1]["rss_kb"] / warm[1]["rss_kb"] - 1), 2),
                        "threads_start_end": [warm[1]["threads"], last[1]["threads"]],
                        "fds_start_end": [warm[1]["fds"], last[1]["fds"]]}
    return report


def write_markdown(result: dict, path: Path) -> None:
    """docs/results/reliability.md from the measured JSON (plus the soak, if measured earlier)."""
    lines = ["# Reliability of the link (issue 7)", "",
             "Produced by `.venv/bin/python tools/reliability_bench.py --out runs/reliability "
             "--only loss,restart` (loss sweep, restarts) and `--only soak --soak-frames 2000` (soak), "
             "on this 2-core machine, learned chain only, CPU. JSON: `reliability.json`, "
             "`reliability_soak.json`.", ""]
    if "loss" in result:
        lines += ["## Frame loss (TX `--drop-rate`: the PHY part of a frame is not sent; the RX "
                  "decodes it from erasures)", "",
                  "| drop rate | frames | lost | mean PSNR | PSNR of received frames | PSNR of lost frames | stalled |",
                  "|---|---|---|---|---|---|---|"]
        for r in result["loss"]:
            lines.append(f"| {r['drop_rate']:.0%} | {r['frames']} | {r['lost']} | {r['psnr_mean']} | "
                         f"{r['psnr_ok_frames']} | {r['psnr_lost_frames'] or '—'} | {'yes' if r['stalled'] else 'no'} |")
        lines.append("")
    if "restart" in result:
        lines += ["## Flowgraph killed mid-stream (SIGKILL), restarted by the session supervisor", "",
                  "| trial | flowgraph answering again (s) | first correctly received frame after the kill (s) |",
                  "|---|---|---|"]
        for i, r in enumerate(result["restart"], 1):
            lines.append(f"| {i} | {r['flowgraph_back_s']} | {r['first_good_frame_after_kill_s']} |")
        lines += ["", "TX and RX restarts: `tests/test_reliability.py::test_rx_and_tx_restart` "
                  "(the stream resumes; the RX recognises a restarted TX by its session nonce).", ""]
    if "soak" in result:
        s = result["soak"]
        lines += ["## Soak", "", f"{s['frames']} frames ({s['ok']} decoded from their PHY frames) in "
                  f"{s['wall_s']} s, 256x128, AWGN 10 dB.", "",
                  "| process | RSS after warm-up (MB) | RSS at the end (MB) | growth | threads start/end | open fds start/end |",
                  "|---|---|---|---|---|---|"]
        for name in ("tx", "rx"):
            if name in s:
                p = s[name]
                lines.append(f"| {name} | {p['rss_mb_after_warmup']} | {p['rss_mb_end']} | "
                             f"{p['rss_growth_pct']} % | {p['threads_start_end']} | {p['fds_start_end']} |")
        lines.append("")
    lines += ["## Fuzzing and security (tests, run by `make test`)", "",
              "- `tests/test_rx_robustness.py`: 10 000 random/mutated/truncated/oversized/NaN/duplicate "
              "messages into the receiver's PHY and side inputs; no crash, no hang, a valid frame "
              "decodes afterwards; lost frames decode from erasures.",
              "- `tests/test_tx_robustness.py`: 10 000 malformed messages into the transmitter's "
              "control and CQI-feedback inputs; valid commands still take effect afterwards.",
              "- `tests/test_flowgraph_link.py::test_flowgraph_inputs_survive_fuzzing`: 10 000 random/"
              "mutated/truncated messages into the flowgraph's data input and 2 000 malformed "
              "requests into its control socket; every request answered, a frame still crosses the link.",
              "- `tests/test_frame_fuzz.py`: hypothesis, 3 000 examples per property, on every wire parser.",
              "- `tests/test_security.py`: a non-loopback bind is refused without `--allow-remote`; a "
              "CURVE-protected socket delivers from a key holder and drops a plain client and a "
              "client with an unknown key.", ""]
    path.write_text("\n".join(lines))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/reliability")
    ap.add_argument("--loss-frames", type=int, default=40)
    ap.add_argument("--soak-frames", type=int, default=2000)
    ap.add_argument("--base-port", type=int, default=18600)
    ap.add_argument("--only", default="loss,restart,soak")
    ap.add_argument("--markdown", default=None, help="also write this markdown report")
    args = ap.parse_args()
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    result = {}
    parts = args.only.split(",")
    if "loss" in parts:
        result["loss"] = loss_sweep(out, args.base_port, args.loss_frames)
    if "restart" in parts:
        result["restart"] = restart_recovery(out, args.base_port + 20)
    if "soak" in parts:
        result["soak"] = soak(out, args.base_port + 40, args.soak_frames)
    (out / "reliability.json").write_text(json.dumps(result, indent=1))
    if args.markdown:
        soak_json = Path(args.markdown).with_name("reliability_soak.json")
        if "soak" not in result and soak_json.exists():
            result["soak"] = json.loads(soak_json.read_text()).get("soak", {})
        write_markdown(result, Path(args.markdown))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
