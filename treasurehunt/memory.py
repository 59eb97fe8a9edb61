"""The collector kept off the loop's back while sockets come, and memory handed back once they go.

A process holding thousands of sockets keeps each one's consumer, tasks, queues and buffers alive. Two
costs follow:
- every collection of the oldest generation walks all of it: with 5,000 sockets one took 510 ms, during
  a connect storm, and collected nothing; with 2,000 sockets such a pause holds up every guess in flight;
- when the sockets close, much of what they held is cyclic garbage that only a full collection frees, and
  what is freed stays with the allocator: after a storm fell back the process kept its memory, and the
  next storm added its own (idle RSS after five cycles of 5,000 sockets was 1.2 times that after the
  first). BENCHMARKS.md has the figures.

`ReleaseMemory` counts the process's open sockets.
- Each time `freeze_step` more are open than at the last freeze, it freezes what is alive (`gc.freeze`, a
  constant-time move of the collector's lists): the sockets' objects leave the collector's generations,
  so its collections stay short however many sockets are open.
- Every `step` seconds while sockets are open it collects the young and middle generations, and every
  `full_every`-th step all of them, then freezes what survived that full collection. Each message a
  socket receives replaces the chain of objects its consumer waits on (coroutines, futures and their
  wrappers), and CPython counts those births against the old chain's deaths, so the young generation
  filled with them for 11-13 s at 200 guesses/s, and then one young collection walked 58,000-79,000
  objects: 40-50 ms of daphne with 2,000 sockets, the slowest guesses of a run. A step walks about one
  second's worth (5-12 ms); the full collection walks what survived since the last one, and freezing only
  after it freezes no garbage but what was in flight at that moment (BENCHMARKS.md, fix 59). A step in
  which more than `burst` sockets connected only counts them: the automatic collections and the freezes
  above deal with a burst's objects.
- Frozen objects are never collected, so the garbage they become when their sockets close waits for a
  release, as does cyclic garbage not yet collected when a freeze comes (at most one young generation's
  worth per freeze; a process that never sees `min_closed` closes keeps it).
- A release comes once `min_closed` sockets have closed since the last one and either no more than
  `fraction` of the peak is still open (a storm fell back, a hunt ended) or as many have closed as
  are open (the sockets have turned over). It waits until no socket has closed for `quiet` seconds (at
  most `max_wait`), then unfreezes, runs one full collection, freezes what survived, and asks glibc to
  return free pages (`malloc_trim`). It logs what it did and how long the pause was.
"""

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import time

log = logging.getLogger(__name__)


def _malloc_trim():
    """glibc's malloc_trim, or None where the C library has none (musl, macOS)."""
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def rss_kb(pid: int | str = "self") -> int | None:
    """A process's resident set size in KB (Linux; this process by default), or None."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def release() -> dict:
    """Unfreeze, one full collection, freeze what survived, free pages back to the system; what it did."""
    started, before = time.perf_counter(), rss_kb()
    gc.unfreeze()
    collected = gc.collect()
    gc.freeze()
    trim = _malloc_trim()
    trimmed = bool(trim(0)) if trim is not None else None
    return {
        "collected": collected,
        "trimmed": trimmed,
        "rss_before_kb": before,
        "rss_after_kb": rss_kb(),
        "ms": round((time.perf_counter() - started) * 1000, 1),
    }


class ReleaseMemory:
    """ASGI middleware: freezes sockets' objects as they come, and calls `release` when they have gone."""

    def __init__(
        self,
        app,
        *,
        freeze_step: int = 500,
        min_closed: int = 1000,
        fraction: float = 0.25,
        quiet: float = 1.0,
        max_wait: float = 10.0,
        step: float = 1.0,
        burst: int = 100,
        full_every: int = 60,
    ):
        self.app = app
        self.freeze_step, self.min_closed, self.fraction = freeze_step, min_closed, fraction
        self.quiet, self.max_wait = quiet, max_wait
        self.step, self.burst, self.full_every = step, burst, full_every
        self.open = self.peak = self.frozen_at = self.closed_since = self.opened_in_step = self.steps = 0
        self.last_close = self.due_since = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.stepper: asyncio.TimerHandle | None = None  # the next step, on the loop of `stepping_on`
        self.stepping_on: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        self.opened()
        try:
            return await self.app(scope, receive, send)
        finally:
            self.closed()

    def opened(self) -> None:
        self.open += 1
        self.opened_in_step += 1
        self.peak = max(self.peak, self.open)
        if self.open >= self.frozen_at + self.freeze_step:
            gc.freeze()
            self.frozen_at = self.open
        loop = asyncio.get_running_loop()
        if self.stepper is None or self.stepping_on is not loop:
            if self.stepper is not None:
                self.stepper.cancel()  # scheduled on an earlier loop
            self.stepping_on = loop
            self.stepper = loop.call_later(self.step, self.steady)

    def steady(self) -> None:
        """One step (unless a burst of connects came in): the young and middle generations collected, or on
        every `full_every`-th step every generation, with what survived frozen; again in `step` seconds while
        sockets are open."""
        loop = asyncio.get_running_loop()
        if loop is not self.stepping_on:  # a step left on an earlier loop
            return
        if self.stepper is not None:
            self.stepper.cancel()  # a no-op for the step running now; one still pending when called early
        self.stepper = None
        if self.opened_in_step <= self.burst:
            self.steps += 1
            if self.steps % self.full_every == 0:
                gc.collect()
                gc.freeze()
            else:
                gc.collect(1)
        self.opened_in_step = 0
        if self.open > 0:
            self.stepper = loop.call_later(self.step, self.steady)

    def due(self) -> bool:
        if self.closed_since < self.min_closed:
            return False
        return self.open <= self.peak * self.fraction or self.closed_since >= self.open

    def closed(self) -> None:
        self.open -= 1
        self.closed_since += 1
        self.frozen_at = min(self.frozen_at, self.open)
        self.last_close = time.monotonic()
        if self.timer is None and self.due():
            self.due_since = self.last_close
            self.timer = asyncio.get_running_loop().call_later(self.quiet, self.fire)

    def fire(self) -> None:
        self.timer = None
        if not self.due():  # sockets came back meanwhile
            return
        now = time.monotonic()
        wait = self.last_close + self.quiet - now
        if wait > 0 and now - self.due_since < self.max_wait:  # still closing: wait for the last of them
            self.timer = asyncio.get_running_loop().call_later(wait, self.fire)
            return
        done = release()
        log.info(
            "released memory after %d sockets closed (%d still open, peak %d): %s",
            self.closed_since,
            self.open,
            self.peak,
            done,
        )
        self.peak = self.frozen_at = self.open
        self.closed_since = 0


class CollectionWatch:
    """Logs every collection of the oldest generation that takes at least `slow_ms` (a pause of the loop)."""

    def __init__(self, slow_ms: float = 50.0):
        self.slow_ms = slow_ms
        self.started = 0.0
        self.full = 0  # full collections seen
        self.paused_ms = 0.0  # their total time

    def __call__(self, phase: str, info: dict) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self.started = time.perf_counter()
            return
        took = (time.perf_counter() - self.started) * 1000
        self.full += 1
        self.paused_ms += took
        if took >= self.slow_ms:
            log.warning(
                "full collection took %.0f ms (%d collected; %d so far, %.0f ms in all)",
                took,
                info["collected"],
                self.full,
                self.paused_ms,
            )


collection_watch = CollectionWatch()
