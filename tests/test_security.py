"""Safe defaults of the link: loopback-only binds, CURVE-authenticated sockets."""
from __future__ import annotations

import pytest
import zmq
import zmq.auth

from core.link.endpoints import Endpoints, RemoteBindRefused, check_bind, is_loopback
from core.link.security import CurveKeys, bind, connect, make_keys, stop_authenticators
from tests.helpers import free_base_port


@pytest.mark.parametrize("addr,ok", [("tcp://127.0.0.1:5000", True), ("tcp://localhost:1", True),
                                     ("tcp://[::1]:5000", True), ("ipc:///tmp/x", True),
                                     ("tcp://0.0.0.0:5000", False), ("tcp://*:5000", False),
                                     ("tcp://192.168.1.4:5000", False), ("tcp://eth0:5000", False)])
def test_loopback_classification(addr, ok):
    assert is_loopback(addr) is ok


def test_default_endpoints_are_loopback():
    ep = Endpoints()
    assert all(is_loopback(a) for a in vars(ep).values())


def test_non_loopback_bind_refused_without_option():
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.PULL)
    try:
        with pytest.raises(RemoteBindRefused, match="--allow-remote"):
            bind(sock, f"tcp://*:{free_base_port(span=1)}")
        check_bind("tcp://*:1", allow_remote=True)  # the explicit option lifts the refusal
    finally:
        sock.close(0)


def test_curve_socket_rejects_client_without_key(tmp_path):
    keys = CurveKeys(make_keys(tmp_path / "keys"))
    ctx = zmq.Context()
    port = free_base_port(span=1)
    addr = f"tcp://127.0.0.1:{port}"
    server = bind(ctx.socket(zmq.PULL), addr, keys=keys)
    try:
        # 1) a client holding the key is heard
        good = connect(ctx.socket(zmq.PUSH), addr, keys)
        good.send(b"authorised")
        assert server.poll(3000), "authorised client not delivered"
        assert server.recv() == b"authorised"
        # 2) a plain client (no CURVE) is not
        plain = ctx.socket(zmq.PUSH); plain.connect(addr)
        plain.send(b"injected", zmq.NOBLOCK) if plain.poll(0, zmq.POLLOUT) else None
        # 3) a CURVE client with a key not in authorized/ is not either
        other_pub, other_sec = zmq.curve_keypair()
        rogue = ctx.socket(zmq.PUSH)
        rogue.curve_publickey, rogue.curve_secretkey = other_pub, other_sec
        rogue.curve_serverkey = keys.server_public
        rogue.connect(addr)
        try:
            rogue.send(b"rogue", zmq.NOBLOCK)
        except zmq.Again:
            pass
        assert not server.poll(1500), "an unauthenticated client got a message through"
        for s in (good, plain, rogue):
            s.close(0)
    finally:
        server.close(0)
        stop_authenticators()
        ctx.term()
