"""Publishes per second from a sync loop (a Celery worker's situation), and new Redis connections per publish.

Compares hunts.events.send_frames (one publisher loop per process, one connection) with what it did before:
async_to_sync per call, which from a thread outside any event loop runs each call in a new loop, and the
Redis channel layer opens and closes a connection per loop. send_frames still carries a worker's ephemeral
frames (the clock's leaderboard.updated); logged events go out with their heads in one pipeline instead
where the cache and the layer share a Redis (hunts.events._publish_with_heads).

    .venv/bin/python bench/publish_rate.py [--calls 1000] [--frames 3]
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from testing.processes import RedisServer  # noqa: E402


def run(name: str, send, calls: int, frames: int, redis) -> None:
    stats = redis.client()
    before = stats.info("stats")["total_connections_received"]
    started = time.perf_counter()
    for i in range(calls):
        send([("team.1", {"type": "bench", "i": i})] * frames)
    elapsed = time.perf_counter() - started
    opened = stats.info("stats")["total_connections_received"] - before
    print(
        f"{name}: {calls / elapsed:.0f} calls/s, {calls * frames / elapsed:.0f} frames/s "
        f"({frames} frames per call), {opened} new Redis connections for {calls} calls"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp)).running() as redis:
        os.environ.update(
            DJANGO_SETTINGS_MODULE="treasurehunt.settings",
            DATABASE_URL=f"sqlite:///{tmp}/unused.sqlite3",
            REDIS_URL=redis.url(0),
            LOG_LEVEL="WARNING",
        )
        import django

        django.setup()
        from asgiref.sync import async_to_sync
        from channels.layers import get_channel_layer

        from hunts import events

        layer = get_channel_layer()
        run(
            "async_to_sync per call (before)",
            lambda m: async_to_sync(events._send_all)(layer, m),
            **vars(args),
            redis=redis,
        )
        run("send_frames, publisher loop (now)", events.send_frames, **vars(args), redis=redis)


if __name__ == "__main__":
    main()
