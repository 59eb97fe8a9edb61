"""The handshake gate (treasurehunt/transport.py): at most N new connections read before their first write."""

import os
import socket
import subprocess
import sys

import pytest
from twisted.internet import tcp
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from treasurehunt import transport

HOLD = 2.0


@pytest.fixture
def gated(monkeypatch):
    """transport.install(handshakes=2) on twisted's Server class, undone after the test; yields a factory of
    server connections on socket pairs, accepted as twisted's Port accepts them, and their reactor."""
    for name in ("__init__", "write", "writeSequence", "connectionLost"):
        monkeypatch.setattr(tcp.Server, name, getattr(tcp.Server, name))
    monkeypatch.setattr(transport, "_gate", None)
    transport.install(handshakes=2, hold=HOLD)
    reactor = MemoryReactorClock()
    sockets = []

    def accept():
        ours, peer = socket.socketpair()
        ours.setblocking(False)
        sockets.extend((ours, peer))
        protocol = Protocol()
        conn = tcp.Server(ours, protocol, ("127.0.0.1", len(sockets)), None, len(sockets), reactor)
        protocol.makeConnection(conn)
        return conn

    yield accept, reactor
    for sock in sockets:
        sock.close()


def reading(reactor) -> set:
    return set(reactor.getReaders())


def test_connections_past_the_limit_wait_unread_until_an_earlier_one_writes(gated):
    accept, reactor = gated
    first, second, third, fourth = accept(), accept(), accept(), accept()
    assert reading(reactor) == {first, second}  # the 3rd and 4th wait: their requests stay in the kernel

    second.write(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")  # its handshake is answered
    assert reading(reactor) == {first, second, third}  # the oldest waiting one is read now

    second.write(b"a frame")  # later writes free nothing more
    assert reading(reactor) == {first, second, third}
    first.writeSequence([b"HTTP/1.1 200 OK\r\n", b"\r\n"])  # an HTTP response frees its slot too
    assert reading(reactor) == {first, second, third, fourth}


def test_a_connection_closed_before_its_first_write_frees_its_slot(gated):
    accept, reactor = gated
    first, second, third = accept(), accept(), accept()
    first.connectionLost(Failure(ConnectionError("gone")))
    assert third in reading(reactor) and second in reading(reactor)


def test_a_connection_that_closed_while_it_waited_is_skipped(gated):
    accept, reactor = gated
    first, _, gone, fourth = accept(), accept(), accept(), accept()
    gone.connected = 0  # closed by the server (a timeout) while it waited
    first.write(b"answered")
    assert gone not in reading(reactor) and fourth in reading(reactor)


def test_slots_held_longer_than_the_hold_are_freed_by_the_timer(gated):
    # Two clients that connect and send nothing cannot keep everyone else out for longer than HOLD.
    accept, reactor = gated
    idle_1, idle_2, waiting = accept(), accept(), accept()
    reactor.advance(HOLD - 0.1)
    assert waiting not in reading(reactor)
    reactor.advance(0.2)  # the timer armed when `waiting` was parked
    assert reading(reactor) == {idle_1, idle_2, waiting}
    assert not idle_1.gated and not idle_2.gated and waiting.gated
    idle_1.write(b"late")  # an expired slot is not freed twice
    assert len(transport._gate.reading) == 1


def test_without_handshakes_set_nothing_is_gated(monkeypatch):
    for name in ("__init__", "write", "writeSequence", "connectionLost"):
        monkeypatch.setattr(tcp.Server, name, getattr(tcp.Server, name))
    monkeypatch.setattr(transport, "_gate", None)
    transport.install()
    assert transport._gate is None and tcp.Server.__init__ is transport._server_init
    reactor = MemoryReactorClock()
    conns, sockets = [], []
    for n in range(5):
        ours, peer = socket.socketpair()
        sockets.extend((ours, peer))
        conns.append(tcp.Server(ours, Protocol(), ("127.0.0.1", n), None, n, reactor))
    assert reading(reactor) == set(conns) and not any(c.gated for c in conns)
    for sock in sockets:
        sock.close()


def test_the_asgi_entry_point_sets_the_gate_from_the_settings():
    # In a process of its own, as daphne imports it: HANDSHAKES_IN_FLIGHT and HANDSHAKE_HOLD_SECONDS.
    code = (
        "import treasurehunt.asgi; from treasurehunt import transport; from twisted.internet import tcp; "
        "g = transport._gate; print(g.limit, g.hold, tcp.Server.__init__ is transport._gated_init)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "treasurehunt.settings", "HANDSHAKES_IN_FLIGHT": "128"}
    env.update(HANDSHAKE_HOLD_SECONDS="1.5")
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.stdout.strip().splitlines()[-1:] == ["128 1.5 True"], done.stderr[-2000:]


def test_the_gate_refuses_a_limit_below_one():
    with pytest.raises(ValueError):
        transport.HandshakeGate(0, HOLD)
