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


def test_the_timer_frees_each_slot_when_its_own_hold_runs_out(gated):
    accept, reactor = gated
    a, _ = accept(), accept()  # t=0: both seated
    p1 = accept()  # parked; the timer is set for t=2 (the oldest slot's hold)
    reactor.advance(1.0)
    a.write(b"101")  # t=1: p1 gets a's slot
    assert p1 in reading(reactor)
    reactor.advance(0.5)
    c = accept()  # t=1.5: parked
    reactor.advance(0.1)
    d = accept()  # t=1.6: parked
    reactor.advance(0.45)  # t=2.05: the 2nd connection's slot (since t=0) expires: c is read
    assert c in reading(reactor) and d not in reading(reactor)
    reactor.advance(1.0)  # t=3.05: p1's slot (since t=1) expires: d is read, not a hold after the last tick
    assert d in reading(reactor)


def test_a_parked_http_channel_is_not_read_until_admitted(gated):
    # twisted's HTTP protocol (daphne's) registers itself as the connection's producer when it starts:
    # that must not start reading a parked connection.
    from twisted.web.http import HTTPChannel

    accept, reactor = gated
    first, _ = accept(), accept()
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    channel = HTTPChannel()
    channel.callLater = reactor.callLater  # its idle timeout on the test's clock
    conn = tcp.Server(ours, channel, ("127.0.0.1", 99), None, 99, reactor)
    channel.makeConnection(conn)
    try:
        assert conn not in reading(reactor)
        first.write(b"101")
        assert conn in reading(reactor)
    finally:
        channel.setTimeout(None)
        ours.close()
        peer.close()


def test_a_parked_connection_closed_or_aborted_by_the_server_is_skipped(gated):
    accept, reactor = gated
    first, second, closed, aborted, next_one = accept(), accept(), accept(), accept(), accept()
    closed.loseConnection()
    aborted.abortConnection()
    first.write(b"101")
    second.write(b"101")
    assert reading(reactor) & {closed, aborted} == set()
    assert next_one in reading(reactor)


@pytest.mark.parametrize("hold", [0, -1.0])
def test_the_gate_refuses_a_hold_that_is_not_positive(hold):
    with pytest.raises(ValueError):
        transport.HandshakeGate(2, hold)
