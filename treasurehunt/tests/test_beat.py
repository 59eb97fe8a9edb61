"""Celery beat's scheduler (treasurehunt/beat.py): it sleeps until an entry is due, and sends it on time."""

from datetime import UTC, datetime, timedelta

import pytest

from treasurehunt.beat import Scheduler
from treasurehunt.celery import app


class Recording(Scheduler):
    """The scheduler with a fake clock, recording what it would send instead of publishing it."""

    producer = None  # never connects to the broker

    def __init__(self, *args, clock, **kwargs):
        self.clock, self.sent = clock, []
        super().__init__(*args, **kwargs)

    def apply_entry(self, entry, producer=None):
        self.sent.append((entry.name, self.clock[0]))


@pytest.fixture
def clock(monkeypatch):
    # Half a second past a whole second: Celery's heap keeps whole seconds, the schedules exact times.
    clock = [datetime(2026, 11, 27, 12, 0, 0, 500_000, tzinfo=UTC)]
    monkeypatch.setattr(app, "now", lambda: clock[0])
    return clock


def run_beat(scheduler: Recording, clock: list, *, sends: int, limit: int = 1000) -> int:
    """Beat's loop (celery.beat.Service.start) on the fake clock: tick, and sleep what tick() asks.

    Returns the number of tick() calls until `sends` entries were sent, or `limit` (a loop that never
    sleeps would spin forever on a clock that only sleeping moves).
    """
    ticks = 0
    while len(scheduler.sent) < sends and ticks < limit:
        interval = scheduler.tick()
        ticks += 1
        if interval and interval > 0:
            clock[0] += timedelta(seconds=interval)
    return ticks


def test_beat_is_configured_with_this_scheduler():
    assert app.conf.beat_scheduler == "treasurehunt.beat:Scheduler"


def test_beat_sleeps_until_each_entry_is_due_instead_of_spinning(clock, tmp_path):
    scheduler = Recording(app=app, schedule_filename=str(tmp_path / "schedule"), lazy=False, clock=clock)
    try:
        ticks = run_beat(scheduler, clock, sends=12)
    finally:
        scheduler.close()

    assert len(scheduler.sent) == 12
    # Celery's scheduler called tick() about 2,200 times in 12 s of real time for 7 entries sent (and
    # never returns here: it spins waiting for time to pass). This one wakes up to 10 ms early, sleeps the
    # rest, sends the entry, and asks again for the next: a few calls per entry.
    assert ticks <= 4 * len(scheduler.sent)


def test_entries_are_sent_on_time(clock, tmp_path):
    start = clock[0]
    scheduler = Recording(app=app, schedule_filename=str(tmp_path / "schedule"), lazy=False, clock=clock)
    try:
        run_beat(scheduler, clock, sends=12)
    finally:
        scheduler.close()

    for name, every in (("clock-tick", 2.0), ("sweeper", 5.0)):
        times = [(at - start).total_seconds() for sent, at in scheduler.sent if sent == name]
        assert len(times) >= 2, name
        # Each due time to the millisecond: not early, and not late by the drift it no longer spins away.
        for n, at in enumerate(times, start=1):
            assert n * every <= at < n * every + 0.001, (name, n, at)


def test_adjust_keeps_celerys_drift_where_it_leaves_a_delay_to_sleep():
    scheduler = Scheduler.__new__(Scheduler)  # adjust needs no state
    assert scheduler.adjust(2.0) == pytest.approx(1.99)
    assert scheduler.adjust(0.004) == 0.004  # Celery's: -0.006, i.e. no sleep and another tick at once
    assert scheduler.adjust(0) == 0
    assert scheduler.adjust(None) is None
