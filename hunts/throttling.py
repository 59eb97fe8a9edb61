"""Failed-login throttling shared by the token endpoint and the login page (DESIGN section 8).

Failures are counted in the cache per (username, address) pair and per address across usernames. Each
counter is a pair of fixed windows whose previous window is weighted by how much of it still overlaps the
last `LOGIN_FAILURE_WINDOW_SECONDS`, so a burst across a window boundary is not counted twice as leniently.
Successful logins are never counted.
"""

import hashlib
import math
import time

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


def check_login_allowed(username: str, address: str) -> None:
    """Raise RateLimited when this pair, or this address across usernames, failed too often recently."""
    index, fraction = _windows(_now())
    scopes = _scopes(username or "", address or "unknown")
    keys = [f"{prefix}:{i}" for prefix, _ in scopes for i in (index, index - 1)]
    counts = cache.get_many(keys)
    waits = []
    for prefix, limit in scopes:
        current = counts.get(f"{prefix}:{index}", 0)
        previous = counts.get(f"{prefix}:{index - 1}", 0)
        if current + previous * (1 - fraction) >= limit:
            waits.append(_wait(current, previous, limit, fraction))
    if waits:
        # The first whole second strictly past the moment the count falls below the limit.
        retry_after = math.floor(max(waits)) + 1
        raise RateLimited(
            f"Too many failed sign-in attempts; try again in {retry_after} s.", retry_after=retry_after
        )


def record_login_failure(username: str, address: str) -> None:
    """Count one failed attempt for the pair and for the address (atomic increments)."""
    index, _ = _windows(_now())
    timeout = 2 * settings.LOGIN_FAILURE_WINDOW_SECONDS
    for prefix, _limit in _scopes(username or "", address or "unknown"):
        key = f"{prefix}:{index}"
        cache.add(key, 0, timeout=timeout)
        try:
            cache.incr(key)
        except ValueError:
            # The key expired between add and incr: start it again.
            cache.add(key, 1, timeout=timeout)
