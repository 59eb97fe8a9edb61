"""GET /healthz: the database, the cache and the broker answer (503 naming what does not)."""

import time

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _cache() -> None:
    cache.set("healthz", time.time(), 10)
    if cache.get("healthz") is None:
        raise RuntimeError("cache did not keep a value")


def _broker() -> None:
    if not settings.REDIS_URL:
        return
    import redis

    redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2, socket_connect_timeout=2).ping()


def healthz(request):
    checks, ok = {}, True
    for name, check in (("database", _database), ("cache", _cache), ("broker", _broker)):
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"error: {exc.__class__.__name__}"
            ok = False
    return JsonResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503
    )
