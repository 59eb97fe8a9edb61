"""daphne's passes over every connection, a slice of connections per turn of the event loop.

daphne walks its whole connection table on the event loop once a second (`Server.application_checker`:
reap the application instances that ended, log their exceptions, cancel those that outlive their socket's
disconnect by `application_close_timeout`) and every 2 s (`Server.timeout_checker`: each connection's
`check_timeouts`, which closes what timed out and sends the WebSocket auto-pings), each in one go. No frame
is read or written meanwhile. Timed in daphne under 200 guesses/s with 2,000 sockets open (an ad-hoc
wrapper around both), the 2 s pass took 2.9 ms on average and up to 5.7 ms, the 1 s pass 1.1 ms and up to
10.3 ms, with thousands more sockets proportionally longer (BENCHMARKS.md, fix 39).

`install()` gives daphne passes that do the same work SLICE connections at a time, each slice a callback
of its own, so sockets are served between slices; the next pass starts its 1 s or 2 s after the last
slice, as daphne's starts after its single one. A connection that leaves the table between slices is
skipped. The reaping is daphne 4.2's `application_checker` per connection (`reap`), its log lines and
their logger included; `tests/test_housekeeping.py` runs both on the same tables and compares.
"""

import asyncio
import concurrent.futures
import logging
import time

log = logging.getLogger("daphne.server")  # the lines daphne's own pass writes, under its logger

SLICE = 100  # connections per loop callback: about 0.1 ms of the loop
APPLICATION_EVERY = 1  # seconds between passes, as daphne's
TIMEOUT_EVERY = 2

_CANCELLED = (asyncio.CancelledError, concurrent.futures.CancelledError)


def _call_later(delay: float, func, *args) -> None:
    from twisted.internet import reactor  # daphne's asyncio reactor, installed before this runs

    reactor.callLater(delay, func, *args)


def sliced(items: list, visit, done) -> None:
    """visit(item) for each item, SLICE per loop callback starting with this one; then done()."""

    def step(start: int) -> None:
        end = start + SLICE
        for item in items[start:end]:
            try:
                visit(item)
            except Exception:
                log.exception("daphne housekeeping failed for %r", item)
        if end < len(items):
            _call_later(0, step, end)
        else:
            done()

    step(0)


def reap(server, protocol) -> None:
    """What daphne's application_checker does for one connection (daphne/server.py, 4.2)."""
    details = server.connections[protocol]
    disconnected = details.get("disconnected", None)
    instance = details.get("application_instance", None)
    # An application still running long after its socket went away is cancelled.
    late = disconnected and time.time() - disconnected > server.application_close_timeout
    if late and instance and not instance.done():
        log.warning(
            "Application instance %r for connection %s took too long to shut down and was killed.",
            instance,
            repr(protocol),
        )
        instance.cancel()
    # One that ended is reaped, and its exception, if any, logged and shown to a connected client.
    if instance and instance.done():
        try:
            exception = instance.exception()
        except _CANCELLED:
            exception = None
        try:
            if exception:
                if isinstance(exception, KeyboardInterrupt):
                    server.stop()
                else:
                    log.error("Exception inside application: %s", exception, exc_info=exception)
                    if not disconnected:
                        protocol.handle_exception(exception)
        finally:  # reaped even when showing the failure fails (else it would be logged again every second)
            del details["application_instance"]
        instance = None
    # A closed connection whose application is gone leaves the table.
    if not instance and disconnected:
        del server.connections[protocol]


def check_timeouts(server, protocol) -> None:
    """What daphne's timeout_checker does for one connection."""
    protocol.check_timeouts()


def _pass_over(server, visit, every: float, again) -> None:
    """visit(server, protocol) for each connection still in the table when its slice comes, then `again`
    `every` seconds after the last slice (as daphne reschedules its own passes)."""

    def still_there(protocol) -> None:
        if protocol in server.connections:
            visit(server, protocol)

    sliced(list(server.connections), still_there, lambda: _call_later(every, again))


def application_checker(server) -> None:
    _pass_over(server, reap, APPLICATION_EVERY, server.application_checker)


def timeout_checker(server) -> None:
    _pass_over(server, check_timeouts, TIMEOUT_EVERY, server.timeout_checker)


PASSES = {"application_checker": application_checker, "timeout_checker": timeout_checker}
DAPHNE: dict = {}  # daphne's own passes, kept by install() (the tests compare with them)


def install() -> None:
    """Give daphne's server the sliced passes (idempotent); the daphne process's asgi module calls it."""
    from daphne.server import Server

    for name, ours in PASSES.items():
        if getattr(Server, name) is not ours:
            DAPHNE[name] = getattr(Server, name)
        setattr(Server, name, ours)


def installed() -> bool:
    from daphne.server import Server

    return all(getattr(Server, name) is ours for name, ours in PASSES.items())
