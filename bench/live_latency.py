"""Live latency on the production stack: from a guess posted to one daphne process to a teammate's
`guess.judged` on the other.

    .venv/bin/python bench/live_latency.py --sockets 200 --guesses 300 --rate 10
    .venv/bin/python bench/live_latency.py --sockets 1000 --guesses 300 --rate 10

It creates a fresh PostgreSQL database (dropped at the end) on BENCH_DATABASE_URL's server (default
postgres://postgres@127.0.0.1:5432/postgres), starts a private redis-server and two daphne processes with the
production settings (DJANGO_DEBUG=0, RedisPubSubChannelLayer, PostgreSQL with its pool), connects `--sockets`
players (teams of 4, alternately on each process, every one pinging every 10 s like a browser), all at once,
then posts `--guesses` wrong exact-answer guesses (judged inline: no worker) at `--rate` per second, each by a
player whose socket is on web1 to web1's REST API, and times the arrival of its `guess.judged` at a teammate
whose socket is on web2. Prints the connect storm and the latency percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MEMBERS = 4
PING_EVERY = 10.0
SERVED = re.compile(r"POST /api/hunts/[\w-]+/puzzles/[\w-]+/guesses/ 201 ([\d.]+)ms")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def create_database(server_url: str) -> str:
    import psycopg

    name = f"th_bench_live_{os.getpid()}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


def drop_database(server_url: str, url: str) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def run(args, world, stack) -> dict:
    from testing.live import LiveClient

    urls = [f"http://127.0.0.1:{stack['web1'].port}", f"http://127.0.0.1:{stack['web2'].port}"]
    players = [(t, m, token) for t, team in enumerate(world.members) for m, (_, token) in enumerate(team)]
    # Member 0 of each team on web1, member 1 on web2, and so on: guesser and observer on different processes.
    clients = [LiveClient(urls[m % 2], world.hunt.slug, token) for _, m, token in players]

    started = time.monotonic()
    hello_at: list[float] = []

    async def connect(client):
        await client.connect(timeout=120)
        hello_at.append(time.monotonic() - started)

    results = await asyncio.gather(*(connect(c) for c in clients), return_exceptions=True)
    storm = {
        "sockets": len(clients),
        "failures": sum(isinstance(r, BaseException) for r in results),
        "all_in": max(hello_at) if hello_at else None,
        "hello_p50": percentile(hello_at, 50) if hello_at else None,
        "hello_p99": percentile(hello_at, 99) if hello_at else None,
    }
    print(
        f"connect storm: {storm['sockets']} sockets, {storm['failures']} failures, all hellos in "
        f"{storm['all_in']:.2f} s (hello p50 {storm['hello_p50']:.2f} s, p99 {storm['hello_p99']:.2f} s)",
        flush=True,
    )
    live = [c for c, r in zip(clients, results, strict=True) if not isinstance(r, BaseException)]

    async def pinger(client):
        await asyncio.sleep(random.uniform(0, PING_EVERY))
        while True:
            await client.send({"type": "ping"})
            await asyncio.sleep(PING_EVERY)

    pingers = [asyncio.create_task(pinger(c)) for c in live]
    await asyncio.sleep(2)  # let the storm's presence frames settle

    arrived: dict[str, float] = {}
    waiters: dict[str, asyncio.Future] = {}

    def on_frame(at, frame):
        if frame.get("type") == "guess.judged":
            client_id = frame["data"]["guess"].get("client_id")
            if client_id in waiters and not waiters[client_id].done():
                arrived[client_id] = at
                waiters[client_id].set_result(at)

    observers = {}
    for (t, m, _), client in zip(players, clients, strict=True):
        if m == 1:
            client.on_frame = on_frame
            observers[t] = client
    teams = sorted(observers)

    import httpx

    latencies: list[float] = []
    responses: list[float] = []
    errors = 0
    async with httpx.AsyncClient(
        base_url=urls[0], timeout=30, limits=httpx.Limits(max_connections=50)
    ) as http:

        async def guess(i: int):
            nonlocal errors
            team = teams[i % len(teams)]
            token = world.members[team][0][1]
            client_id = f"bench-{i}"
            waiters[client_id] = asyncio.get_running_loop().create_future()
            sent = time.monotonic()
            response = await http.post(
                f"/api/hunts/{world.hunt.slug}/puzzles/{world.puzzle.slug}/guesses/",
                json={"answer": f"WRONG {i}", "client_id": client_id},
                headers={"Authorization": f"Token {token}"},
            )
            responses.append(time.monotonic() - sent)
            if response.status_code != 201:
                errors += 1
                print("guess failed:", response.status_code, response.text[:200], flush=True)
                return
            try:
                at = await asyncio.wait_for(waiters[client_id], 30)
            except TimeoutError:
                errors += 1
                return
            latencies.append(at - sent)

        tasks = []
        for i in range(args.guesses):
            tasks.append(asyncio.create_task(guess(i)))
            await asyncio.sleep(1 / args.rate)
        await asyncio.gather(*tasks)

    for task in pingers:
        task.cancel()
    await asyncio.gather(*(c.close() for c in live), return_exceptions=True)
    return {
        "storm": storm,
        "guesses": args.guesses,
        "rate": args.rate,
        "errors": errors,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "max": max(latencies),
        "mean": statistics.fmean(latencies),
        "response_p50": percentile(responses, 50),
        "response_p99": percentile(responses, 99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=200, help="connected players (teams of 4)")
    parser.add_argument("--guesses", type=int, default=300)
    parser.add_argument("--rate", type=float, default=10, help="guesses per second")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.sockets * 2 + 1000:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.sockets * 2 + 4000), hard))

    server_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    url = create_database(server_url)
    try:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "treasurehunt.settings",
            "DATABASE_URL": url,
            "REDIS_URL": "",
        }
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        os.environ.update(env)
        import django

        django.setup()
        from testing.live import make_world
        from testing.processes import RedisServer, Stack

        world = make_world(teams=args.sockets // MEMBERS, members=MEMBERS)
        from django.db import connections

        connections.close_all()
        with (
            tempfile.TemporaryDirectory(prefix="live-bench-") as directory,
            RedisServer(Path(directory)).running() as redis_server,
        ):
            stack = Stack(database_url=url, redis_url=redis_server.url(0), directory=Path(directory))
            with stack.started():
                stack.ensure("web1", "web2")
                result = asyncio.run(run(args, world, stack))
                # The server's own time for each guess (request log), to tell it from queueing and the client.
                served = [float(ms) for ms in SERVED.findall(stack["web1"].log())]
    finally:
        drop_database(server_url, url)

    print(
        f"guess -> teammate's guess.judged: {result['guesses']} guesses at {result['rate']:g}/s with "
        f"{result['storm']['sockets']} sockets: p50 {ms(result['p50'])}, p99 {ms(result['p99'])}, "
        f"max {ms(result['max'])}, mean {ms(result['mean'])}, {result['errors']} errors "
        f"(the REST response itself: p50 {ms(result['response_p50'])}, p99 {ms(result['response_p99'])}; "
        f"inside Django: p50 {percentile(served, 50):.1f} ms, p99 {percentile(served, 99):.1f} ms)",
        flush=True,
    )


if __name__ == "__main__":
    main()
