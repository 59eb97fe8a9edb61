"""CPU of redis-py's reply parsing, its pure-Python parser against hiredis's, in one process (fix 42).

    .venv/bin/python -m bench.redis_parsers [--rounds 6]

The two parsers take turns in the same process, so a machine whose speed drifts from minute to minute
(BENCHMARKS.md) weighs on both alike. Per operation, this process's CPU (time.process_time):

- pubsub: one pub/sub message received on an asyncio subscription, as the channel layer receives each
  group message in daphne (a frame's envelope of about 300 bytes);
- pipeline: a guess's publish from its thread (two SETs of stream heads and two PUBLISHes in one
  pipeline, sync client), as hunts/events.py sends it after commit.

Needs hiredis installed (requirements.txt); uses Redis database 4 of BENCH_REDIS_URL's server.
"""

import argparse
import asyncio
import os
import statistics
import time

import redis
import redis.asyncio as aioredis
from redis._parsers import _AsyncHiredisParser, _AsyncRESP3Parser, _HiredisParser, _RESP3Parser

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/4")
PAYLOAD = b"\x83\xa4type\xadevent.forward\xa4kind\xacguess.judged\xa4text\xda\x01\x00" + b"x" * 256


async def pubsub_round(parser, messages: int = 2000) -> float:
    """CPU µs per message received."""
    subscriber = aioredis.Redis.from_url(URL, parser_class=parser)
    pubsub = subscriber.pubsub()
    await pubsub.subscribe("bench-parsers")
    await pubsub.get_message(timeout=1)  # the subscription's confirmation
    publisher = redis.Redis.from_url(URL)
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
    spent = time.process_time() - start
    await pubsub.aclose()
    await subscriber.aclose()
    publisher.close()
    return spent / messages * 1e6


def pipeline_round(parser, pipelines: int = 500) -> float:
    """CPU µs per pipeline of 2 SETs and 2 PUBLISHes."""
    client = redis.Redis.from_url(URL, parser_class=parser)
    start = time.process_time()
    for n in range(pipelines):
        pipeline = client.pipeline(transaction=False)
        pipeline.set("bench-parsers:team", n)
        pipeline.set("bench-parsers:hunt", n)
        pipeline.publish("bench-parsers:team-group", PAYLOAD)
        pipeline.publish("bench-parsers:staff-group", PAYLOAD)
        pipeline.execute()
    spent = time.process_time() - start
    client.delete("bench-parsers:team", "bench-parsers:hunt")
    client.close()
    return spent / pipelines * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args(argv)
    results: dict[tuple[str, str], list[float]] = {
        (op, name): [] for op in ("pubsub", "pipeline") for name in ("python", "hiredis")
    }
    for _ in range(args.rounds):
        results["pubsub", "python"].append(asyncio.run(pubsub_round(_AsyncRESP3Parser)))
        results["pubsub", "hiredis"].append(asyncio.run(pubsub_round(_AsyncHiredisParser)))
        results["pipeline", "python"].append(pipeline_round(_RESP3Parser))
        results["pipeline", "hiredis"].append(pipeline_round(_HiredisParser))
    for (op, name), values in results.items():
        rounds = ", ".join(f"{value:.0f}" for value in values)
        print(f"{op:8} {name:7} median {statistics.median(values):6.1f} µs/op of CPU (rounds: {rounds})")


if __name__ == "__main__":
    main()
