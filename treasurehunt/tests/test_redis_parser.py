"""Every Redis client of the app parses replies and pub/sub messages with hiredis (BENCHMARKS.md, fix 42).

redis-py falls back to its pure-Python parser, without a word, when hiredis is not installed; these tests
fail then. Without hiredis a pub/sub message cost about twice the CPU, and a guess's publish pipeline a
sixth more (`bench/redis_parsers.py`; figures in BENCHMARKS.md).
"""

import asyncio

import pytest
from channels.layers import get_channel_layer
from django.core.cache import caches
from redis._parsers import _AsyncHiredisParser, _HiredisParser

from treasurehunt.cache import RedisCache


@pytest.mark.integration
def test_the_caches_connections_parse_with_hiredis():
    cache = caches["default"]
    assert isinstance(cache, RedisCache)  # the integration tier's cache, as in production
    client = cache.client()  # the one client the cache and the hot paths share
    connection = client.connection_pool.get_connection()
    try:
        assert isinstance(connection._parser, _HiredisParser)
        cache.set("parser-check", {"a": 1}, timeout=10)
        assert cache.get("parser-check") == {"a": 1}  # and replies are read through it
    finally:
        client.connection_pool.release(connection)
        cache.delete("parser-check")


@pytest.mark.integration
def test_the_channel_layers_connections_parse_with_hiredis():
    layer = get_channel_layer()

    async def check():
        shard = layer._get_shard("parser-check")
        shard._ensure_redis()
        connection = await shard._redis.connection_pool.get_connection()
        try:
            assert isinstance(connection._parser, _AsyncHiredisParser)
        finally:
            await shard._redis.connection_pool.release(connection)
        # A message through the layer's own subscription arrives through the same parser.
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "parser.check", "n": 1})
        assert await asyncio.wait_for(layer.receive(channel), timeout=5) == {"type": "parser.check", "n": 1}
        await layer.flush()

    asyncio.run(check())
