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

from collections import deque

from twisted.internet import tcp

_buffered_write = tcp.Server.write
tcp.Server.gated = False  # whether the connection holds one of the handshake gate's slots (below)


def write(self, data: bytes) -> None:
    if self.gated:  # its first write: the gate's slot is free (HandshakeGate, below)
        _gate.answered(self)
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


def install(*, handshakes: int = 0, hold: float = 2.0) -> None:
    """Make daphne's accepted connections write through (idempotent); with `handshakes`, gate new
    connections (HandshakeGate, below)."""
    global _gate
    tcp.Server.write = write
    if handshakes > 0 and _gate is None:
        _gate = HandshakeGate(handshakes, hold)
        tcp.Server.__init__ = _gated_init
        tcp.Server.writeSequence = _gated_write_sequence
        tcp.Server.connectionLost = _gated_connection_lost


def installed() -> bool:
    return tcp.Server.write is write


# --- The handshake gate (off unless HANDSHAKES_IN_FLIGHT is set) ---------------------------------------
#
# A burst of thousands of connects (a hunt's start) makes thousands of sockets readable at once, each with
# its upgrade request. The event loop reads every readable socket once per pass, so a frame from a player
# already connected waits its turn behind all the newcomers' handshakes, and each later step of its guess
# (the thread's result, the reply) waits for another such pass: 2-6 s at the start of a 5,000-socket burst
# on a slow 2-core VM (BENCHMARKS.md, fix 53). The gate lets at most `limit` new connections be read at
# once: a connection holds a slot from its accept to its first write (a handshake's 101, an HTTP
# response), its close, or `hold` seconds, whichever comes first; the rest stay unread (their requests
# wait in the kernel) until slots free, oldest first. Connections that send nothing cannot hold the door
# shut for longer than `hold`. The price: the burst as a whole takes longer (6-25% with 128 slots there).


class HandshakeGate:
    """At most `limit` accepted connections read before their first write; the rest wait, oldest first."""

    def __init__(self, limit: int, hold: float):
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if not hold > 0:
            raise ValueError("hold must be a positive number of seconds")
        self.limit, self.hold = limit, hold
        self.reading: dict = {}  # connection -> when it got its slot, oldest first
        self.parked: deque = deque()
        self.timer = None

    def now(self, conn) -> float:
        return conn.reactor.seconds()  # the reactor's clock (a test's MemoryReactorClock)

    def accepted(self, conn) -> None:
        """A new connection (reading already): it keeps reading if a slot is free, else waits."""
        self.expire(conn)
        if len(self.reading) < self.limit and not self.parked:
            self._seat(conn)
            return
        conn.stopReading()
        self.parked.append(conn)
        self._arm(conn)

    def answered(self, conn) -> None:
        """Its first write, or its close: its slot goes to the oldest connection waiting."""
        conn.gated = False
        if self.reading.pop(conn, None) is not None:
            self._admit()

    def expire(self, conn) -> None:
        """Slots held longer than `hold` are freed (their connections read on, ungated)."""
        now = self.now(conn)
        while self.reading:
            oldest, since = next(iter(self.reading.items()))
            if now - since < self.hold:
                break
            del self.reading[oldest]
            oldest.gated = False
        self._admit()

    def _seat(self, conn) -> None:
        conn.gated = True
        self.reading[conn] = self.now(conn)

    def _admit(self) -> None:
        while self.parked and len(self.reading) < self.limit:
            conn = self.parked.popleft()
            if not conn.connected or conn.disconnecting or conn._aborting:
                continue  # closed while it waited
            self._seat(conn)
            conn.startReading()

    def _arm(self, conn) -> None:
        # While connections wait, a timer frees each slot when its hold runs out, even if nothing else
        # happens: it fires when the oldest slot expires.
        if self.timer is None:
            oldest = next(iter(self.reading.values()), None)
            delay = self.hold if oldest is None else max(0.0, oldest + self.hold - self.now(conn))
            self.timer = conn.reactor.callLater(delay, self._tick, conn)

    def _tick(self, conn) -> None:
        self.timer = None
        self.expire(conn)
        if self.parked:
            self._arm(conn)


_gate: HandshakeGate | None = None
_server_init = tcp.Server.__init__
_write_sequence = tcp.Server.writeSequence
_connection_lost = tcp.Server.connectionLost


def _gated_init(self, *args, **kwargs) -> None:
    _server_init(self, *args, **kwargs)
    _gate.accepted(self)


def _gated_write_sequence(self, iovec) -> None:
    if self.gated:
        _gate.answered(self)
    _write_sequence(self, iovec)


def _gated_connection_lost(self, reason) -> None:
    if self.gated:
        _gate.answered(self)
    _connection_lost(self, reason)
