"""Write-through for twisted's server connections (treasurehunt/transport.py), on a real socket pair."""

import socket

import pytest
from twisted.internet import tcp
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactor

from treasurehunt import transport


@pytest.fixture
def connection():
    """A twisted server connection on one end of a socket pair (the test reads the other end)."""
    transport.install()
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    peer.settimeout(2)
    reactor = MemoryReactor()
    protocol = Protocol()
    conn = tcp.Server(ours, protocol, ("127.0.0.1", 1), None, 1, reactor)
    protocol.makeConnection(conn)
    yield conn, peer, reactor
    ours.close()
    peer.close()


def read(peer: socket.socket, n: int) -> bytes:
    got = b""
    while len(got) < n:
        got += peer.recv(n - len(got))
    return got


def test_the_asgi_entry_point_installs_it():
    import treasurehunt.asgi  # noqa: F401

    assert transport.installed()


def test_a_write_with_nothing_waiting_goes_out_at_once_without_registering_for_writing(connection):
    conn, peer, reactor = connection
    conn.write(b"hello")
    assert read(peer, 5) == b"hello"
    assert reactor.getWriters() == []
    assert conn.dataBuffer == b"" and conn._tempDataLen == 0


def test_what_the_socket_does_not_take_is_buffered_and_sent_later_in_order(connection):
    conn, peer, reactor = connection
    big = bytes(range(256)) * 8192  # 2 MiB: more than the socket pair's buffers
    conn.write(big)
    assert reactor.getWriters() == [conn]  # the rest waits for the socket
    waiting = conn._tempDataLen
    assert 0 < waiting < len(big)  # the socket took the first part at once
    conn.write(b"after")  # must not overtake what is waiting
    assert conn._tempDataBuffer[-1] == b"after" and conn._tempDataLen == waiting + 5
    received = b""
    while conn.dataBuffer[conn.offset :] or conn._tempDataLen:
        received += peer.recv(1 << 20)
        conn.doWrite()
    received += read(peer, len(big) + 5 - len(received))
    assert received == big + b"after"
    assert reactor.getWriters() == []


def test_a_closing_connection_takes_twisteds_own_path(connection):
    conn, peer, reactor = connection
    conn.disconnecting = True
    conn.write(b"late")
    assert conn._tempDataLen == 4 and reactor.getWriters() == [conn]
    peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        peer.recv(10)


def test_a_socket_error_is_left_to_twisted_to_report(connection):
    conn, peer, reactor = connection
    peer.close()
    conn.socket.shutdown(socket.SHUT_WR)  # the next send fails with EPIPE
    conn.write(b"lost")
    # Buffered as twisted would; its doWrite reports the lost connection.
    assert conn._tempDataLen == 4 and reactor.getWriters() == [conn]
    assert conn.doWrite() is not None
