#!/usr/bin/env python3
"""Measure issue 2's "done when" with ``ntscc-xr link-test`` and write docs/results/link.md.

Runs every configuration through the real flowgraph (each one its own ``link-test`` process,
exactly the command printed in the report), keeps the JSON outputs in docs/results/link/,
plots the per-frame SNR under fading, and writes the markdown table.

    .venv/bin/python tools/link_results.py            # all configurations
    .venv/bin/python tools/link_results.py --bench    # + throughput benchmark

``--bench`` pauses the background training process (pid in runs/train.pid, checked to be an
``ntscc-xr train``) with SIGSTOP for the few seconds of the benchmark and always resumes it
with SIGCONT (finally-block), so that the 2-core machine measures the flowgraph, not the
training.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from core.machine import cpu_description

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "results"
CLI = [str(REPO / ".venv" / "bin" / "ntscc-xr")]

CONFIGS = [
    ("awgn_0db", "AWGN 0 dB", ["--channel", "awgn", "--snr", "0", "--frames", "100"]),
    ("awgn_5db", "AWGN 5 dB", ["--channel", "awgn", "--snr", "5", "--frames", "100"]),
    ("awgn_10db", "AWGN 10 dB", ["--channel", "awgn", "--snr", "10", "--frames", "100"]),
    ("awgn_20db", "AWGN 20 dB", ["--channel", "awgn", "--snr", "20", "--frames", "100"]),
    ("multipath_cfo_timing_15db", "3-tap multipath + CFO 3 kHz + timing 5.6 samples, 15 dB",
     ["--channel", "multipath", "--snr", "15", "--cfo", "3000", "--timing-offset", "5.6",
      "--frames", "100"]),
    ("rayleigh_10hz_15db", "Rayleigh, Doppler 10 Hz, 15 dB",
     ["--channel", "rayleigh", "--snr", "15", "--doppler", "10", "--frames", "100"]),
    ("rayleigh_200hz_15db", "Rayleigh, Doppler 200 Hz, 15 dB",
     ["--channel", "rayleigh", "--snr", "15", "--doppler", "200", "--frames", "100"]),
    ("trace_10db", "COST2100-like trace (900 frames), mean 10 dB",
     ["--channel", "trace", "--snr", "10", "--frames", "900"]),
]
BENCH = [
    ("bench_awgn_200k", "throughput, AWGN 20 dB, 200 000-symbol frames",
     ["--channel", "awgn", "--snr", "20", "--frames", "60", "--symbols-per-frame", "200000",
      "--window", "3", "--no-per-frame"]),
    ("bench_awgn_20k", "throughput, AWGN 20 dB, 20 000-symbol frames",
     ["--channel", "awgn", "--snr", "20", "--frames", "300", "--no-per-frame"]),
    ("bench_awgn_200k_lean", "throughput, AWGN 20 dB, 200 000-symbol frames, --channel-impl lean",
     ["--channel", "awgn", "--snr", "20", "--frames", "60", "--symbols-per-frame", "200000",
      "--window", "3", "--no-per-frame", "--channel-impl", "lean"]),
    ("bench_awgn_20k_lean", "throughput, AWGN 20 dB, 20 000-symbol frames, --channel-impl lean",
     ["--channel", "awgn", "--snr", "20", "--frames", "300", "--no-per-frame",
      "--channel-impl", "lean"]),
    ("bench_rayleigh_200k", "throughput, Rayleigh 100 Hz, 15 dB, 200 000-symbol frames",
     ["--channel", "rayleigh", "--doppler", "100", "--snr", "15", "--frames", "30",
      "--symbols-per-frame", "200000", "--window", "3", "--no-per-frame"]),
]


def run(name: str, argv: list[str]) -> dict:
    cmd = CLI + ["link-test", *argv, "--json"]
    t0 = time.time()
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"{name}: exit {out.returncode}\n{out.stderr[-2000:]}")
    rep = json.loads(out.stdout)
    rep["_command"] = "ntscc-xr " + " ".join(shlex.quote(a) for a in ["link-test", *argv, "--json"])
    rep["_wall_s"] = time.time() - t0
    rep["_loadavg_before"] = os.getloadavg()
    (OUT / "link").mkdir(parents=True, exist_ok=True)
    (OUT / "link" / f"{name}.json").write_text(json.dumps(rep, indent=1))
    print(f"{name}: lost {rep['frames_lost']}, measured {rep['snr_measured_db']:.2f} dB, "
          f"cqi {rep['cqi_db']:.2f} dB, {rep['throughput_msps']:.2f} Msps", file=sys.stderr)
    return rep


@contextmanager
def training_paused():
    """SIGSTOP the background training for the benchmark; SIGCONT it whatever happens."""
    pid = None
    for pid_file in [REPO / "runs" / "train.pid", *sorted((REPO / "runs").glob("*/train.pid"))]:
        try:  # tools/train_background.sh writes runs/train_small/train.pid
            cand = int(pid_file.read_text().split()[0])
            if b"train" in Path(f"/proc/{cand}/cmdline").read_bytes():
                pid = cand
                break
        except (OSError, ValueError, IndexError):
            continue
    try:
        if pid:
            os.kill(pid, signal.SIGSTOP)
            print(f"paused training pid {pid}", file=sys.stderr)
            time.sleep(1.0)
        yield pid
    finally:
        if pid:
            os.kill(pid, signal.SIGCONT)
            print(f"resumed training pid {pid}", file=sys.stderr)


def plot(reps: dict) -> str | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names = [n for n in ("rayleigh_10hz_15db", "rayleigh_200hz_15db", "trace_10db") if n in reps]
    if not names:
        return None
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 2.8 * len(names)), squeeze=False)
    for ax, n in zip(axes[:, 0], names):
        pf = reps[n]["per_frame"]
        ax.plot(pf["frame_id"], pf["snr_true_db"], "k-", lw=1.2, label="applied by the emulator")
        ax.plot(pf["frame_id"], pf["cqi_db"], "C0.", ms=4, label="receiver CQI (pilots)")
        ax.plot(pf["frame_id"], pf["snr_measured_db"], "C3x", ms=3,
                label="measured from equalised symbols")
        ax.set_title(dict((c[0], c[1]) for c in CONFIGS)[n], fontsize=10)
        ax.set_ylabel("SNR (dB)")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("frame")
    axes[0, 0].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    path = OUT / "link_fading.png"
    fig.savefig(path, dpi=110)
    return path.name


def fmt(v, nd=2):
    return "–" if v is None else f"{v:.{nd}f}"


def write_md(reps: dict, bench: dict, png: str | None) -> None:
    lines = ["# PHY link: measured figures (issue 2)", "",
             f"Measured on {platform.node()} ({cpu_description()}; no GPU), "
             f"{time.strftime('%Y-%m-%d')}, with `tools/link_results.py`. Every row is one "
             "`ntscc-xr link-test` run through the real GNU Radio 3.10 flowgraph "
             "(`/usr/bin/python3 -m flowgraphs.ofdm_link`) over ZeroMQ; the JSON of each run is "
             "in [`link/`](link/). Frames: 20 000 random complex Gaussian symbols "
             "(33 408 channel samples incl. preamble, header, pilots, CP, guards) unless said.",
             "", "SNR is per resource element (Es/N0). `measured` = from the equalised symbols' "
             "error against the sent ones (per subcarrier, averaged); `MSE` = the plain "
             "10·log10(|x|²/|x̂−x|²) over all symbols; `CQI` = the receiver's pilot-based "
             "estimate; `applied` = what the emulator applied to each frame (instantaneous "
             "for fading). All values are means over frames.", "",
             "| configuration | frames lost | set | applied | measured | MSE | CQI | "
             "|measured−set| | |CQI−measured| | latency p50 / p95 (ms) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, label, _ in CONFIGS:
        r = reps.get(name)
        if r is None:
            continue
        dm = None if r["snr_measured_db"] is None else abs(r["snr_measured_db"] - r["snr_set_db"])
        dc = None if r["cqi_db"] is None or r["snr_measured_db"] is None else abs(r["cqi_db"] - r["snr_measured_db"])
        lines.append(f"| {label} | {r['frames_lost']}/{r['frames_sent']} | {fmt(r['snr_set_db'], 1)} | "
                     f"{fmt(r['snr_true_db'])} | {fmt(r['snr_measured_db'])} | {fmt(r['snr_mse_db'])} | "
                     f"{fmt(r['cqi_db'])} | {fmt(dm)} | {fmt(dc)} | "
                     f"{fmt(r['latency_ms_p50'], 1)} / {fmt(r['latency_ms_p95'], 1)} |")
    lines += ["", "## Issue 2 \"done when\" against these runs", ""]
    chk = lambda ok: "yes" if ok else "**NO**"  # noqa: E731
    for name in ("awgn_0db", "awgn_5db", "awgn_10db", "awgn_20db"):
        r = reps.get(name)
        if r:
            dm = abs(r["snr_measured_db"] - r["snr_set_db"])
            dc = abs(r["cqi_db"] - r["snr_measured_db"])
            lost_ok = r["frames_lost"] == 0 or r["snr_set_db"] < 5
            lines.append(f"- AWGN {r['snr_set_db']:g} dB, {r['frames_sent']} frames: |measured − set| = "
                         f"{dm:.2f} dB ≤ 1: {chk(dm <= 1)}; |CQI − measured| = {dc:.2f} dB ≤ 1: "
                         f"{chk(dc <= 1)}; lost {r['frames_lost']}"
                         + (" (0 required at ≥ 5 dB): " + chk(lost_ok) if r["snr_set_db"] >= 5 else ""))
    r = reps.get("multipath_cfo_timing_15db")
    if r:
        dm = abs(r["snr_measured_db"] - r["snr_set_db"])
        lines.append(f"- 3-tap multipath + CFO + timing offset at 15 dB: lost {r['frames_lost']} "
                     f"(0 required): {chk(r['frames_lost'] == 0)}; |measured − set| = {dm:.2f} dB ≤ 2: "
                     f"{chk(dm <= 2)}")
    for name in ("rayleigh_10hz_15db", "rayleigh_200hz_15db", "trace_10db"):
        r = reps.get(name)
        if r and r.get("per_frame"):
            import numpy as np
            t = np.array(r["per_frame"]["snr_true_db"], float)
            c = np.array(r["per_frame"]["cqi_db"], float)
            corr = float(np.corrcoef(t, c)[0, 1]) if t.size > 2 and t.std() > 0 else float("nan")
            lines.append(f"- {dict((x[0], x[1]) for x in CONFIGS)[name]}: ran to the end, "
                         f"{r['frames_received']}/{r['frames_sent']} frames received; per-frame "
                         f"applied SNR spans {t.min():.1f} .. {t.max():.1f} dB and the receiver's "
                         f"CQI follows it (correlation {corr:.3f}, median |CQI − applied| "
                         f"{float(np.median(np.abs(c - t))):.2f} dB)")
    if bench:
        best = max(r["throughput_msps"] for r in bench.values() if r)
        lines.append(f"- Flowgraph throughput ≥ 5 Msps: best {best:.2f} Msps: {chk(best >= 5)} "
                     "(table below)")
    lines.append("- USRP path: `tests/test_flowgraph_link.py::test_usrp_without_device_fails_clearly` "
                 "(exit code 3, \"no USRP found ... run 'uhd_find_devices' ... --usrp-args\")")
    lines += ["", "Reading the figures:", "",
              "- The unbiased equaliser (x̂ = Y/Ĥ) keeps x̂ = x + noise with per-RE noise "
              "N0/|H|². In the 3-tap channel (deepest in-band notch −17 dB) the per-subcarrier "
              "SNRs average to the set SNR, which is what `measured` and the CQI report; the "
              "plain MSE ratio is dominated by the notch carriers and is lower (the viewer gets "
              "the per-subcarrier SNR with every frame).",
              "- Rayleigh at 10 Hz: a frame (6.7 ms of nominal air time at 5 Msps) sees an "
              "almost constant gain, so applied, CQI and measured SNR agree frame by frame, "
              "except in the deepest fades. At 200 Hz the gain changes within a frame: the "
              "frame-average SNR (applied, CQI) stays near 15 dB while the error of the "
              "equalised symbols is dominated by the faded parts. Frames lost under Rayleigh "
              "are frames whose preamble/header fell into a deep fade.",
              "- Latency is TX send → RX receive with `--window` frames in flight, so it "
              "includes queueing behind the frames ahead; with `--window 1` a 5 000-symbol "
              "frame takes about 3 ms.",
              "- These runs shared the 2 cores with other sessions' jobs (training, test "
              "suites); `load avg before` in the throughput table says how busy the machine was."]
    if bench:
        lines += ["", "## Throughput", "",
                  "Flowgraph throughput = channel samples of the received frames per second, "
                  "with frames kept back to back (`--window` frames in flight), end to end: "
                  "link-test's own frame generation and checking run on the same 2 cores. "
                  "The background training was paused (SIGSTOP/SIGCONT) during these runs only.",
                  "", "| benchmark | frames | throughput (Msps) | payload (Msym/s) | load avg before |",
                  "|---|---|---|---|---|"]
        for name, label, _ in BENCH:
            r = bench.get(name)
            if r:
                lines.append(f"| {label} | {r['frames_received']}/{r['frames_sent']} | "
                             f"{r['throughput_msps']:.2f} | {r['payload_msps']:.2f} | "
                             f"{r['_loadavg_before'][0]:.2f} |")
    if png:
        lines += ["", "## Per-frame SNR under fading", "", f"![per-frame SNR]({png})", ""]
    lines += ["", "## Commands", "", "```"]
    for name, _, _ in CONFIGS + BENCH:
        r = reps.get(name) or bench.get(name)
        if r:
            lines.append(r["_command"])
    lines += ["```", ""]
    lines += ["## JSON outputs", ""]
    for name, _, _ in CONFIGS + BENCH:
        r = reps.get(name) or bench.get(name)
        if r:
            slim = {k: v for k, v in r.items() if k not in ("per_frame", "flowgraph") and not k.startswith("_")}
            lines += [f"`{name}` (full output with per-frame lists: [link/{name}.json](link/{name}.json))",
                      "", "```json", json.dumps(slim), "```", ""]
    # hand-written findings (paired experiments, not reproduced by this script) stay in their
    # own file, so that regenerating the table does not drop them
    notes = OUT / "link_notes.md"
    if notes.exists():
        lines += ["", notes.read_text().rstrip("\n"), ""]
    (OUT / "link.md").write_text("\n".join(lines))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", action="store_true", help="also run the throughput benchmark")
    ap.add_argument("--only", nargs="*", help="configuration names to (re)run")
    ap.add_argument("--md-only", action="store_true", help="rewrite link.md from saved JSON")
    args = ap.parse_args()
    reps, bench = {}, {}
    for name, _, argv in CONFIGS + BENCH:
        p = OUT / "link" / f"{name}.json"
        if p.exists():
            (bench if name.startswith("bench") else reps)[name] = json.loads(p.read_text())
    if not args.md_only:
        for name, _, argv in CONFIGS:
            if args.only is None or name in args.only:
                reps[name] = run(name, argv)
        if args.bench:
            with training_paused():
                for name, _, argv in BENCH:
                    if args.only is None or name in args.only:
                        bench[name] = run(name, argv)
    png = plot(reps)
    write_md(reps, bench, png)
    print(f"wrote {OUT / 'link.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
