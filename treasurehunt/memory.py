"""Memory handed back to the system once most of a process's sockets have closed.

A process holding thousands of sockets keeps each one's consumer, tasks, queues and buffers. When they
close, much of that is cyclic garbage that only a full collection frees, and full collections are rare on
purpose (treasurehunt/asgi.py); what is freed stays with the allocator. After a hunt ends or a connect
storm falls back, the process would keep that memory for good, and the next storm would add to it: idle
RSS after five connect/disconnect cycles of 5,000 sockets was 1.2 times that after the first
(BENCHMARKS.md).

`ReleaseMemory` counts the process's open sockets. When at least `min_closed` of them have closed since
the peak and no more than `fraction` of the peak is still open, it waits until no socket has closed for
`quiet` seconds, then runs one full collection and asks glibc to return free pages (`malloc_trim`). The
collection walks only what is still alive (start-up objects are frozen out of it), so with few sockets
left it is short.
"""

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import os
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


def rss_kb() -> int | None:
    """This process's resident set size in KB (Linux), or None."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        return None


def release() -> dict:
    """One full collection, then free pages back to the system; what it did and how long it took."""
    started, before = time.perf_counter(), rss_kb()
    collected = gc.collect()
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
    """ASGI middleware: counts open sockets and calls `release` after most of them have closed."""

    def __init__(self, app, *, min_closed: int = 1000, fraction: float = 0.25, quiet: float = 1.0):
        self.app = app
        self.min_closed, self.fraction, self.quiet = min_closed, fraction, quiet
        self.open = self.peak = 0
        self.last_close = 0.0
        self.timer: asyncio.TimerHandle | None = None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        self.open += 1
        self.peak = max(self.peak, self.open)
        try:
            return await self.app(scope, receive, send)
        finally:
            self.open -= 1
            self.closed()

    def due(self) -> bool:
        return self.peak - self.open >= self.min_closed and self.open <= self.peak * self.fraction

    def closed(self) -> None:
        self.last_close = time.monotonic()
        if self.timer is None and self.due():
            self.timer = asyncio.get_running_loop().call_later(self.quiet, self.fire)

    def fire(self) -> None:
        self.timer = None
        if not self.due():  # sockets came back meanwhile
            return
        wait = self.last_close + self.quiet - time.monotonic()
        if wait > 0:  # sockets are still closing: wait for the last of them
            self.timer = asyncio.get_running_loop().call_later(wait, self.fire)
            return
        done = release()
        log.info("released memory after %d of %d sockets closed: %s", self.peak - self.open, self.peak, done)
        self.peak = self.open
