"""daphne's passes over every connection, in slices (treasurehunt/housekeeping.py)."""

import asyncio
import logging
import time

import pytest
from daphne import server as daphne_server

from treasurehunt import housekeeping


class Later:
    """A reactor's callLater that only records: the test runs the callbacks."""

    def __init__(self):
        self.calls = []

    def callLater(self, delay, func, *args):  # noqa: N802 (twisted's name)
        self.calls.append((delay, func, args))

    def run_slices(self) -> int:
        """Run the 0-delay callbacks (the slices) until none is left; how many ran."""
        ran = 0
        while any(delay == 0 for delay, _, _ in self.calls):
            index = next(i for i, (delay, _, _) in enumerate(self.calls) if delay == 0)
            _, func, args = self.calls.pop(index)
            func(*args)
            ran += 1
        return ran


@pytest.fixture
def later(monkeypatch):
    later = Later()
    monkeypatch.setattr(housekeeping, "_call_later", later.callLater)
    monkeypatch.setattr(daphne_server, "reactor", later)  # daphne's own passes reschedule through it
    return later


class Protocol:
    def __init__(self, name):
        self.name, self.exceptions, self.checked = name, [], 0

    def handle_exception(self, exception):
        self.exceptions.append(exception)

    def check_timeouts(self):
        self.checked += 1

    def __repr__(self):
        return f"<Protocol {self.name}>"


class Server:
    application_close_timeout = 10

    def __init__(self, connections):
        self.connections, self.stopped = connections, 0
        self.protocols = list(connections)  # those that leave the table included

    def stop(self):
        self.stopped += 1

    # What daphne's Server gives its passes to reschedule themselves.
    def application_checker(self):
        pass

    def timeout_checker(self):
        pass


def table(loop) -> Server:
    """A connection table with every case daphne's application pass tells apart."""
    now = time.time()

    def future(outcome=None):
        f = loop.create_future()
        if outcome == "ok":
            f.set_result(None)
        elif outcome == "cancelled":
            f.cancel()
        elif isinstance(outcome, BaseException):
            f.set_exception(outcome)
        return f

    rows = {
        "running": {"application_instance": future()},
        "ended": {"application_instance": future("ok")},
        "failed": {"application_instance": future(ValueError("boom"))},
        "failed, gone": {"application_instance": future(ValueError("late")), "disconnected": now - 1},
        "closing": {"application_instance": future(), "disconnected": now - 1},
        "stuck": {"application_instance": future(), "disconnected": now - 60},
        "cancelled": {"application_instance": future("cancelled")},
        "gone": {"disconnected": now - 1},
        "idle": {},
        "interrupted": {"application_instance": future(KeyboardInterrupt())},
    }
    return Server({Protocol(name): details for name, details in rows.items()})


def outcome(server: Server) -> dict:
    return {
        "table": sorted((p.name, sorted(d)) for p, d in server.connections.items()),
        "shown": sorted((p.name, str(e)) for p in server.protocols for e in p.exceptions),
        "stopped": server.stopped,
    }


def daphnes(name):
    return housekeeping.DAPHNE.get(name, getattr(daphne_server.Server, name))


def test_each_connection_is_reaped_as_daphnes_own_pass_does(later, caplog):
    loop = asyncio.new_event_loop()
    try:
        theirs, ours = table(loop), table(loop)
        stuck = {s: next(d["application_instance"] for p, d in s.connections.items() if p.name == "stuck")
                 for s in (theirs, ours)}  # fmt: skip
        with caplog.at_level(logging.WARNING, logger="daphne.server"):
            daphnes("application_checker")(theirs)
            their_lines = [r.getMessage() for r in caplog.records]
            caplog.clear()
            housekeeping.application_checker(ours)
            later.run_slices()
            our_lines = [r.getMessage() for r in caplog.records]
    finally:
        loop.close()

    assert outcome(ours) == outcome(theirs)
    assert our_lines == their_lines and len(our_lines) == 3  # two exceptions, and the stuck one
    assert stuck[ours].cancelled() and stuck[theirs].cancelled()
    # The cases themselves: a failure is shown to its still-connected client, closed ones leave the table.
    assert outcome(ours)["shown"] == [("failed", "boom")]
    assert ("gone", []) not in outcome(ours)["table"] and ("idle", []) in outcome(ours)["table"]
    assert ours.stopped == 1


