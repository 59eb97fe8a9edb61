"""The Redis cache (settings.CACHES, treasurehunt/cache.py): it gives up on a server that accepts connections
but never answers, keeps a counter's expiry through incr and decr, and parses replies with hiredis."""

import threading

import pytest
import redis
from django.conf import settings
from redis._parsers import _HiredisParser

from treasurehunt.cache import RedisCache


@pytest.mark.integration
def test_a_silent_redis_fails_a_cache_call_instead_of_holding_its_thread(silent_server):
    options = settings.CACHES["default"]["OPTIONS"]  # the production settings (REDIS_URL is set)
    assert options["socket_timeout"] > 0 and options["socket_connect_timeout"] > 0
    cache = RedisCache(silent_server, {"OPTIONS": options})
    outcome = []

    def call():
        try:
            cache.get("anything")
            outcome.append("answered")
        except redis.exceptions.TimeoutError:
            outcome.append("timed out")

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    caller.join(timeout=30)  # without a socket timeout the call never returns
    assert outcome == ["timed out"]


@pytest.fixture
def redis_default_cache():
    from django.core.cache import caches

    cache = caches["default"]
    assert isinstance(cache, RedisCache)  # the integration tier's cache, as in production
    yield cache
    cache.delete_many(["counter", "missing"])


@pytest.mark.integration
def test_incr_and_decr_keep_the_keys_expiry(redis_default_cache):
    cache = redis_default_cache
    cache.set("counter", 1, timeout=60)
    assert cache.incr("counter") == 2
    assert cache.decr("counter", 3) == -1
    assert cache.get("counter") == -1
    assert 0 < cache.client().ttl(cache.make_and_validate_key("counter")) <= 60


@pytest.mark.integration
def test_incr_and_decr_of_a_missing_key_raise_and_create_nothing(redis_default_cache):
    cache = redis_default_cache
    with pytest.raises(ValueError, match="not found"):
        cache.incr("missing")
    with pytest.raises(ValueError, match="not found"):
        cache.decr("missing")
    assert cache.client().exists(cache.make_and_validate_key("missing")) == 0


@pytest.mark.integration
def test_a_key_expiring_during_incr_is_never_created_again_without_expiry(redis_default_cache, monkeypatch):
    # Django's incr is EXISTS, then INCRBY: a key expiring between the two came back from INCRBY at the
    # increment with no expiry (a sign-in throttle's counter that never ends). Here the expiry falls right
    # after any EXISTS this client sends; the increment must still see the key and keep its expiry.
    cache = redis_default_cache
    cache.set("counter", 1, timeout=60)
    exists = redis.Redis.exists

    def exists_then_expire(self, *names):
        found = exists(self, *names)
        self.delete(*names)
        return found

    monkeypatch.setattr(redis.Redis, "exists", exists_then_expire)
    assert cache.incr("counter") == 2
    assert cache.client().ttl(cache.make_and_validate_key("counter")) > 0


@pytest.mark.integration
def test_the_caches_connections_parse_with_hiredis(redis_default_cache):
    # redis-py falls back to its Python parser, without a word, when hiredis is not installed: a pub/sub
    # message then cost about twice the CPU, a guess's publish pipeline a sixth more (bench/redis_parsers.py,
    # BENCHMARKS.md fix 42).
    cache = redis_default_cache
    client = cache.client()  # the one client the cache and the hot paths share
    connection = client.connection_pool.get_connection()
    try:
        assert isinstance(connection._parser, _HiredisParser)
    finally:
        client.connection_pool.release(connection)
    cache.set("counter", {"a": 1}, timeout=10)
    assert cache.get("counter") == {"a": 1}  # and replies are read through it
