"""Django's Redis cache with one connection pool and one client per process, shared by every cache object.

Django keeps a cache object per thread, and under ASGI per asyncio context: every WebSocket consumer
that touches the cache (pings, presence, event heads) gets its own `RedisCache`, and so its own
connection pool and Redis connection, opened (with a health check) on its first call and held for the
socket's lifetime: thousands of sockets meant thousands of Redis connections. Django's client also
builds a new `redis.Redis` for every call, which costs about as much CPU as the command. Here every
cache object of the process uses one shared client per server (`redis.Redis` and its pool are
thread-safe, and redis-py resets a pool it finds in a forked child).
"""

import threading

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient as DjangoRedisCacheClient

_clients: dict[str, object] = {}
_lock = threading.Lock()


class RedisCacheClient(DjangoRedisCacheClient):
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


class RedisCache(DjangoRedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = RedisCacheClient
