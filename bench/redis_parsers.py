"""CPU of redis-py's work per Redis reply, without hiredis against with it, in one process (fix 42).

    .venv/bin/python -m bench.redis_parsers [--rounds 6]

The two take turns in the same process (which goes first alternates from round to round), so a machine
whose speed drifts from minute to minute (BENCHMARKS.md) weighs on both alike. "python" is redis-py as it
runs without hiredis installed: replies parsed and, on the sync client, commands packed in Python;
"hiredis" is both done in C, as redis-py does by itself once hiredis is installed. Per operation, this
process's CPU (time.process_time):

- pubsub: one pub/sub message received on an asyncio subscription, as the channel layer receives each
  group message in daphne (a frame's envelope of about 300 bytes). The messages are published before the
  reads start, so they arrive in batches; daphne mostly reads them one or a few at a time;
- pipeline: a publish of the shape hunts/events.py sends after a guess commits, from a sync client: the
  script raising the two stream heads (`RAISE_TO`, `RedisCache.raise_many`) and two PUBLISHes in one
  pipeline.

Uses the Redis database of BENCH_REDIS_URL (default database 4 of the machine's Redis).
"""

import argparse
import asyncio
import os
import statistics
import time

import redis
import redis.asyncio as aioredis
from redis._parsers import _AsyncHiredisParser, _AsyncRESP3Parser, _HiredisParser, _RESP3Parser
from redis._parsers.encoders import Encoder
from redis.connection import HiredisRespSerializer, PythonRespSerializer

from treasurehunt.cache import RAISE_TO

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/4")
PAYLOAD = b"\x83\xa4type\xadevent.forward\xa4kind\xacguess.judged\xa4text\xda\x01\x00" + b"x" * 256
ASYNC = {"python": _AsyncRESP3Parser, "hiredis": _AsyncHiredisParser}


def sync_client(kind: str) -> redis.Redis:
    if kind == "python":
        packer = PythonRespSerializer(6000, Encoder("utf-8", "strict", False).encode)  # redis-py's defaults
        return redis.Redis.from_url(URL, parser_class=_RESP3Parser, command_packer=packer)
    return redis.Redis.from_url(URL, parser_class=_HiredisParser, command_packer=HiredisRespSerializer())


async def pubsub_round(kind: str, messages: int = 2000) -> float:
    """CPU µs per message received."""
    subscriber = aioredis.Redis.from_url(URL, parser_class=ASYNC[kind])
    pubsub = subscriber.pubsub()
    publisher = redis.Redis.from_url(URL)
    try:
        await pubsub.subscribe("bench-parsers")
        await pubsub.get_message(timeout=1)  # the subscription's confirmation
        pipeline = publisher.pipeline(transaction=False)
        for _ in range(messages):
            pipeline.publish("bench-parsers", PAYLOAD)
        pipeline.execute()
        received, start = 0, time.process_time()
        while received < messages:
            message = await pubsub.get_message(timeout=5)
            if message is None:
                raise RuntimeError(f"only {received} of {messages} messages arrived")
            received += message["type"] == "message"
        return (time.process_time() - start) / messages * 1e6
    finally:
        await pubsub.aclose()
        await subscriber.aclose()
        publisher.close()


def pipeline_round(kind: str, pipelines: int = 500) -> float:
    """CPU µs per pipeline of the heads' script and 2 PUBLISHes."""
    client = sync_client(kind)
    keys = ["bench-parsers:team", "bench-parsers:hunt"]
    try:
        raise_to = client.register_script(RAISE_TO)
        client.ping()  # connected (and the script loaded once) before the clock starts
        raise_to(keys=keys, args=[0, 0])
        start = time.process_time()
        for n in range(pipelines):
            pipeline = client.pipeline(transaction=False)
            raise_to(keys=keys, args=[n, n], client=pipeline)
            pipeline.publish("bench-parsers:team-group", PAYLOAD)
            pipeline.publish("bench-parsers:staff-group", PAYLOAD)
            pipeline.execute()
        return (time.process_time() - start) / pipelines * 1e6
    finally:
        client.delete(*keys)
        client.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args(argv)
    results: dict[tuple[str, str], list[float]] = {
        (op, kind): [] for op in ("pubsub", "pipeline") for kind in ("python", "hiredis")
    }
    for round_ in range(args.rounds):
        for kind in ("python", "hiredis") if round_ % 2 == 0 else ("hiredis", "python"):
            results["pubsub", kind].append(asyncio.run(pubsub_round(kind)))
            results["pipeline", kind].append(pipeline_round(kind))
    for (op, kind), values in results.items():
        rounds = ", ".join(f"{value:.0f}" for value in values)
        print(f"{op:8} {kind:7} median {statistics.median(values):6.1f} µs/op of CPU (rounds: {rounds})")


if __name__ == "__main__":
    main()
