"""Three hosts for real: TX, radio and RX in separate network namespaces, a faulty network
(core.link.faultproxy) between them, processes SIGKILLed at random and restarted by their
per-host supervisor (``--restart-on-failure``), each link partitioned once.

The chaos test needs root (network namespaces, veth pairs) and is skipped with the reason
otherwise; the fault-proxy and supervisor tests run anywhere. Tolerances come from the fault
windows (a kill lasts until the restarted part listens again; a partition lasts what it was
told), never from the speed of the machine: see tests/three_hosts.py.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from core.link.faultproxy import FaultProxy, LinkState, Route
from core.supervisor import child_argv
from tests import three_hosts as th
from tests.helpers import REPO, free_base_port


# ---------------------------------------------------------------------- the fault proxy
class _Echo(threading.Thread):
    """A TCP echo server plus a FaultProxy in front of it, on one event loop thread."""

    def __init__(self, **state):
        super().__init__(daemon=True)
        self.loop = asyncio.new_event_loop()
        self.state = LinkState(**state)
        self.started = threading.Event()

    def run(self):
        asyncio.set_event_loop(self.loop)

        async def echo(r, w):
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except ConnectionError:
                pass
            w.close()

        async def setup():
            srv = await asyncio.start_server(echo, "127.0.0.1", 0)
            self.echo_port = srv.sockets[0].getsockname()[1]
            self.proxy_port = free_base_port(1)
            self.proxy = FaultProxy("t", [Route("127.0.0.1", self.proxy_port, "127.0.0.1", self.echo_port)],
                                    self.state, seed=0)
            await self.proxy.start()
            self.started.set()

        self.loop.run_until_complete(setup())
        self.loop.run_forever()

    def call(self, fn, *a):
        """Run ``fn(*a)`` on the proxy's event-loop thread and wait until it has run (a test's
        next step must not race a call that is only scheduled)."""
        done: concurrent.futures.Future = concurrent.futures.Future()

        def run():
            try:
                done.set_result(fn(*a))
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting test thread
                done.set_exception(exc)
        self.loop.call_soon_threadsafe(run)
        return done.result(10)

    def __enter__(self):
        self.start()
        assert self.started.wait(10)
        return self

    def __exit__(self, *exc):
        async def shutdown():
            await self.proxy.close()
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in rest:
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)  # let them end, not be destroyed
            self.loop.stop()
        asyncio.run_coroutine_threadsafe(shutdown(), self.loop)
        self.join(10)
        self.loop.close()


def _roundtrip(port: int, payload: bytes, timeout: float = 10.0) -> tuple[bytes, float]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        t0 = time.monotonic()
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got, time.monotonic() - t0


def test_three_hosts_proxy_latency_and_rate():
    with _Echo(latency_ms=100, jitter_ms=20) as e:
        got, dt = _roundtrip(e.proxy_port, b"x" * 1000)
        assert got == b"x" * 1000
        # two crossings of 100 ms (+ up to 20 ms jitter each); the upper bound only catches a
        # proxy that holds data far too long, loose enough for a loaded machine
        assert 0.2 <= dt < 0.2 + 0.04 + 5.0
    with _Echo(rate_kbps=800) as e:  # 100 kB/s each way
        got, dt = _roundtrip(e.proxy_port, b"y" * 100_000)
        assert got == b"y" * 100_000 and dt >= 0.9  # 100 kB up, then down, each at 100 kB/s


def test_three_hosts_proxy_partition_then_heal():
    with _Echo() as e:
        with socket.create_connection(("127.0.0.1", e.proxy_port), timeout=10) as s:
            s.sendall(b"a")
            assert s.recv(10) == b"a"
            e.call(e.proxy.partition, 1.5)
            time.sleep(0.1)
            t0 = time.monotonic()
            s.sendall(b"b")  # held back by the partition, delivered when it heals
            assert s.recv(10) == b"b"
            assert time.monotonic() - t0 >= 1.2
        # new connections made during a partition wait for it to heal
        e.call(e.proxy.partition, 1.0)
        time.sleep(0.1)
        got, dt = _roundtrip(e.proxy_port, b"c")
        assert got == b"c" and dt >= 0.7


def test_three_hosts_proxy_reset_and_control_commands():
    with _Echo() as e:
        with socket.create_connection(("127.0.0.1", e.proxy_port), timeout=10) as s:
            s.sendall(b"a")
            assert s.recv(10) == b"a"
            e.call(e.proxy.reset)
            time.sleep(0.3)
            with pytest.raises((ConnectionResetError, BrokenPipeError)):
                s.sendall(b"b")
                if not s.recv(10):
                    raise ConnectionResetError("closed")
        rep = e.proxy.command({"cmd": "set", "latency_ms": 5, "rate_kbps": 100})
        assert rep["ok"] and rep["latency_ms"] == 5 and rep["resets"] == 1
        with pytest.raises(ValueError):
            e.proxy.command({"cmd": "set", "latency_ms": -1})
        with pytest.raises(ValueError):
            e.proxy.command({"cmd": "nonsense"})


# ---------------------------------------------------------------------- the supervisor
def test_three_hosts_supervisor_argv_and_help():
    assert child_argv(["tx", "--restart-on-failure", "--fps", "2", "--restart-delay", "3"]) == \
        ["tx", "--fps", "2"]
    assert child_argv(["rx", "--restart-delay=2", "--restart-on-failure"]) == ["rx"]
    for role in ("tx", "rx", "flowgraph"):
        out = subprocess.run([sys.executable, "-m", "core.cli", role, "--help"], cwd=REPO,
                             capture_output=True, text=True, timeout=120).stdout
        assert "--restart-on-failure" in out


# ---------------------------------------------------------------------- the chaos run
def _skip_reason() -> str | None:
    ok, why = th.can_make_namespaces()
    return None if ok else why


@pytest.mark.slow
def test_three_hosts_chaos(tmp_path):
    why = _skip_reason()
    if why:
        pytest.skip(f"three-host harness: {why}")
    # The CLI's calm pacing (3-8 s between faults) is not needed here: a kill's fault window
    # already lasts until the restarted part is back, so short gaps test the same recovery
    # in half the time (the suite must stay under 10 minutes on two cores).
    # A fixed fault plan (THREE_HOSTS_SEED draws another): a failure must replay, not come and go.
    seed = int(os.environ.get("THREE_HOSTS_SEED", "7"))
    cfg = th.Config(out=tmp_path, base_port=free_base_port(), seed=seed,
                    gap_s=(1.5, 3.0), warmup_s=3.0, tail_s=4.0, restart_delay=0.5)
    plan = th.make_plan(cfg.seed, kills=3, partition_s=(2.0, 3.0), resets=1, every_link_partitioned=1)
    r = th.run(cfg, plan)
    summary = {k: v for k, v in r.items() if k not in ("config", "unaccounted", "plan")}
    print(json.dumps(summary, indent=1, default=str))
    ctx = f"seed {cfg.seed}; logs and three_hosts.json in {tmp_path}"
    assert {f["target"] for f in r["faults"] if f["fault"] == "kill"} == set(th.ROLES), ctx
    assert {f["target"] for f in r["faults"] if f["fault"] == "partition"} == set(th.LINKS), ctx
    assert r["all_recovered"], f"a fault was never recovered from: {r['faults']} ({ctx})"
    assert not r["stalls"], f"stalls longer than their fault window + 2 s: {r['stalls']} ({ctx})"
    assert r["lost_outside_fault_windows"] == 0, f"frames lost outside any fault window: {r['unaccounted']} ({ctx})"
    assert r["frames_received"] > 0 and r["frames_sent"] >= r["frames_received"], ctx
    for name, m in r["memory"].items():  # over one process's life; restarts start afresh
        assert m["growth_pct"] < 50, f"{name} memory grew {m['growth_pct']} % ({ctx})"
