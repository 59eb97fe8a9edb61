"""Server-side TCP connections (daphne's accepted sockets) write straight to the socket when nothing waits.

Twisted's transports never write in `write()`: they append the bytes to a buffer and register the socket
with the reactor for writing; on the loop's next pass the reactor sees it writable, sends, and
unregisters it. On daphne's asyncio reactor that is an `add_writer` and a `remove_writer` (two epoll
calls and their bookkeeping) and one more loop callback for every frame sent. py-spy on daphne while an
announcement went to 5,000 sockets put 83% of `sendMessage` in that registration alone (BENCHMARKS.md,
"Fixes").

asyncio's own transports try the socket first and buffer only what it did not take. `install()` gives
twisted's server connections the same: when no earlier bytes are waiting, `write()` sends at once
(`writeSomeData`, which turns EAGAIN into 0 and other socket errors into a lost connection), and only
a remainder is buffered and registered as before. Anything unusual (TLS started on the connection, a
half-close, close or abort under way, bytes already waiting, a pull producer that twisted resumes only
once the buffer drains, an error from the socket) takes twisted's own path unchanged, so its order,
back-pressure and error handling stay as they are. The patch is on `twisted.internet.tcp.Server`, so it
covers every server-side TCP connection of the process; daphne's are the only ones here.
"""

from twisted.internet import tcp

_buffered_write = tcp.Server.write


def write(self, data: bytes) -> None:
    if (
        data
        and type(data) is bytes
        and not self._tempDataLen
        and self.offset == len(self.dataBuffer)
        and self.connected
        and not self.TLS
        and not self.disconnecting
        and not self._writeDisconnecting
        and not self._writeDisconnected
        and not self._aborting
        and (self.producer is None or self.streamingProducer)
    ):
        sent = self.writeSomeData(data)
        if type(sent) is int and sent > 0:
            if sent == len(data):
                return
            data = data[sent:]  # the rest waits for the socket, as before
    _buffered_write(self, data)


def install() -> None:
    """Make daphne's accepted connections write through (idempotent)."""
    tcp.Server.write = write


def installed() -> bool:
    return tcp.Server.write is write
