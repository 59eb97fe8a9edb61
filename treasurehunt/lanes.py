"""Threads for the live stream's database hops that take the most urgent work first.

A daphne process ran all its sockets' database work (hunts.consumers: connects, guesses, resumes) in the
event loop's default thread pool, first come, first served. In a connect storm thousands of connects
queue there, and a guess sent by an open socket waited behind all of them: a median of 9.7 s before its
`guess.accepted` while 5,000 sockets connected (BENCHMARKS.md, fix 51). Here each hop is handed to a lane,
and a free thread takes the oldest work of the most urgent lane that has any: a guess waits at most for
one thread to finish the hop it is in. Connects wait while urgent work keeps every thread busy (no aging):
guesses come from open sockets at a player's pace, far below what the threads serve. The threads are as
many as the default pool's, so the process needs no more database connections than before (README,
"Sizing"). They are daemon threads: a hop still
running when the process exits is cut, and its transaction rolls back: a guess is then not recorded, and
its client, which got no `guess.accepted`, sends it again under the same id (the hunt page posts its form
after a timeout).
"""

import threading
from collections import deque
from concurrent.futures import Executor, Future

from django.conf import settings

URGENT = 0  # what a player is waiting on: a guess, a resume
CONNECT = 1  # a socket opening its stream

LANES = (URGENT, CONNECT)


class Lanes:
    """Up to `max_workers` threads, started as work comes, running the work of lane 0 before lane 1's (each
    lane first in, first out)."""

    def __init__(self, max_workers: int, *, name: str = "stream"):
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.max_workers, self.name = max_workers, name
        self._queues = tuple(deque() for _ in LANES)
        self._cond = threading.Condition()
        self._threads = 0
        self._idle = 0  # threads waiting for work and not yet woken for any

    @property
    def threads(self) -> int:
        """Threads started so far (at most max_workers)."""
        return self._threads

    @property
    def idle(self) -> int:
        """Threads waiting for work and not yet woken for any."""
        with self._cond:
            return self._idle

    def waiting(self, lane: int) -> int:
        """Work of `lane` not yet taken by a thread."""
        with self._cond:
            return len(self._queues[lane])

    def submit(self, lane: int, fn, /, *args, **kwargs) -> Future:
        future = Future()
        with self._cond:
            self._queues[lane].append((future, fn, args, kwargs))
            if self._idle:
                self._idle -= 1
                self._cond.notify()
            elif self._threads < self.max_workers:
                name = f"{self.name}-{self._threads + 1}"
                thread = threading.Thread(target=self._work, name=name, daemon=True)
                try:
                    thread.start()
                except BaseException:  # no thread ("can't start new thread"): the work does not stay queued
                    self._queues[lane].pop()
                    raise
                self._threads += 1
        return future

    def _next(self):
        for queue in self._queues:
            if queue:
                return queue.popleft()
        return None

    def _work(self) -> None:
        while True:
            with self._cond:
                while (item := self._next()) is None:
                    self._idle += 1
                    self._cond.wait()
            future, fn, args, kwargs = item
            del item
            if future.set_running_or_notify_cancel():  # else cancelled while it waited: skipped
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
                    del result
            del future, fn, args, kwargs  # nothing of the last work kept while the thread waits


class Lane(Executor):
    """One lane of the process's stream pool, as an executor (for asgiref's SyncToAsync and run_in_executor).

    The pool is looked up at each submit, so a test may put another in its place (set_stream_pool)."""

    def __init__(self, lane: int):
        self.lane = lane

    def submit(self, fn, /, *args, **kwargs) -> Future:
        return stream_pool().submit(self.lane, fn, *args, **kwargs)


_pool: Lanes | None = None
_pool_lock = threading.Lock()


def stream_pool() -> Lanes:
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = Lanes(settings.STREAM_THREADS)
    return _pool


def set_stream_pool(pool: Lanes | None) -> Lanes | None:
    """Put `pool` in the process's place (None: a new default one when next needed); returns the old one."""
    global _pool
    with _pool_lock:
        old, _pool = _pool, pool
    return old


def stream_lane(lane: int) -> Lane:
    """An executor submitting to `lane` of whatever stream pool the process has when the work comes."""
    return Lane(lane)
