"""ZeroMQ endpoints of a session: who binds, who connects, and the loopback-only default.

    TX ──PUSH──► flowgraph in (flowgraph binds)     flowgraph out ──PUSH──► RX (flowgraph binds)
    TX ──PUSH──► side link (RX binds)               RX ──PUB──► feedback: CQI + acks (RX binds)
    RX ──PUB──► metrics for viewer/supervisor        viewer ──PUSH──► TX control (TX binds)

Binding anywhere but loopback needs ``allow_remote=True`` (the ``--allow-remote`` option),
and then CurveZMQ keys (see :mod:`core.link.security`).
Torch-free: the flowgraph side imports it too. The TX/RX flags that set these (``--base-port``,
``--fg-host``, ...) are rows of the session options table, :mod:`core.session.options`.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlparse

BASE_PORT = 5600


@dataclass
class Endpoints:
    fg_in: str = f"tcp://127.0.0.1:{BASE_PORT}"
    fg_out: str = f"tcp://127.0.0.1:{BASE_PORT + 1}"
    fg_ctrl: str = f"tcp://127.0.0.1:{BASE_PORT + 2}"
    side: str = f"tcp://127.0.0.1:{BASE_PORT + 10}"
    feedback: str = f"tcp://127.0.0.1:{BASE_PORT + 11}"
    metrics: str = f"tcp://127.0.0.1:{BASE_PORT + 12}"
    control: str = f"tcp://127.0.0.1:{BASE_PORT + 13}"

    @classmethod
    def from_base(cls, base: int, host: str = "127.0.0.1", fg_host: str | None = None,
                  rx_host: str | None = None, tx_host: str | None = None) -> "Endpoints":
        """Ports base+0..2 live on the flowgraph host, base+10..12 on the RX host, base+13 on
        the TX host (all ``host`` unless given): the three-host lab layout."""
        fg, rx, tx = fg_host or host, rx_host or host, tx_host or host
        return cls(f"tcp://{fg}:{base}", f"tcp://{fg}:{base + 1}", f"tcp://{fg}:{base + 2}",
                   f"tcp://{rx}:{base + 10}", f"tcp://{rx}:{base + 11}", f"tcp://{rx}:{base + 12}",
                   f"tcp://{tx}:{base + 13}")


def bind_address(address: str, bind_host: str) -> str:
    """The address a process binds for an endpoint: same port, on its own interface."""
    url = urlparse(address)
    return f"{url.scheme}://{bind_host}:{url.port}"


def endpoints_from(args) -> Endpoints:
    return Endpoints.from_base(args.base_port, fg_host=args.fg_host, rx_host=args.rx_host,
                               tx_host=args.tx_host)


class RemoteBindRefused(PermissionError):
    """Binding a non-loopback address without the explicit option."""


def is_loopback(address: str) -> bool:
    """True for tcp://127.x.x.x / [::1] / localhost and for ipc:// / inproc:// endpoints."""
    url = urlparse(address)
    if url.scheme in ("ipc", "inproc"):
        return True
    host = (url.hostname or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # '*', interface names and hostnames may reach other machines


def check_bind(address: str, allow_remote: bool) -> None:
    if not is_loopback(address) and not allow_remote:
        raise RemoteBindRefused(
            f"refusing to bind {address}: only loopback (127.0.0.1) is allowed by default on a "
            f"shared lab network. Pass --allow-remote (and use --curve-keys so only key "
            f"holders can inject frames or CQI) to listen on another interface.")
