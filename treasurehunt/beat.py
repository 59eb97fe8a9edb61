"""Celery beat's scheduler, sleeping until an entry is due instead of spinning for its last 10 ms.

Celery's scheduler wakes 10 ms before an entry is due (`Scheduler.adjust` takes a drift of 10 ms off every
delay) and then, with less than 10 ms to go, computes a delay that the drift makes zero or negative: beat
calls `tick()` again at once, about 180 times a millisecond's worth of timezone arithmetic, until the
entry is due. With the clock every 2 s and the sweeper every 5 s, beat spun through about 2,200 ticks in
12 s for 7 tasks sent and spent about 11 ms of CPU per 2 s, all of it just before each of the clock's
ticks, on the core that daphne serves the sockets from (BENCHMARKS.md, fix 38).

Here a delay the drift would take to zero or below is slept in full: beat still wakes up to 10 ms early
for an entry, then sleeps the rest and sends it on time (25 ticks in the same 12 s). Everything else,
the schedule file (`-s`) included, is Celery's PersistentScheduler; `treasurehunt.celery` makes it
beat's default, so deploy/Procfile and the test stacks run it without a flag.
"""

from celery.beat import PersistentScheduler


class Scheduler(PersistentScheduler):
    def adjust(self, n, drift=-0.010):
        if n and n > 0:
            return n + drift if n + drift > 0 else n
        return n
