"""A TCP fault proxy: a faulty network link between two hosts, in user space.

The lab's kernel has no ``netem`` queueing discipline, so latency, jitter, a bandwidth cap,
connection resets and partitions come from this byte-level proxy instead. One proxy process is
one *link* (say TX <-> flowgraph); it forwards one or more *routes* (``listen -> target``
TCP ports) and applies the link's faults to all of them. ZeroMQ over TCP, CurveZMQ included,
passes through unchanged: the proxy never looks inside the bytes (CURVE stays end to end).

Faults, all per link:

* latency + jitter: every chunk is delivered ``latency + U(0, jitter)`` after it was read, in
  order (a chunk never overtakes the one before it, as on a TCP connection);
* bandwidth cap: a token bucket per direction (bytes/s);
* reset: every open connection is closed with a TCP RST at once (``SO_LINGER`` 0);
* partition for N seconds: nothing passes in either direction and new connections get no
  answer from the far side — what a cut cable does to TCP: senders' buffers fill, and the
  bytes held back are delivered (late) once the link heals, unless a side gave up first.

Control: a JSON-lines Unix socket (``--control PATH``; a filesystem path, so it is reachable
from any network namespace): ``{"cmd": "partition", "seconds": 4}``, ``{"cmd": "heal"}``,
``{"cmd": "reset"}``, ``{"cmd": "set", "latency_ms": 50, "jitter_ms": 10, "rate_kbps": 800}``,
``{"cmd": "stats"}``; each answers one JSON line. :func:`control` is the client.

    python -m core.link.faultproxy --name tx-fg --route 10.77.1.1:5600=10.77.2.2:5600 \\
        --latency-ms 20 --jitter-ms 10 --rate-kbps 20000 --control /tmp/tx-fg.sock

stdlib only (no numpy, no zmq): it runs anywhere, under either Python.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass, field

CHUNK = 64 * 1024
QUEUE_CHUNKS = 16  # per direction: bounded, so a stalled side pushes back through TCP


@dataclass
class Route:
    listen_host: str
    listen_port: int
    target_host: str
    target_port: int

    @classmethod
    def parse(cls, text: str) -> "Route":
        """``LISTEN_HOST:PORT=TARGET_HOST:PORT``."""
        try:
            listen, target = text.split("=")
            lh, lp = listen.rsplit(":", 1)
            th, tp = target.rsplit(":", 1)
            return cls(lh, int(lp), th, int(tp))
        except ValueError:
            raise argparse.ArgumentTypeError(f"route {text!r}: expected HOST:PORT=HOST:PORT") from None


@dataclass
class LinkState:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    rate_kbps: float = 0.0  # 0 = no cap; kbit/s per direction
    partitioned_until: float = 0.0  # time.monotonic(); 0 = not partitioned
    stats: dict = field(default_factory=lambda: {
        "connections": 0, "active": 0, "upstream_failures": 0, "resets": 0, "partitions": 0,
        "bytes_up": 0, "bytes_down": 0, "partitioned_s": 0.0})

    def partitioned(self) -> bool:
        return time.monotonic() < self.partitioned_until

    async def healed(self) -> None:
        while self.partitioned():
            await asyncio.sleep(min(0.05, self.partitioned_until - time.monotonic()))


def _rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


class FaultProxy:
    def __init__(self, name: str, routes: list[Route], state: LinkState | None = None,
                 seed: int | None = None):
        self.name = name
        self.routes = routes
        self.state = state or LinkState()
        self.rng = random.Random(seed)
        self.conns: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter | None]] = set()
        self.servers: list[asyncio.base_events.Server] = []
        self.tasks: set[asyncio.Task] = set()  # one per proxied connection, awaited by close()

    # ------------------------------------------------------------------ forwarding
    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: str) -> None:
        """One direction: read -> delay queue -> rate cap -> write; ends on EOF or error."""
        st = self.state
        q: asyncio.Queue = asyncio.Queue(QUEUE_CHUNKS)

        async def deliver() -> None:
            last = 0.0
            while True:
                item = await q.get()
                if item is None:
                    return
                due, data = item
                last = max(last, due)
                delay = last - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await st.healed()
                if st.rate_kbps > 0:
                    await asyncio.sleep(len(data) * 8 / (st.rate_kbps * 1e3))
                writer.write(data)
                await writer.drain()
                st.stats[key] += len(data)

        task = asyncio.ensure_future(deliver())
        try:
            while not task.done():
                await st.healed()  # partitioned: read nothing, TCP pushes back on the sender
                data = await reader.read(CHUNK)
                if not data:
                    break
                if task.done():
                    break
                jitter = self.rng.uniform(0.0, st.jitter_ms) if st.jitter_ms > 0 else 0.0
                await q.put((time.monotonic() + (st.latency_ms + jitter) / 1e3, data))
            if not task.done():
                await q.put(None)
            await task
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)  # never left pending at shutdown

    async def _handle(self, route: Route, c_reader, c_writer) -> None:
        st = self.state
        st.stats["connections"] += 1
        self.tasks.add(asyncio.current_task())
        entry = (c_writer, None)
        self.conns.add(entry)
        u_writer = None
        try:
            await st.healed()  # a partitioned far side does not answer
            try:
                u_reader, u_writer = await asyncio.wait_for(
                    asyncio.open_connection(route.target_host, route.target_port), 5.0)
            except (OSError, asyncio.TimeoutError):
                st.stats["upstream_failures"] += 1
                _rst(c_writer)  # as the far host would: connection refused
                return
            self.conns.discard(entry)
            entry = (c_writer, u_writer)
            self.conns.add(entry)
            st.stats["active"] += 1
            up = asyncio.ensure_future(self._pump(c_reader, u_writer, "bytes_up"))
            down = asyncio.ensure_future(self._pump(u_reader, c_writer, "bytes_down"))
            try:
                # one side closing closes the other (ZeroMQ never half-closes)
                await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in (up, down):
                    t.cancel()
                await asyncio.gather(up, down, return_exceptions=True)
                st.stats["active"] -= 1
        finally:
            self.tasks.discard(asyncio.current_task())
            self.conns.discard(entry)
            for w in (c_writer, u_writer):
                if w is not None and not w.is_closing():
                    w.close()

    # ------------------------------------------------------------------ faults
    def partition(self, seconds: float) -> None:
        self.state.partitioned_until = time.monotonic() + float(seconds)
        self.state.stats["partitions"] += 1
        self.state.stats["partitioned_s"] += float(seconds)

    def heal(self) -> None:
        self.state.partitioned_until = 0.0

    def reset(self) -> int:
        n = 0
        for c_writer, u_writer in list(self.conns):
            for w in (c_writer, u_writer):
                if w is not None:
                    _rst(w)
            n += 1
        self.state.stats["resets"] += n
        return n

    def command(self, req: dict) -> dict:
        cmd = req.get("cmd")
        st = self.state
        if cmd == "partition":
            self.partition(float(req.get("seconds", 1.0)))
        elif cmd == "heal":
            self.heal()
        elif cmd == "reset":
            return {"ok": True, "reset": self.reset()}
        elif cmd == "set":
            for key in ("latency_ms", "jitter_ms", "rate_kbps"):
                if key in req:
                    value = float(req[key])
                    if not value >= 0:
                        raise ValueError(f"{key} must be >= 0")
                    setattr(st, key, value)
        elif cmd != "stats":
            raise ValueError(f"unknown cmd {cmd!r}")
        return {"ok": True, "name": self.name, "partitioned": st.partitioned(),
                "latency_ms": st.latency_ms, "jitter_ms": st.jitter_ms, "rate_kbps": st.rate_kbps,
                **st.stats}

    async def _control_client(self, reader, writer) -> None:
        try:
            while line := await reader.readline():
                try:
                    req = json.loads(line)
                    rep = self.command(req if isinstance(req, dict) else {})
                except Exception as exc:  # noqa: BLE001 - answer every request
                    rep = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                writer.write((json.dumps(rep) + "\n").encode())
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    # ------------------------------------------------------------------ life cycle
    async def start(self, control_path: str | None = None) -> None:
        for r in self.routes:
            srv = await asyncio.start_server(lambda rd, wr, r=r: self._handle(r, rd, wr),
                                             r.listen_host, r.listen_port, reuse_address=True)
            self.servers.append(srv)
        if control_path:
            self.servers.append(await asyncio.start_unix_server(self._control_client, control_path))

    async def close(self) -> None:
        """Stop listening, reset every connection and wait for their tasks to end."""
        for srv in self.servers:
            srv.close()
        self.reset()
        tasks = list(self.tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def control(path: str, msg: dict, timeout: float = 5.0) -> dict:
    """Send one command to a running proxy's control socket; returns its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall((json.dumps(msg) + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.link.faultproxy", description=__doc__.split("\n")[0])
    p.add_argument("--name", default="link", help="link name (reported by stats)")
    p.add_argument("--route", type=Route.parse, action="append", required=True,
                   help="LISTEN_HOST:PORT=TARGET_HOST:PORT (repeat for several ports of one link)")
    p.add_argument("--latency-ms", type=float, default=0.0, help="one-way added latency")
    p.add_argument("--jitter-ms", type=float, default=0.0, help="added uniform jitter 0..J ms (order kept)")
    p.add_argument("--rate-kbps", type=float, default=0.0, help="bandwidth cap per direction, kbit/s (0 = none)")
    p.add_argument("--seed", type=int, default=None, help="jitter seed")
    p.add_argument("--control", default=None, help="Unix socket path for run-time commands")
    args = p.parse_args(argv)
    state = LinkState(args.latency_ms, args.jitter_ms, args.rate_kbps)
    proxy = FaultProxy(args.name, args.route, state, args.seed)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await proxy.start(args.control)
        print("READY " + json.dumps({"name": args.name, "routes": [vars(r) for r in args.route]}),
              flush=True)
        await stop.wait()
        await proxy.close()

    try:
        asyncio.run(run())
    except OSError as exc:
        print(f"ERROR: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
