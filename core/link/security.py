"""Socket set-up with safe defaults: loopback binds, optional CurveZMQ authentication.

With ``--curve-keys DIR`` every bound socket becomes a CURVE server that accepts only
clients whose public key is in ``DIR/authorized`` (pyzmq's authenticator), and every
connecting socket authenticates with ``DIR/client.key_secret`` against ``DIR/server.key``.
``ntscc-xr keys DIR`` (``make_keys``) creates such a folder. Torch-free.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from .endpoints import check_bind


@dataclass
class CurveKeys:
    folder: Path

    def _load(self, name: str) -> tuple[bytes, bytes | None]:
        path = self.folder / name
        if not path.exists():
            raise FileNotFoundError(f"CURVE key {path} missing: create the folder with "
                                    f"'ntscc-xr keys {self.folder}'")
        return zmq.auth.load_certificate(str(path))

    @property
    def server(self) -> tuple[bytes, bytes]:
        return self._load("server.key_secret")

    @property
    def client(self) -> tuple[bytes, bytes]:
        return self._load("client.key_secret")

    @property
    def server_public(self) -> bytes:
        return self._load("server.key")[0]


def make_keys(folder: str | Path) -> Path:
    """Create server and client key pairs plus the ``authorized`` folder of client keys."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    zmq.auth.create_certificates(str(folder), "server")
    zmq.auth.create_certificates(str(folder), "client")
    auth = folder / "authorized"
    auth.mkdir(exist_ok=True)
    shutil.copy(folder / "client.key", auth / "client.key")
    return folder


_authenticators: dict[int, ThreadAuthenticator] = {}


def _authenticator(ctx: zmq.Context, keys: CurveKeys) -> None:
    if id(ctx) not in _authenticators:
        auth = ThreadAuthenticator(ctx)
        auth.start()
        auth.configure_curve(domain="*", location=str(keys.folder / "authorized"))
        _authenticators[id(ctx)] = auth


def bind(sock: zmq.Socket, address: str, allow_remote: bool = False,
         keys: CurveKeys | None = None) -> zmq.Socket:
    """Bind after the loopback check; with keys, as an authenticating CURVE server."""
    check_bind(address, allow_remote)
    if keys is not None:
        _authenticator(sock.context, keys)
        public, secret = keys.server
        sock.curve_secretkey, sock.curve_publickey, sock.curve_server = secret, public, True
    sock.bind(address)
    return sock


#: reconnect quickly after a peer restarts (ZeroMQ's default is 100 ms)
RECONNECT_IVL_MS = 50


def connect(sock: zmq.Socket, address: str, keys: CurveKeys | None = None) -> zmq.Socket:
    sock.setsockopt(zmq.RECONNECT_IVL, RECONNECT_IVL_MS)
    if keys is not None:
        public, secret = keys.client
        sock.curve_secretkey, sock.curve_publickey = secret, public
        sock.curve_serverkey = keys.server_public
    sock.connect(address)
    return sock


def stop_authenticators() -> None:
    for auth in _authenticators.values():
        auth.stop()
    _authenticators.clear()


# ---------------------------------------------------------------------- `ntscc-xr keys`
def add_arguments(p) -> None:
    p.add_argument("folder", help="where to write server/client key pairs and authorized/")


def main(args) -> int:
    folder = make_keys(args.folder)
    print(f"CURVE keys written to {folder}. Give the same folder (or at least server.key, "
          f"client.key_secret) to every host, and pass --curve-keys {folder}.")
    return 0
