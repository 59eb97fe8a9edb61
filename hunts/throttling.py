"""Failed-login throttling shared by the token endpoint and the login page (DESIGN section 8).

Failures are counted in the cache per (username, address) pair and per address across usernames. Each
counter is a pair of fixed windows whose previous window is weighted by how much of it still overlaps the
last `LOGIN_FAILURE_WINDOW_SECONDS`, so a burst across a window boundary is not counted twice as leniently.
Successful logins are never counted.

While its password is checked an attempt is counted as being checked (atomic increments of a counter per
scope), and an attempt is let in only while the recent failures and the attempts being checked ahead of it
stay under the limit (`login_attempt`): attempts sent in parallel cannot all pass while none has failed
yet, so no more passwords than the limit are tried per window, however they are sent.
"""

import hashlib
import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.cache import cache

from .errors import RateLimited

log = logging.getLogger(__name__)


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


# Seconds an attempt may stay "being checked" in the counts if its process dies before giving its place
# back (a password check takes well under a second).
CHECKING_TTL = 60


def _increment(key: str, timeout: int) -> int:
    """Add one to a counter (created with `timeout` if missing); its new value."""
    for _ in range(3):
        if cache.add(key, 1, timeout=timeout):
            return 1
        try:
            return cache.incr(key)
        except ValueError:
            continue  # it expired between the two calls: create it again
    raise RuntimeError(f"could not count a sign-in attempt in {key}")


def _decrement(key: str) -> None:
    """Take one off a counter; nothing when it expired meanwhile or the cache fails (logged)."""
    try:
        cache.decr(key)
    except ValueError:
        pass  # expired: nothing to give back
    except Exception:
        log.warning("could not give back a sign-in attempt's place in %s", key, exc_info=True)


class LoginAttempt:
    """One attempt being checked: counted as a failure when `failed()` is called, else forgotten."""

    def __init__(self, failure_keys: list[str], checking_keys: list[str]):
        self.failure_keys, self.checking_keys = failure_keys, checking_keys
        self.was_wrong = False

    def failed(self) -> None:
        """The password was wrong: the attempt will stay counted as a failure."""
        self.was_wrong = True

    def end(self) -> None:
        """Count a failure (before leaving the attempts being checked, so that it is never missed), then
        leave them."""
        try:
            if self.was_wrong:
                for key in self.failure_keys:
                    _increment(key, 2 * settings.LOGIN_FAILURE_WINDOW_SECONDS)
        finally:
            for key in self.checking_keys:
                _decrement(key)


def _reserve(username: str, address: str) -> LoginAttempt:
    """Join the attempts being checked in every scope, then raise RateLimited (leaving them again) when the
    scope's recent failures and the attempts ahead of this one still being checked reach its limit.

    Retry-After is computed from the failures alone: when only attempts being checked stand in the way,
    1 s (they end within a second or two, and most are not failures)."""
    index, fraction = _windows(_now())
    scopes = _scopes(username or "", address or "unknown")
    checking_keys: list[str] = []
    attempt = LoginAttempt([f"{prefix}:{index}" for prefix, _ in scopes], checking_keys)
    try:
        ahead = []
        for prefix, _limit in scopes:
            key = f"{prefix}:checking"
            ahead.append(max(0, _increment(key, CHECKING_TTL) - 1))
            checking_keys.append(key)
        counts = cache.get_many([f"{prefix}:{i}" for prefix, _ in scopes for i in (index, index - 1)])
        waits = []
        for (prefix, limit), others in zip(scopes, ahead, strict=True):
            current = counts.get(f"{prefix}:{index}", 0)
            previous = counts.get(f"{prefix}:{index - 1}", 0)
            failures = current + previous * (1 - fraction)
            if failures >= limit:
                waits.append(_wait(current, previous, limit, fraction))
            elif failures + others >= limit:
                waits.append(0.0)
        if waits:
            # The first whole second strictly past the moment the count falls below the limit.
            retry_after = math.floor(max(waits)) + 1
            raise RateLimited(
                f"Too many failed sign-in attempts; try again in {retry_after} s.", retry_after=retry_after
            )
    except BaseException:
        attempt.end()  # not a failure: only leaves the attempts being checked it had joined
        raise
    return attempt


@contextmanager
def login_attempt(username: str, address: str) -> Iterator[LoginAttempt]:
    """A sign-in attempt for this pair: RateLimited when the pair, or the address across usernames, failed
    too often recently, or would if the attempts still being checked failed (counting nothing); otherwise
    the body checks the password and calls `failed()` on the attempt when it was wrong. Only failed
    attempts are counted as failures: a success, or any other way out of the body (an error included),
    counts nothing."""
    attempt = _reserve(username, address)
    try:
        yield attempt
    finally:
        attempt.end()
