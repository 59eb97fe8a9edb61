"""The Redis cache gives up on a server that accepts connections but never answers (settings.CACHES)."""

import socket
import threading

import pytest
import redis
from django.conf import settings

from treasurehunt.cache import RedisCache


@pytest.fixture
def silent_server():
    """A TCP server on a free loopback port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


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