def test_a_pass_visits_a_slice_of_connections_per_callback_and_then_schedules_the_next(later, monkeypatch):
    monkeypatch.setattr(housekeeping, "SLICE", 100)
    protocols = [Protocol(n) for n in range(250)]
    server = Server({p: {} for p in protocols})

    housekeeping.timeout_checker(server)
    assert sum(p.checked for p in protocols) == 100  # the first slice, at once
    assert [delay for delay, _, _ in later.calls] == [0]  # the next slice, on the loop's next turn

    assert later.run_slices() == 2
    assert all(p.checked == 1 for p in protocols)
    # The next pass only once this one is done, 2 s later as daphne's.
    assert [(delay, func) for delay, func, _ in later.calls] == [(2, server.timeout_checker)]

    later.calls.clear()
    housekeeping.application_checker(server)
    later.run_slices()
    assert [(delay, func) for delay, func, _ in later.calls] == [(1, server.application_checker)]


def test_a_connection_gone_between_slices_is_skipped(later, monkeypatch):
    monkeypatch.setattr(housekeeping, "SLICE", 10)
    protocols = [Protocol(n) for n in range(30)]
    server = Server({p: {} for p in protocols})

    housekeeping.timeout_checker(server)
    del server.connections[protocols[25]]
    later.run_slices()

    assert [p.name for p in protocols if p.checked != 1] == [25]
    assert protocols[25].checked == 0


def test_a_connection_that_fails_its_check_is_logged_and_the_pass_goes_on(later, monkeypatch, caplog):
    monkeypatch.setattr(housekeeping, "SLICE", 10)
    protocols = [Protocol(n) for n in range(20)]

    def broken():
        raise RuntimeError("bad protocol")

    protocols[3].check_timeouts = broken
    server = Server({p: {} for p in protocols})

    with caplog.at_level(logging.ERROR, logger="daphne.server"):
        housekeeping.timeout_checker(server)
        later.run_slices()

    assert sum(p.checked for p in protocols) == 19
    assert [(delay, func) for delay, func, _ in later.calls] == [(2, server.timeout_checker)]
    assert "daphne housekeeping failed for <Protocol 3>" in caplog.text


def test_install_replaces_both_passes_and_keeps_daphnes(monkeypatch):
    monkeypatch.setattr(daphne_server.Server, "application_checker", daphnes("application_checker"))
    monkeypatch.setattr(daphne_server.Server, "timeout_checker", daphnes("timeout_checker"))
    assert not housekeeping.installed()
    housekeeping.install()
    housekeeping.install()  # idempotent: daphne's are still the ones kept
    assert housekeeping.installed()
    assert housekeeping.DAPHNE["timeout_checker"] is not housekeeping.timeout_checker
    assert housekeeping.DAPHNE["application_checker"] is not housekeeping.application_checker


def test_an_application_whose_failure_cannot_be_shown_is_still_reaped(later, caplog):
    loop = asyncio.new_event_loop()
    try:
        failed = loop.create_future()
        failed.set_exception(ValueError("boom"))
        protocol = Protocol("failing")

        def cannot_show(exception):
            raise RuntimeError("the socket is gone")

        protocol.handle_exception = cannot_show
        server = Server({protocol: {"application_instance": failed}})
        with caplog.at_level(logging.ERROR, logger="daphne.server"):
            housekeeping.application_checker(server)
            later.run_slices()
            housekeeping.application_checker(server)  # the next pass: nothing left to log
            later.run_slices()
    finally:
        loop.close()

    assert server.connections == {protocol: {}}
    assert caplog.text.count("Exception inside application: boom") == 1
    assert caplog.text.count("daphne housekeeping failed for <Protocol failing>") == 1
