"""ZeroMQ endpoints of a session: who binds, who connects, and the loopback-only default.

    TX ──PUSH──► flowgraph in (flowgraph binds)     flowgraph out ──PUSH──► RX (flowgraph binds)
    TX ──PUSH──► side link (RX binds)               RX ──PUB──► feedback: CQI + acks (RX binds)
    RX ──PUB──► metrics for viewer/supervisor        viewer ──PUSH──► TX control (TX binds)

Binding anywhere but loopback needs ``allow_remote=True`` (the ``--allow-remote`` option),
and then CurveZMQ keys (see :mod:`core.security`).
Torch-free: the flowgraph side imports it too.
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
    def from_base(cls, base: int, host: str = "127.0.0.1") -> "Endpoints":
        return cls(*(f"tcp://{host}:{base + off}" for off in (0, 1, 2, 10, 11, 12, 13)))


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
