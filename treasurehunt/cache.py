"""Django's Redis cache with one connection pool and one client per process, shared by every cache object.

Django keeps a cache object per thread, and under ASGI per asyncio context: every WebSocket consumer
that touches the cache (pings, presence, event heads) gets its own `RedisCache`, and so its own
connection pool and Redis connection, opened (with a health check) on its first call and held for the
socket's lifetime: thousands of sockets meant thousands of Redis connections. Django's client also
builds a new `redis.Redis` for every call, which costs about as much CPU as the command. Here every
cache object of the process uses one shared client per server (`redis.Redis` and its pool are
thread-safe, and redis-py resets a pool it finds in a forked child).
"""

import logging
import threading

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient as DjangoRedisCacheClient

log = logging.getLogger(__name__)

_clients: dict[str, object] = {}
_lock = threading.Lock()


# INCRBY only where the key exists, in one step: nil where it is missing.
INCR_EXISTING = """
if redis.call('EXISTS', KEYS[1]) == 1 then
    return redis.call('INCRBY', KEYS[1], ARGV[1])
end
return false
"""


class RedisCacheClient(DjangoRedisCacheClient):
    def incr(self, key, delta):
        """Django's incr (and decr: a negative delta) as one script instead of EXISTS then INCRBY.

        Between Django's two calls a key can expire, and INCRBY then creates it again at `delta` with no
        expiry: a sign-in throttle's counter (hunts/throttling.py) would stay for good. Here a key that is
        missing when the script runs raises ValueError, as Django's does, and one that exists keeps its
        expiry.
        """
        value = registered(self.get_client(key, write=True), INCR_EXISTING)(keys=[key], args=[delta])
        if value is None:
            raise ValueError(f"Key '{key}' not found.")
        return value

    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)
        shared = repr((self._pool_class, self._servers[index], sorted(self._pool_options.items())))
        client = _clients.get(shared)
        if client is None:
            with _lock:
                client = _clients.get(shared)
                if client is None:
                    pool = self._pool_class.from_url(self._servers[index], **self._pool_options)
                    client = _clients[shared] = self._client(connection_pool=pool)
        return client


# Each key rises to its argument if it is missing or lower (no expiry); one round trip for all of them.
RAISE_TO = """
local heads = {}
for i, key in ipairs(KEYS) do
    local current = tonumber(redis.call('GET', key))
    local wanted = tonumber(ARGV[i])
    if current == nil or current < wanted then
        redis.call('SET', key, ARGV[i])
        current = wanted
    end
    heads[i] = current
end
return heads
"""


class RedisCache(DjangoRedisCache):
    """Also hands the shared client, scripts and the serializer to the hot paths that pipeline or script
    (event heads, pings, presence): keys go through `make_and_validate_key` and values through `dumps` and
    `loads`, so what they write `get` reads, and the reverse."""

    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = RedisCacheClient

    def client(self):
        return self._cache.get_client(write=True)

    def script(self, source: str):
        """The Lua script registered once per client (then run by EVALSHA, loaded again if Redis lost it)."""
        return registered(self.client(), source)

    def dumps(self, value) -> int | bytes:
        return self._cache._serializer.dumps(value)

    def loads(self, data: bytes):
        return self._cache._serializer.loads(data)

    def raise_many(self, mapping: dict[str, int], *, pipeline=None) -> dict[str, int] | None:
        """Set each integer value where the cached one is missing or lower, atomically, without expiry;
        returns the values cached after it (each the higher of the two), by the mapping's keys.

        Integers are stored as plain numbers by Django's Redis serializer, so `get` reads them back. With
        a `pipeline` (of this cache's client) the script is queued there as EVAL, which a pipeline sends
        as it is (a registered script would cost the pipeline a SCRIPT EXISTS round trip first), and its
        reply (the values, in the mapping's order) is the pipeline's to read: None is returned.
        """
        if not mapping:
            return {}
        keys = [self.make_and_validate_key(key) for key in mapping]
        args = [int(value) for value in mapping.values()]
        if pipeline is not None:
            pipeline.eval(RAISE_TO, len(keys), *keys, *args)
            return None
        return dict(zip(mapping, self.script(RAISE_TO)(keys=keys, args=args), strict=True))

    def after_heads(self, heads: dict[str, int], queue) -> tuple[dict[str, int] | None, list]:
        """One pipeline, one round trip: the heads raised as raise_many does, then the commands `queue`
        adds to the pipeline it is given. Returns the heads cached after the raise (as raise_many returns
        them; None where that failed, which is logged, as record_heads does, and does not stop the rest),
        and the results of `queue`'s commands in order, an exception object in place of each that failed
        (the caller decides)."""
        pipeline = self.client().pipeline(transaction=False)
        self.raise_many(heads, pipeline=pipeline)
        queue(pipeline)
        results = pipeline.execute(raise_on_error=False)
        if not heads:
            return {}, results
        raised, results = results[0], results[1:]
        if isinstance(raised, Exception):
            log.error("could not record event heads: %s", raised)
            return None, results
        return dict(zip(heads, raised, strict=True)), results

    @property
    def server(self) -> str:
        """The URL of the server this cache writes to."""
        return self._servers[0]


_scripts: dict[tuple[int, str], object] = {}  # (id(client), source) -> the script registered on it


def registered(client, source: str):
    """The Lua script `source` registered once on `client` (one of the shared clients, kept for good)."""
    found = _scripts.get((id(client), source))
    if found is None:
        found = _scripts[(id(client), source)] = client.register_script(source)
    return found


def redis_cache() -> RedisCache | None:
    """The default cache when it is this Redis cache, else None (the embedded default's LocMemCache)."""
    from django.core.cache import caches

    backend = caches["default"]
    return backend if isinstance(backend, RedisCache) else None
