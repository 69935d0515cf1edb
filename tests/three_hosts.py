"""Three hosts on one machine: TX, radio (flowgraph) and RX in their own network namespaces,
a faulty network between them, and processes killed at random.

Layout (all addresses exist only inside the namespaces made here)::

    ns TX  10.77.1.2 ──veth── 10.77.1.1 ┐
    ns FG  10.77.2.2 ──veth── 10.77.2.1 ├ ns NET: one fault proxy per link (core.link.faultproxy)
    ns RX  10.77.3.2 ──veth── 10.77.3.1 ┘       (no IP forwarding: the proxies are the only path)

Who connects where (ZeroMQ over TCP; the binding side is the server):

    link tx-fg  TX PUSH frames  -> FG PULL  base+0   proxy 10.77.1.1:base+0  -> 10.77.2.2:base+0
    link fg-rx  RX PULL frames  <- FG PUSH  base+1   proxy 10.77.3.1:base+1  -> 10.77.2.2:base+1
    link tx-rx  TX PUSH side    -> RX PULL  base+10  proxy 10.77.1.1:base+10 -> 10.77.3.2:base+10
                TX SUB feedback <- RX PUB   base+11  proxy 10.77.1.1:base+11 -> 10.77.3.2:base+11

(the flowgraph control REP base+2, the RX metrics PUB base+12 and the TX control PULL base+13
are bound too but nothing crosses a link to them here.) Every socket is CURVE-authenticated
(``ntscc-xr keys``); the proxies forward bytes and never see the keys. Each part runs under its
per-host supervisor (``ntscc-xr tx|rx|flowgraph --restart-on-failure``).

:class:`ThreeHosts` builds it, :func:`make_plan` draws a chaos schedule, :meth:`ThreeHosts.chaos`
runs it (SIGKILL a part, partition a link, reset a link's connections), :func:`analyse` turns
the TX log, the RX metrics and the fault windows into figures. ``python tests/three_hosts.py``
runs a longer chaos for docs/results/three_hosts.md.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from core import logs  # noqa: E402
from core.link.faultproxy import control as proxy_control  # noqa: E402

ROLES = ("flowgraph", "rx", "tx")
LINKS = ("tx-fg", "fg-rx", "tx-rx")
SUBNET = {"tx": 1, "flowgraph": 2, "rx": 3}
LISTEN_OFFSETS = {"flowgraph": (0, 1, 2), "rx": (10, 11, 12), "tx": (13,)}
LOSS_TIMEOUT_S = 1.5   # the RX's --loss-timeout: a frame's PHY part is awaited this long
RECOVERY_S = 2.0       # allowed on top of a fault window (the "fault window + 2 s")


def host_ip(role: str) -> str:
    return f"10.77.{SUBNET[role]}.2"


def gw_ip(role: str) -> str:
    """The NET namespace's address on the role's link: where its proxies listen."""
    return f"10.77.{SUBNET[role]}.1"


def can_make_namespaces() -> tuple[bool, str]:
    """(True, '') when network namespaces and veth pairs can be made here."""
    if os.geteuid() != 0:
        return False, "needs root (network namespaces and veth pairs)"
    if shutil.which("ip") is None:
        return False, "iproute2 ('ip') is not installed"
    name = f"nxprobe{os.getpid() % 100000}"
    try:
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=10)
        try:
            r = subprocess.run(["ip", "-n", name, "link", "add", "vp0", "type", "veth", "peer", "name", "vp1"],
                               capture_output=True, timeout=10)
            if r.returncode != 0:
                return False, f"veth pairs cannot be made: {r.stderr.decode().strip()}"
        finally:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        err = getattr(exc, "stderr", b"") or b""
        return False, f"network namespaces cannot be made: {err.decode().strip() or exc}"
    return True, ""


def _ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], check=check, capture_output=True, timeout=10)


# ---------------------------------------------------------------------- process helpers
def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def descendants(pid: int) -> list[int]:
    out, todo = [], children(pid)
    while todo:
        c = todo.pop()
        out.append(c)
        todo += children(c)
    return out


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def listening_ports(ns_pid: int) -> set[int]:
    """TCP ports in LISTEN state in the network namespace of process ``ns_pid``."""
    ports = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{ns_pid}/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for ln in lines:
            f = ln.split()
            if len(f) > 3 and f[3] == "0A":
                ports.add(int(f[1].rsplit(":", 1)[1], 16))
    return ports


# ---------------------------------------------------------------------- the plan
@dataclass
class Fault:
    kind: str        # kill | partition | reset
    target: str      # a role (kill) or a link (partition, reset)
    seconds: float = 0.0  # partition length
    detail: str = ""      # kill: which process of the role ("main" or "gnuradio")


def make_plan(seed: int, kills: int = 3, partition_s: tuple[float, float] = (3.0, 5.0),
              resets: int = 1, every_link_partitioned: int = 1) -> list[Fault]:
    """A shuffled fault list: ``kills`` SIGKILLs (every role at least once when kills >= 3,
    the rest drawn at random), each link partitioned ``every_link_partitioned`` times for a
    random 3-5 s, ``resets`` connection resets on random links."""
    rng = random.Random(seed)
    roles = list(ROLES) if kills >= 3 else []
    roles += [rng.choice(ROLES) for _ in range(kills - len(roles))]
    faults = [Fault("kill", r, detail=rng.choice(("main", "gnuradio")) if r == "flowgraph" else "main")
              for r in roles]
    faults += [Fault("partition", link, round(rng.uniform(*partition_s), 1))
               for link in LINKS for _ in range(every_link_partitioned)]
    faults += [Fault("reset", rng.choice(LINKS)) for _ in range(resets)]
    rng.shuffle(faults)
    return faults


# ---------------------------------------------------------------------- the testbed
@dataclass
class Config:
    out: Path
    base_port: int = 5600
    resolution: str = "128x64"
    fps: float = 4.0
    snr_db: float = 12.0
    latency_ms: float = 20.0
    jitter_ms: float = 10.0
    rate_kbps: float = 8000.0
    restart_delay: float = 1.0
    seed: int = 1
    gap_s: tuple[float, float] = (3.0, 8.0)  # quiet time between faults (random)
    warmup_s: float = 8.0   # streaming before the first fault
    tail_s: float = 10.0    # streaming after the last fault
    ready_timeout_s: float = 180.0


class ThreeHosts:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        tag = os.getpid() % 100000
        self.tag = tag
        self.ns = {r: f"nx{tag}{r[:2]}" for r in ROLES} | {"net": f"nx{tag}net"}
        self.keys = self.out / "keys"
        self.sup: dict[str, subprocess.Popen] = {}
        self.proxies: dict[str, subprocess.Popen] = {}
        self.events: list[dict] = []
        self.rss: list[dict] = []
        self.rng = random.Random(cfg.seed)
        self._logs: list = []
        self.t_start = time.time()

    # ------------------------------------------------------------------ network
    def make_network(self) -> None:
        for ns in self.ns.values():
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        for role in ROLES:
            a, b = f"v{self.tag}{role[:2]}h", f"v{self.tag}{role[:2]}n"
            _ip("-n", self.ns[role], "link", "add", a, "type", "veth", "peer", "name", b,
                "netns", self.ns["net"])
            _ip("-n", self.ns[role], "addr", "add", f"{host_ip(role)}/24", "dev", a)
            _ip("-n", self.ns["net"], "addr", "add", f"{gw_ip(role)}/24", "dev", b)
            _ip("-n", self.ns[role], "link", "set", a, "up")
            _ip("-n", self.ns["net"], "link", "set", b, "up")

    def remove_network(self) -> None:
        for ns in self.ns.values():
            _ip("netns", "del", ns, check=False)  # deleting a namespace removes its veths

    # ------------------------------------------------------------------ processes
    def _spawn(self, ns_role: str, cmd: list[str], log: str) -> subprocess.Popen:
        f = open(self.out / log, "ab")
        self._logs.append(f)
        # INFO at least: the analysis reads the TX's "sent" lines (an inherited
        # NTSCC_LOG_LEVEL=warning would hide them)
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", **{logs.ENV: "info"})
        return subprocess.Popen(["ip", "netns", "exec", self.ns[ns_role], *cmd], cwd=REPO, env=env,
                                stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)

    def proxy_socket(self, link: str) -> str:
        return str(self.out / f"proxy-{link}.sock")

    def start_proxies(self) -> None:
        b = self.cfg.base_port
        fg, rx = host_ip("flowgraph"), host_ip("rx")
        routes = {"tx-fg": [f"{gw_ip('tx')}:{b}={fg}:{b}"],
                  "fg-rx": [f"{gw_ip('rx')}:{b + 1}={fg}:{b + 1}"],
                  "tx-rx": [f"{gw_ip('tx')}:{b + 10}={rx}:{b + 10}", f"{gw_ip('tx')}:{b + 11}={rx}:{b + 11}"]}
        for i, (link, rs) in enumerate(routes.items()):
            cmd = [sys.executable, "-m", "core.link.faultproxy", "--name", link,
                   "--latency-ms", str(self.cfg.latency_ms), "--jitter-ms", str(self.cfg.jitter_ms),
                   "--rate-kbps", str(self.cfg.rate_kbps), "--seed", str(self.cfg.seed + i),
                   "--control", self.proxy_socket(link)]
            for r in rs:
                cmd += ["--route", r]
            self.proxies[link] = self._spawn("net", cmd, f"proxy-{link}.log")
        t_end = time.time() + 30
        for link in routes:
            while True:
                try:
                    proxy_control(self.proxy_socket(link), {"cmd": "stats"}, timeout=1.0)
                    break
                except OSError as err:
                    if time.time() > t_end or self.proxies[link].poll() is not None:
                        raise RuntimeError(
                            f"fault proxy {link} did not start; see {self.out}/proxy-{link}.log") from err
                    time.sleep(0.1)

    def role_command(self, role: str) -> list[str]:
        c = self.cfg
        common = ["--restart-on-failure", "--restart-delay", str(c.restart_delay),
                  "--base-port", str(c.base_port), "--allow-remote", "--curve-keys", str(self.keys)]
        cli = [sys.executable, "-m", "core.cli"]
        if role == "flowgraph":
            return cli + ["flowgraph", *common, "--host", host_ip("flowgraph"), "--snr", str(c.snr_db),
                          "--channel-impl", "lean"]
        if role == "rx":
            return cli + ["rx", *common, "--bind-host", host_ip("rx"), "--fg-host", gw_ip("rx"),
                          "--out", str(self.out / "rx"), "--metrics-append", "--no-exit-on-end",
                          "--save-every", "0", "--device", "cpu",
                          "--loss-timeout", str(LOSS_TIMEOUT_S)]
        return cli + ["tx", *common, "--bind-host", host_ip("tx"), "--fg-host", gw_ip("tx"),
                      "--rx-host", gw_ip("tx"), "--frames", "0", "--fps", str(c.fps),
                      "--resolution", c.resolution, "--no-classical", "--device", "cpu",
                      "--cqi-init", str(c.snr_db)]

    def start(self) -> None:
        subprocess.run([sys.executable, "-m", "core.cli", "keys", str(self.keys)], cwd=REPO, check=True,
                       capture_output=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
        self.make_network()
        self.start_proxies()
        for role in ROLES:  # the order does not matter (everything reconnects); this is the quickest
            self.sup[role] = self._spawn(role, self.role_command(role), f"{role}.log")
        for role in ROLES:
            self.wait_ready(role, old_pid=None)
        self.event("started")

    def worker(self, role: str) -> int | None:
        """The supervised ``ntscc-xr ROLE`` process (the supervisor's child)."""
        kids = children(self.sup[role].pid)
        return kids[0] if kids else None

    def ready(self, role: str) -> bool:
        want = {self.cfg.base_port + o for o in LISTEN_OFFSETS[role]}
        return want <= listening_ports(self.sup[role].pid)

    def wait_ready(self, role: str, old_pid: int | None) -> float:
        """Wait until a (new) worker of ``role`` listens on all its ports; returns the time."""
        t_end = time.time() + self.cfg.ready_timeout_s
        while time.time() < t_end:
            if self.sup[role].poll() is not None:
                raise RuntimeError(f"the {role} supervisor exited ({self.sup[role].returncode}); "
                                   f"see {self.out / (role + '.log')}")
            pid = self.worker(role)
            if pid is not None and pid != old_pid and self.ready(role):
                return time.time()
            self.sample_rss()
            time.sleep(0.05)
        raise RuntimeError(f"{role} not ready within {self.cfg.ready_timeout_s:.0f} s; see "
                           f"{self.out / (role + '.log')}")

    def event(self, kind: str, **kw) -> dict:
        e = {"event": kind, "t": time.time(), **kw}
        self.events.append(e)
        return e

    def sample_rss(self, every_s: float = 2.0) -> None:
        now = time.time()
        if self.rss and now - self.rss[-1]["t"] < every_s:
            return
        row = {"t": now}
        for role in ROLES:
            w = self.worker(role) if role in self.sup else None
            row[role] = (sum(rss_kb(p) for p in [w, *descendants(w)]) if w else 0)
            row[role + "_pid"] = w
        for link, p in self.proxies.items():
            row["proxy_" + link] = rss_kb(p.pid)
        self.rss.append(row)

    def idle(self, seconds: float) -> None:
        t_end = time.time() + seconds
        while time.time() < t_end:
            self.sample_rss()
            time.sleep(min(0.2, max(0.0, t_end - time.time())))

    # ------------------------------------------------------------------ faults
    def kill(self, role: str, detail: str = "main") -> dict:
        pid = self.worker(role)
        target = pid
        if role == "flowgraph" and detail == "gnuradio":
            gr = children(pid) if pid else []
            target = gr[0] if gr else pid
        t = time.time()
        old_sessions = {f["session"] for f in tx_frames(self.out)} if role == "tx" else set()
        os.kill(target, signal.SIGKILL)
        ready = self.wait_ready(role, old_pid=pid)
        if role == "tx":  # listening is not recovered: the TX still loads its model, then sends
            ready = self.wait_first_frame(old_sessions)
        return self.event("kill", target=role, detail=detail, pid=target, start=t, end=ready,
                          restart_s=ready - t)

    def wait_first_frame(self, old_sessions: set) -> float:
        """Wait until the restarted TX has sent a frame (a log line of a TX session not in
        ``old_sessions``: the killed TX may still log a line between the count and the kill);
        returns the time."""
        t_end = time.time() + self.cfg.ready_timeout_s
        while time.time() < t_end:
            if any(f["session"] not in old_sessions for f in tx_frames(self.out)):
                return time.time()
            self.sample_rss()
            time.sleep(0.05)
        raise RuntimeError(f"the restarted tx sent no frame within {self.cfg.ready_timeout_s:.0f} s; "
                           f"see {self.out / 'tx.log'}")

    def partition(self, link: str, seconds: float) -> dict:
        t = time.time()
        proxy_control(self.proxy_socket(link), {"cmd": "partition", "seconds": seconds})
        self.idle(seconds)
        return self.event("partition", target=link, start=t, end=t + seconds, seconds=seconds)

    def reset(self, link: str) -> dict:
        t = time.time()
        n = proxy_control(self.proxy_socket(link), {"cmd": "reset"})["reset"]
        return self.event("reset", target=link, start=t, end=t, connections=n)

    def wait_frames(self, n: int, timeout: float) -> bool:
        t_end = time.time() + timeout
        while time.time() < t_end:
            if sum(r["status"] == "ok" for r in rx_rows(self.out)) >= n:
                return True
            self.idle(0.5)
        return False

    def chaos(self, faults: list[Fault]) -> None:
        if not self.wait_frames(3, self.cfg.ready_timeout_s):
            raise RuntimeError(f"no frame arrived; see the logs in {self.out}")
        self.event("stream_up")
        self.idle(self.cfg.warmup_s)
        for f in faults:
            self.idle(self.rng.uniform(*self.cfg.gap_s))
            if f.kind == "kill":
                self.kill(f.target, f.detail)
            elif f.kind == "partition":
                self.partition(f.target, f.seconds)
            else:
                self.reset(f.target)
        self.idle(self.cfg.tail_s)
        self.event("chaos_end")

    def stop(self) -> None:
        # the TX first (its last frames get through), then the RX once they are decoded
        for role in ("tx", "rx", "flowgraph"):
            p = self.sup.get(role)
            if p is not None and p.poll() is None:
                t0, forced = time.time(), False
                os.kill(p.pid, signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    forced = True
                    for pid in [*descendants(p.pid), p.pid]:
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                    p.wait(5)
                self.event("stopped", target=role, seconds=round(time.time() - t0, 2), forced=forced)
            if role == "tx":
                time.sleep(LOSS_TIMEOUT_S + 1.0)
        for link, p in self.proxies.items():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)

    def proxy_stats(self) -> dict:
        out = {}
        for link in LINKS:
            try:
                out[link] = proxy_control(self.proxy_socket(link), {"cmd": "stats"}, timeout=2.0)
            except OSError:
                pass
        return out

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self.remove_network()
            for f in self._logs:
                f.close()


# ---------------------------------------------------------------------- analysis
def tx_frames(out: Path) -> list[dict]:
    frames = []
    for line in (out / "tx.log").read_text(errors="replace").splitlines():
        if '"t_sent_ns"' in line and "{" in line:  # "<time> ... sent {json}" lines of the TX log
            try:
                d = json.loads(line[line.index("{"):])
            except ValueError:
                continue
            frames.append({"session": d["tx_session"], "frame_id": d["frame_id"], "t_sent": d["t_sent_ns"] / 1e9})
    return frames


def rx_rows(out: Path) -> list[dict]:
    path = out / "rx" / "metrics.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("stream") == "learned" and r.get("frame_id") != "frame_id"]


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def analyse(events: list[dict], out: Path, rss: list[dict]) -> dict:
    """Frames sent / received / lost, recovery per fault, stalls, memory; every lost frame
    is matched to a fault window [start - loss timeout, end + 2 s]."""
    sent = tx_frames(out)
    rows = rx_rows(out)
    by_key: dict[tuple, dict] = {}
    for r in rows:
        try:
            key = (int(r["tx_session"]), int(r["frame_id"]))
        except (TypeError, ValueError):
            continue
        if key not in by_key or r["status"] == "ok":
            by_key[key] = r
    sent_at = {(f["session"], f["frame_id"]): f["t_sent"] for f in sent}
    faults = [e for e in events if e["event"] in ("kill", "partition", "reset")]
    t_up = next(e["t"] for e in events if e["event"] == "stream_up")
    t_end = next((e["t"] for e in events if e["event"] == "chaos_end"), time.time())
    # the measured stream: frames sent from the first decoded one to the end of the chaos
    first_ok_sent = min((sent_at[k] for k, r in by_key.items() if r["status"] == "ok" and k in sent_at),
                        default=t_up)
    measured = [f for f in sent if first_ok_sent <= f["t_sent"] <= t_end]

    def window_of(t: float) -> dict | None:
        for e in faults:
            if e["start"] - LOSS_TIMEOUT_S <= t <= e["end"] + RECOVERY_S:
                return e
        return None

    outcome = {"ok": 0, "lost": 0, "missing": 0}
    unaccounted, per_fault = [], {id(e): 0 for e in faults}
    for f in measured:
        r = by_key.get((f["session"], f["frame_id"]))
        status = "missing" if r is None else ("ok" if r["status"] == "ok" else "lost")
        outcome[status] += 1
        if status != "ok":
            w = window_of(f["t_sent"])
            if w is None:
                unaccounted.append({**f, "status": status})
            else:
                per_fault[id(w)] += 1
    # stalls: gaps between consecutive decoded (ok) frames, against the fault windows they span
    ok_times = sorted(float(r["t_wall"]) for r in rows if r["status"] == "ok"
                      and t_up <= float(r["t_wall"]) <= t_end)
    stalls, worst_excess = [], -1e9
    for a, b in zip(ok_times, ok_times[1:]):
        spanned = [e for e in faults if e["start"] - LOSS_TIMEOUT_S < b and e["end"] + RECOVERY_S > a]
        window = sum(e["end"] - e["start"] for e in spanned)
        allowed = window + RECOVERY_S
        worst_excess = max(worst_excess, (b - a) - allowed)
        if b - a > allowed:
            stalls.append({"from": a, "to": b, "gap_s": b - a, "allowed_s": allowed,
                           "faults": [f"{e['event']} {e['target']}" for e in spanned]})
    # recovery per fault: first decoded frame that was sent after the fault began
    ok_fresh = sorted((float(r["t_wall"]), sent_at.get(k, float("inf"))) for k, r in by_key.items()
                      if r["status"] == "ok")
    fault_rows = []
    for e in faults:
        first = next((tw for tw, ts in ok_fresh if ts >= e["start"] and tw >= e["end"]), None)
        rec_from = e["start"] if e["event"] == "kill" else e["end"]
        fault_rows.append({"fault": e["event"], "target": e["target"], "detail": e.get("detail", ""),
                           "t": round(e["start"] - t_up, 1),
                           "window_s": round(e["end"] - e["start"], 2),
                           "restart_s": round(e.get("restart_s", 0.0), 2),
                           "recovery_s": None if first is None else round(first - rec_from, 2),
                           "frames_lost": per_fault[id(e)]})
    # memory: per role, its longest-lived process over that life (after a 20 s warm-up)
    memory = {}
    for key in [k for k in (rss[0] if rss else {}) if k != "t" and not k.endswith("_pid")]:
        pid_key = key + "_pid"
        lives: dict = {}
        for s in rss:
            if s.get(key):
                lives.setdefault(s.get(pid_key, "proxy"), []).append((s["t"], s[key]))
        if not lives:
            continue
        life = max(lives.values(), key=lambda v: v[-1][0] - v[0][0])
        warm = [v for t, v in life if t >= life[0][0] + 20.0] or [life[-1][1]]
        memory[key] = {"rss_mb_start": round(warm[0] / 1024, 1), "rss_mb_end": round(life[-1][1] / 1024, 1),
                       "growth_pct": round(100.0 * (life[-1][1] - warm[0]) / max(1, warm[0]), 2),
                       "over_s": round(life[-1][0] - life[0][0], 1), "processes": len(lives)}
    kills = [f["recovery_s"] for f in fault_rows if f["fault"] == "kill" and f["recovery_s"] is not None]
    parts = [f["recovery_s"] for f in fault_rows if f["fault"] == "partition" and f["recovery_s"] is not None]
    restarts = [f["restart_s"] for f in fault_rows if f["fault"] == "kill"]
    return {
        "stream_s": round(t_end - t_up, 1),
        "frames_sent": len(measured), "frames_received": outcome["ok"],
        "frames_lost": outcome["lost"] + outcome["missing"],
        "lost_decoded_as_erasures": outcome["lost"], "lost_never_reached_rx": outcome["missing"],
        "lost_outside_fault_windows": len(unaccounted), "unaccounted": unaccounted[:20],
        "faults": fault_rows,
        "all_recovered": all(f["recovery_s"] is not None for f in fault_rows),
        "kill_recovery_s": {"p50": _pct(kills, 0.5), "max": max(kills, default=float("nan"))},
        "kill_restart_s": {"p50": _pct(restarts, 0.5), "max": max(restarts, default=float("nan"))},
        "partition_recovery_s": {"p50": _pct(parts, 0.5), "max": max(parts, default=float("nan"))},
        "stalls": stalls, "worst_gap_minus_allowed_s": round(worst_excess, 2),
        "longest_gap_s": round(max((b - a for a, b in zip(ok_times, ok_times[1:])), default=0.0), 2),
        "memory": memory,
    }


def run(cfg: Config, faults: list[Fault]) -> dict:
    """Build, stream with chaos, tear down, analyse; results in cfg.out/three_hosts.json."""
    hosts = ThreeHosts(cfg)
    stats = {}
    try:
        hosts.start()
        hosts.chaos(faults)
        stats = hosts.proxy_stats()
    finally:
        hosts.close()
        (Path(cfg.out) / "events.json").write_text(json.dumps(hosts.events, indent=1))
        (Path(cfg.out) / "rss.json").write_text(json.dumps(hosts.rss))
    result = analyse(hosts.events, Path(cfg.out), hosts.rss)
    result["proxies"] = {k: {x: v.get(x) for x in ("connections", "upstream_failures", "resets",
                                                   "partitions", "bytes_up", "bytes_down")}
                         for k, v in stats.items()}
    result["config"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items()}
    result["plan"] = [vars(f) for f in faults]
    (Path(cfg.out) / "three_hosts.json").write_text(json.dumps(result, indent=1, default=str))
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="three-host chaos run (root): " + __doc__.split("\n")[0])
    p.add_argument("--out", default="runs/three_hosts")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--kills", type=int, default=6, help="SIGKILLs (every role at least once)")
    p.add_argument("--partitions-per-link", type=int, default=2)
    p.add_argument("--resets", type=int, default=3)
    p.add_argument("--fps", type=float, default=4.0)
    p.add_argument("--resolution", default="128x64")
    p.add_argument("--base-port", type=int, default=5600)
    a = p.parse_args(argv)
    ok, why = can_make_namespaces()
    if not ok:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    out = Path(a.out)
    if out.exists():
        shutil.rmtree(out)
    cfg = Config(out=out, base_port=a.base_port, fps=a.fps, resolution=a.resolution, seed=a.seed)
    faults = make_plan(a.seed, kills=a.kills, resets=a.resets, every_link_partitioned=a.partitions_per_link)
    result = run(cfg, faults)
    print(json.dumps({k: v for k, v in result.items() if k not in ("unaccounted",)}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
