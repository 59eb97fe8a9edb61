"""Failed-login throttling shared by the token endpoint and the login page (DESIGN section 8).

Failures are counted in the cache per (username, address) pair and per address across usernames. Each
counter is a pair of fixed windows whose previous window is weighted by how much of it still overlaps the
last `LOGIN_FAILURE_WINDOW_SECONDS`, so a burst across a window boundary is not counted twice as leniently.
Successful logins are never counted.

An attempt takes its place in the counts (atomic increments) before its password is checked, and gives it
back unless the password was wrong (`login_attempt`): attempts sent in parallel cannot all pass the check
while none has failed yet, so at most the limit's number of passwords are tried per window, however they
are sent.
"""

import hashlib
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from django.conf import settings
from django.core.cache import cache

from .errors import RateLimited


def client_address(request) -> str:
    """The caller's address (daphne --proxy-headers puts the forwarded address in REMOTE_ADDR)."""
    return request.META.get("REMOTE_ADDR") or "unknown"


def _digest(value: str) -> str:
    # Usernames are read case-insensitively so a throttled pair stays throttled whatever the case.
    return hashlib.sha256(value.casefold().encode()).hexdigest()[:32]


def _scopes(username: str, address: str) -> list[tuple[str, int]]:
    """(key prefix, limit) of each counter a failure for this pair feeds."""
    addr = _digest(address)
    return [
        (f"login-fail:pair:{_digest(username)}:{addr}", settings.LOGIN_FAILURES_PER_PAIR),
        (f"login-fail:addr:{addr}", settings.LOGIN_FAILURES_PER_ADDRESS),
    ]


def _now() -> float:
    return time.time()


def _windows(now: float) -> tuple[int, float]:
    """The current window's index and how far into it `now` is (0..1)."""
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    return int(now // window), (now % window) / window


def _wait(current: int, previous: int, limit: int, fraction: float) -> float:
    """Seconds until current + previous * (1 - fraction) falls below limit, with no new failures."""
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    if current >= limit:
        # Wait for this window to end, then for its weight (now the previous one) to fade enough.
        return (1 - fraction) * window + max(0.0, 1 - limit / current) * window
    if previous == 0:
        return 0.0
    needed = 1 - (limit - current) / previous
    return max(0.0, needed - fraction) * window


def _increment(key: str) -> int:
    """Add one to a window's counter (created if missing); its new value."""
    timeout = 2 * settings.LOGIN_FAILURE_WINDOW_SECONDS
    cache.add(key, 0, timeout=timeout)
    try:
        return cache.incr(key)
    except ValueError:
        # The key expired between add and incr: start it again.
        cache.add(key, 1, timeout=timeout)
        return 1


class LoginAttempt:
    """One attempt's place in the failure counts: kept when `failed()` is called, else given back."""

    def __init__(self, keys: list[str]):
        self.keys = keys
        self.was_wrong = False

    def failed(self) -> None:
        """The password was wrong: the attempt stays counted."""
        self.was_wrong = True

    def give_back(self) -> None:
        for key in self.keys:
            with suppress(ValueError):  # its window's counter expired meanwhile: nothing to give back
                cache.decr(key)


def _reserve(username: str, address: str) -> LoginAttempt:
    """Count the attempt in every scope, then raise RateLimited (giving the counts back) when the attempts
    before it in a scope, failed or still being checked, reach its limit."""
    index, fraction = _windows(_now())
    scopes = _scopes(username or "", address or "unknown")
    keys = [f"{prefix}:{index}" for prefix, _ in scopes]
    mine = [_increment(key) for key in keys]
    attempt = LoginAttempt(keys)
    previous = cache.get_many([f"{prefix}:{index - 1}" for prefix, _ in scopes])
    waits = []
    for (prefix, limit), value in zip(scopes, mine, strict=True):
        current = value - 1  # the attempts before this one in this window
        before = previous.get(f"{prefix}:{index - 1}", 0)
        if current + before * (1 - fraction) >= limit:
            waits.append(_wait(current, before, limit, fraction))
    if waits:
        attempt.give_back()
        # The first whole second strictly past the moment the count falls below the limit.
        retry_after = math.floor(max(waits)) + 1
        raise RateLimited(
            f"Too many failed sign-in attempts; try again in {retry_after} s.", retry_after=retry_after
        )
    return attempt


@contextmanager
def login_attempt(username: str, address: str) -> Iterator[LoginAttempt]:
    """A sign-in attempt for this pair: RateLimited when the pair, or the address across usernames, failed
    too often recently (counting nothing); otherwise the body checks the password and calls `failed()` on
    the attempt when it was wrong. Only failed attempts stay counted: a success, or any other way out of the
    body (an error included), gives the place back."""
    attempt = _reserve(username, address)
    try:
        yield attempt
    finally:
        if not attempt.was_wrong:
            attempt.give_back()
