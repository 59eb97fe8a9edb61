"""The Redis client behind the default cache, for the hot paths that pipeline or script (pings, presence).

Only when the cache is treasurehunt.cache.RedisCache (one shared client per process). Keys go through the
cache's own `make_and_validate_key` and values through its serializer (integers as plain numbers, anything
else pickled), so what these paths write `cache.get` reads, and the reverse.
"""

from django.core.cache import caches

from treasurehunt.cache import RedisCache


def redis_cache() -> RedisCache | None:
    """The default cache when it is Redis, else None (the embedded default's LocMemCache)."""
    backend = caches["default"]
    return backend if isinstance(backend, RedisCache) else None


def client_of(backend: RedisCache):
    return backend._cache.get_client(write=True)


def dumps(backend: RedisCache, value) -> int | bytes:
    return backend._cache._serializer.dumps(value)


def loads(backend: RedisCache, data: bytes):
    return backend._cache._serializer.loads(data)
