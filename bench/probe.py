"""How fast this machine is at what the stack does most: Python, waking a thread, a round trip to Redis
and one to PostgreSQL, and a sync of the disk PostgreSQL writes its WAL to, measured from the load
generator's core at the start of each run (bench.run).

Two machines of the same kind have given figures 2 to 3 times apart (BENCHMARKS.md, "Machines"): the same
Python loop ran alike on both, but a round trip to a process on the other core cost several times more
where waking a sleeping core is slow. These readings go beside the figures so runs on different
machines can be compared; they are not targets.

    .venv/bin/python -m bench.probe [--database-url URL] [--redis-url URL]
"""

import argparse
import json
import os
import queue
import tempfile
import threading
import time

import psycopg
import redis

from bench.loadgen import summarize

LOOP_STEPS = 1_000_000
ROUND_TRIPS = 2_000
DISK_SYNCS = 300  # 8 KB written and fdatasync'ed, 10 ms apart (3 s)
SLOW_SYNC_MS = 50.0


def python_loop_ms() -> float:
    """CPU time of a plain Python loop (no system calls): the interpreter's own speed."""
    started = time.process_time()
    total = 0
    for n in range(LOOP_STEPS):
        total += n * n
    return round((time.process_time() - started) * 1000, 1)


def thread_round_trip_us() -> float:
    """A value handed to another thread of this process and back (two wake-ups), as a hop to a pool does."""
    there, back = queue.SimpleQueue(), queue.SimpleQueue()

    def echo():
        while (item := there.get()) is not None:
            back.put(item)

    worker = threading.Thread(target=echo, daemon=True)
    worker.start()
    started = time.perf_counter()
    for n in range(ROUND_TRIPS):
        there.put(n)
        back.get()
    elapsed = time.perf_counter() - started
    there.put(None)
    worker.join()
    return round(elapsed / ROUND_TRIPS * 1e6, 1)


def redis_round_trip_us(url: str) -> float:
    client = redis.Redis.from_url(url)
    try:
        client.ping()
        started = time.perf_counter()
        for _ in range(ROUND_TRIPS):
            client.ping()
        return round((time.perf_counter() - started) / ROUND_TRIPS * 1e6, 1)
    finally:
        client.close()


def postgresql_round_trip_us(url: str) -> float:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT 1").fetchone()
        started = time.perf_counter()
        for _ in range(ROUND_TRIPS):
            conn.execute("SELECT 1").fetchone()
        return round((time.perf_counter() - started) / ROUND_TRIPS * 1e6, 1)


def data_directory(url: str) -> str | None:
    """PostgreSQL's data directory, where this process may write a file there (a superuser on this
    machine's server), else None."""
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            found = conn.execute("SHOW data_directory").fetchone()[0]
    except psycopg.Error:  # not allowed to read it
        return None
    return found if os.access(found, os.W_OK) else None


def disk_sync_ms(directory: str | None) -> dict:
    """What a commit waits for: 8 KB written and fdatasync'ed (PostgreSQL's WAL sync on Linux), DISK_SYNCS
    times 10 ms apart, in `directory` (PostgreSQL's data directory; the working directory without one).

    Its p50 is short on any disk; a VM's disk can stall a sync for hundreds of ms now and then, and every
    commit waiting on the disk then waits with it (BENCHMARKS.md, fix 31)."""
    times = []
    with tempfile.NamedTemporaryFile(dir=directory or ".", prefix="bench-probe-") as file:
        block = b"\0" * 8192
        for _ in range(DISK_SYNCS):
            os.pwrite(file.fileno(), block, 0)
            started = time.perf_counter()
            os.fdatasync(file.fileno())
            times.append((time.perf_counter() - started) * 1000)
            time.sleep(0.01)
    return {**summarize(times), "slow": sum(t >= SLOW_SYNC_MS for t in times)}


def measure(*, database_url: str = "", redis_url: str = "") -> dict:
    """The readings; a server not given (the embedded mode has neither) is left out."""
    found = {"python_loop_ms": python_loop_ms(), "thread_round_trip_us": thread_round_trip_us()}
    if redis_url:
        found["redis_round_trip_us"] = redis_round_trip_us(redis_url)
    if database_url.startswith(("postgres://", "postgresql://")):
        found["postgresql_round_trip_us"] = postgresql_round_trip_us(database_url)
        found["disk_sync_ms"] = disk_sync_ms(data_directory(database_url))
    return found


def describe(found: dict) -> str:
    parts = [
        f"Python loop of {LOOP_STEPS:,} steps {found['python_loop_ms']} ms",
        f"thread round trip {found['thread_round_trip_us']} µs",
    ]
    if "redis_round_trip_us" in found:
        parts.append(f"Redis PING {found['redis_round_trip_us']} µs")
    if "postgresql_round_trip_us" in found:
        parts.append(f"PostgreSQL SELECT 1 {found['postgresql_round_trip_us']} µs")
    if "disk_sync_ms" in found:
        sync = found["disk_sync_ms"]
        parts.append(
            f"8 KB disk sync (fdatasync, {DISK_SYNCS} times) p50 {sync['p50']} ms, p99 {sync['p99']} ms, "
            f"max {sync['max']} ms, {sync['slow']} of them >= {SLOW_SYNC_MS:g} ms"
        )
    return "Machine probe (bench/probe.py, from the load generator's core): " + "; ".join(parts) + "."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    found = measure(database_url=args.database_url, redis_url=args.redis_url)
    print(json.dumps(found))
    print(describe(found))


if __name__ == "__main__":
    main()
