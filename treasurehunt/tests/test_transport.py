"""Write-through for twisted's server connections (treasurehunt/transport.py), on a real socket pair."""

import os
import socket
import subprocess
import sys

import pytest
from twisted.internet import tcp
from twisted.internet.interfaces import IPullProducer
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactor
from zope.interface import implementer

from treasurehunt import transport


@pytest.fixture
def connection(monkeypatch):
    """A twisted server connection on one end of a socket pair (the test reads the other end)."""
    monkeypatch.setattr(tcp.Server, "write", transport.write)  # restored after the test
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


def test_the_asgi_entry_point_installs_it_the_deferred_debug_lines_and_the_sliced_passes():
    # In a process of its own: nothing else in it has installed the patches, and importing the entry point
    # (which freezes the collector) leaves this one alone.
    code = (
        "import treasurehunt.asgi; from treasurehunt import housekeeping, transport, wsdebug; "
        "print(transport.installed() and wsdebug.installed() and housekeeping.installed())"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "treasurehunt.settings"}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.stdout.strip().splitlines()[-1:] == ["True"], done.stderr[-2000:]


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


@implementer(IPullProducer)
class Pull:
    def __init__(self):
        self.resumed = 0

    def resumeProducing(self):
        self.resumed += 1

    def stopProducing(self):
        pass


def test_a_pull_producer_keeps_twisteds_path_so_it_is_resumed_when_the_buffer_drains(connection):
    conn, peer, reactor = connection
    producer = Pull()
    conn.registerProducer(producer, False)  # twisted resumes a pull producer once at registration
    resumed = producer.resumed
    conn.write(b"chunk")
    assert conn._tempDataLen == 5 and reactor.getWriters() == [conn]
    conn.doWrite()  # the buffer drains: twisted asks the producer for more
    assert read(peer, 5) == b"chunk" and producer.resumed == resumed + 1


def test_an_aborting_connection_takes_twisteds_path(connection):
    conn, peer, reactor = connection
    conn._aborting = True
    conn.write(b"dropped")
    assert conn._tempDataLen == 7
