#!/usr/bin/env python3
"""Where the CPU of a live run goes: each process's share of the cores and its CPU per frame.

    .venv/bin/python tools/live_cpu_split.py [--json docs/results/speed/live_cpu_split.json] -- \
        .venv/bin/ntscc-xr demo --headless --frames 300 --resolution 512x256 --no-classical \
        --out runs/live_cpu_split

Runs the demo command after ``--`` and reads ``/proc/<pid>/stat`` of the command and every
process below it (TX, RX, the GNU Radio flowgraph, the supervisors) once a second. The shares
are taken over the middle third of the run, where every process is streaming (start-up, model
loading and the final report fall outside it); a process that started or ended inside that
window is left out with a warning. With the run's metrics.csv (the demo's ``--out``), the frame
rate is counted over the same window, and each process's CPU per frame is its share divided by
it (with both chains: the slower chain's rate, so the CPU of one learned plus one classical
frame). The frame rate a two-core machine can reach is bounded by both: the busiest process (one
thread of codec work cannot use two cores) and the sum of all of them.

Linux only (``/proc``). Run it on an otherwise idle machine: other jobs take cores from the
processes measured and their shares drop with it.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.machine import cpu_description  # noqa: E402

log = logging.getLogger("live_cpu_split")
_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user + system CPU seconds) of a process, None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS


def _label(pid: int) -> str:
    """A short name for a process: its command line without the interpreter's path."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return str(pid)
    words = [w.decode(errors="replace") for w in argv if w]
    if words and "python" in Path(words[0]).name:  # `python -u -m core.cli tx ...` -> `core.cli tx`
        words = [w for w in words[1:] if w not in ("-u", "-m")]
    return " ".join(words[:2])


def sample_tree(root: int) -> dict[int, float]:
    """CPU seconds so far of ``root`` and every process below it."""
    stats = {int(p): s for p in os.listdir("/proc") if p.isdigit() and (s := _stat(int(p)))}
    tree, grew = {root}, True
    while grew:
        below = {pid for pid, (ppid, _) in stats.items() if ppid in tree} - tree
        grew = bool(below)
        tree |= below
    return {pid: stats[pid][1] for pid in tree if pid in stats}


def _middle_third(seq: list):
    """The first and last element of the middle third of ``seq``: the window measured."""
    return seq[len(seq) // 3], seq[2 * len(seq) // 3]


def cpu_shares(samples: list[tuple[float, dict[int, float]]]) -> tuple[float, dict[int, float], set[int]]:
    """(seconds measured, cores each process used, processes left out because they started or
    ended inside the window) over the middle third of ``samples``."""
    if len(samples) < 6:
        raise SystemExit("live_cpu_split: fewer than 6 samples of the run; ask for more frames")
    (t0, a), (t1, b) = _middle_third(samples)
    return t1 - t0, {pid: (b[pid] - a[pid]) / (t1 - t0) for pid in b if pid in a}, set(a) ^ set(b)


def _out_folder(command: list[str]) -> Path | None:
    """The demo's ``--out`` folder (``--out PATH`` or ``--out=PATH``), if the command names one."""
    for i, word in enumerate(command):
        if word == "--out" and i + 1 < len(command):
            return Path(command[i + 1])
        if word.startswith("--out="):
            return Path(word.split("=", 1)[1])
    return None


def window_fps(command: list[str], wall_window: tuple[float, float]) -> dict[str, float]:
    """Each stream's frame rate inside ``wall_window`` (Unix seconds), counted from the run's
    metrics.csv (the rows' ``t_wall``, when the RX finished decoding a frame)."""
    out = _out_folder(command)
    if out is None or not (out / "metrics.csv").exists():
        return {}
    t0, t1 = wall_window
    with open(out / "metrics.csv", newline="") as f:
        done = [(row["stream"], float(row["t_wall"])) for row in csv.DictReader(f) if row.get("t_wall")]
    return {stream: round(sum(t0 <= t < t1 and s == stream for s, t in done) / (t1 - t0), 2)
            for stream in sorted({s for s, _ in done})}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", type=Path, help="write the split here as JSON")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the live command, after --")
    args = p.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("give the live command after --, e.g. -- .venv/bin/ntscc-xr demo --headless ...")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run = subprocess.Popen(command)
    samples, wall, labels = [], [], {}
    while run.poll() is None:
        tree = sample_tree(run.pid)
        labels.update({pid: labels.get(pid) or _label(pid) for pid in tree})
        samples.append((time.monotonic(), tree))
        wall.append(time.time())
        time.sleep(args.interval)
    if run.returncode:
        raise SystemExit(f"live_cpu_split: the command failed (exit {run.returncode})")
    seconds, shares, partial = cpu_shares(samples)
    if partial:
        log.warning("left out, started or ended inside the measured window: %s",
                    ", ".join(labels.get(pid, str(pid)) for pid in sorted(partial)))
    fps = window_fps(command, _middle_third(wall))  # the same samples' wall-clock times
    slowest = min(fps.values()) if fps else None
    rows = [{"process": labels[pid], "cores": round(c, 3),
             "cpu_ms_per_frame": round(1e3 * c / slowest, 1) if slowest else None}
            for pid, c in sorted(shares.items(), key=lambda kv: -kv[1]) if c >= 0.005]
    total = sum(shares.values())
    for r in rows:
        log.info("%5.2f cores %8s ms/frame  %s", r["cores"], r["cpu_ms_per_frame"], r["process"])
    log.info("%5.2f cores in all over %.0f s (%s); fps over the same window %s", total, seconds,
             cpu_description(), fps)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "command": command, "cpu": cpu_description(), "seconds_measured": round(seconds, 1),
            "fps_in_window": fps, "cores_in_all": round(total, 3), "processes": rows,
            "left_out": sorted(labels.get(pid, str(pid)) for pid in partial)}, indent=1))


if __name__ == "__main__":
    main()
