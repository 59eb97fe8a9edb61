"""CPU per operation of the live stream's hot paths, in one process: what a fix saves, without the load.

    .venv/bin/python -m bench.micro [--ops 300] [--profile connect|guess|solve|refused|ping|push]

Runs the app's ASGI application in-process (channels' WebsocketCommunicator) against PostgreSQL and
Redis with the production settings: a fresh database `th_micro` (from BENCH_DATABASE_URL, default the
machine's PostgreSQL) and Redis databases 4 and 5. For each operation it reports this process's CPU
(time.process_time: Python), the PostgreSQL and Redis servers' CPU (every process of the machine's
postmaster and redis-server, read from /proc as `bench.run` reads them; left out where they run
elsewhere) and wall time per operation:

- connect: open a socket and read its hello (token auth, membership, groups, heads, presence);
- guess: a wrong `guess.submit` over an open socket until its `guess.judged` (the 3 teammates offline);
- solve: the correct answer to the same puzzle, until its `guess.judged` (a solve: points, events, the
  unlock and treasure rules where the hunt has them; the bench's hunt has none);
- refused: a guess on the puzzle the team just solved, refused ("Already solved"), then a wrong guess on
  the next puzzle until its `guess.judged`; per pair (what a refusal costs the guesses after it: fix 50);
- ping: a `ping` until its `pong`;
- push_direct, push_queued: a `leaderboard.updated` to the hunt group until every open socket has it, per
  socket; marked direct as the clock sends it (handed to each socket's send by the layer's fan-out), and
  the same frame without the mark (through each consumer's queue, as before fix 41).

Figures vary by a few percent from run to run; BENCHMARKS.md quotes them before and after each fix.
"""

import argparse
import asyncio
import functools
import json
import os
import sys
import time

DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/th_micro"
DEFAULT_REDIS = "redis://127.0.0.1:6379/4"


def setup_environment() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "treasurehunt.settings")
    os.environ["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE)
    os.environ["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS)
    os.environ.setdefault("DJANGO_DEBUG", "0")
    os.environ.setdefault("DJANGO_SECRET_KEY", "micro-bench-secret-key-" + "x" * 40)
    os.environ.setdefault("LOG_LEVEL", "WARNING")


def prepare(players: int) -> dict:
    from bench.run import recreate_database

    recreate_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.core.cache import cache
    from django.core.management import call_command

    from bench.setup_hunt import create_hunt

    call_command("migrate", verbosity=0)
    cache.clear()
    import redis

    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()
    return create_hunt(players=players, puzzles=20, judged_puzzles=0)


async def communicator(app, hunt: dict, player: dict):
    from channels.testing import WebsocketCommunicator

    comm = WebsocketCommunicator(
        app, f"/ws/hunts/{hunt['slug']}/", headers=[(b"authorization", f"Token {player['token']}".encode())]
    )
    connected, _ = await comm.connect(timeout=10)
    assert connected
    hello = await comm.receive_json_from(timeout=10)
    assert hello["type"] == "hello", hello
    return comm


async def drain(comm, until: str, *, frame_id: str | None = None, timeout: float = 10) -> dict:
    """Read until a frame of type `until` (answering `frame_id`, if given); an error frame is a RuntimeError
    unless an error is what is awaited."""
    while True:
        frame = await comm.receive_json_from(timeout=timeout)
        if frame["type"] == "error" and until != "error":
            raise RuntimeError(frame)
        if frame["type"] == until and (frame_id is None or frame.get("id", frame_id) == frame_id):
            return frame


@functools.cache
def server_pids() -> tuple[int | None, int | None]:
    """The PostgreSQL postmaster's and redis-server's pids on this machine (None: not found here), looked up
    once: each lookup opens a connection to each server, which the figures must not count."""
    from bench.run import local_services

    return local_services(os.environ["DATABASE_URL"], os.environ["REDIS_URL"], required=False)


def servers() -> dict[str, list[int]]:
    """The PostgreSQL postmaster with its children of the moment and redis-server, where found here."""
    from bench.run import server_processes

    return server_processes(*server_pids())


class Timer:
    """This process's CPU, the servers' CPU and wall time through the block, per operation; profiled with
    pyinstrument (threads not followed: the sync work in the thread pool shows as waiting) when `profile`
    is set."""

    def __init__(self, ops: int, *, profile: bool = False):
        self.ops, self.profiler = ops, None
        if profile:
            from pyinstrument import Profiler

            self.profiler = Profiler(async_mode="enabled", interval=0.0005)

    def __enter__(self):
        from bench.run import stack_cpu

        self._servers = stack_cpu(servers())  # read outside the profiled span
        if self.profiler is not None:
            self.profiler.start()
        self._cpu, self._wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        from bench.run import cpu_by_kind, stack_cpu

        self.cpu_ms = 1000 * (time.process_time() - self._cpu) / self.ops
        self.wall_ms = 1000 * (time.perf_counter() - self._wall) / self.ops
        if self.profiler is not None:
            self.profiler.stop()
        used = cpu_by_kind(self._servers, stack_cpu(servers()))
        self.server_ms = {name: 1000 * seconds / self.ops for name, seconds in used.items()}
        if self.profiler is not None:
            print(self.profiler.output_text(unicode=False, color=False, show_all=False), file=sys.stderr)

    def figures(self) -> dict:
        servers = {f"{name.lower()}_ms": ms for name, ms in self.server_ms.items()}
        return {"cpu_ms": self.cpu_ms, **servers, "wall_ms": self.wall_ms}


async def skip_pending(socks) -> None:
    """Read off what the sockets were sent meanwhile (their connects' presence frames)."""
    for comm in socks:
        while not await comm.receive_nothing(timeout=0.001):
            await comm.receive_from()


async def measure(hunt: dict, ops: int, profile: str | None) -> dict:
    from treasurehunt.asgi import application as app

    players = [team[0] for team in hunt["teams"]]
    results = {}

    # Warm up: imports, pools, statement caches.
    for player in players[-5:]:
        comm = await communicator(app, hunt, player)
        await comm.send_json_to({"type": "ping"})
        await drain(comm, "pong")
        await comm.disconnect()

    socks = []
    with Timer(ops, profile=profile == "connect") as timer:
        for player in players[:ops]:
            socks.append(await communicator(app, hunt, player))
    results["connect"] = timer.figures()
    await skip_pending(socks)

    with Timer(ops, profile=profile == "guess") as timer:
        for n, comm in enumerate(socks):
            frame = {"type": "guess.submit", "puzzle": "p0", "answer": f"wrong {n}", "id": f"g{n}"}
            await comm.send_json_to(frame)
            await drain(comm, "guess.judged")
    results["guess"] = timer.figures()

    with Timer(ops, profile=profile == "solve") as timer:
        for n, comm in enumerate(socks):
            frame = {"type": "guess.submit", "puzzle": "p0", "answer": "ANSWER 0", "id": f"s{n}"}
            await comm.send_json_to(frame)
            judged = await drain(comm, "guess.judged")
            if '"status": "correct"' not in json.dumps(judged):
                raise RuntimeError(f"not a solve: {judged}")
    results["solve"] = timer.figures()
    await skip_pending(socks)

    with Timer(ops, profile=profile == "refused") as timer:
        for n, comm in enumerate(socks):
            await comm.send_json_to(
                {"type": "guess.submit", "puzzle": "p0", "answer": f"late {n}", "id": f"r{n}"}
            )
            await drain(comm, "error", frame_id=f"r{n}")
            await comm.send_json_to(
                {"type": "guess.submit", "puzzle": "p1", "answer": f"wrong {n}", "id": f"w{n}"}
            )
            await drain(comm, "guess.judged")
    results["refused"] = timer.figures()
    await skip_pending(socks)

    with Timer(ops, profile=profile == "ping") as timer:
        for comm in socks:
            await comm.send_json_to({"type": "ping"})
            await drain(comm, "pong")
    results["ping"] = timer.figures()
    await skip_pending(socks)

    results.update(await measure_pushes(hunt, socks, profile))
    for comm in socks:
        await comm.disconnect()
    return results


async def measure_pushes(hunt: dict, socks, profile: str | None, rounds: int = 5) -> dict:
    """A leaderboard push to the hunt group, direct and queued, `rounds` times each; per socket reached."""
    from asgiref.sync import sync_to_async
    from channels.layers import get_channel_layer

    from hunts.events import envelope, hunt_group
    from hunts.models import Hunt

    hunt_id = await sync_to_async(lambda: Hunt.objects.get(slug=hunt["slug"]).pk)()
    layer = get_channel_layer()
    results = {}
    top = [{"rank": n, "team": {"slug": f"t{n}", "name": f"Team {n}"}, "score": 100 - n} for n in range(10)]
    for kind in ("direct", "queued"):
        message = envelope({"type": "leaderboard.updated", "top": top})
        if kind == "queued":
            message.pop("direct")
        with Timer(rounds * len(socks), profile=profile == "push") as timer:
            for _ in range(rounds):
                await layer.group_send(hunt_group(hunt_id), message)
                await asyncio.gather(*(drain(comm, "leaderboard.updated") for comm in socks))
        results[f"push_{kind}"] = timer.figures()
    return results


async def measure_ping_bursts(hunt: dict, ops: int, profile: str | None) -> dict:
    """Every socket pings at once, as thousands of clients on one process do: what batching pings saves.

    ping_burst_N: `ops` sockets, N rounds of one ping each (all sent, then every pong read); per ping.
    """
    from treasurehunt.asgi import application as app

    socks = [await communicator(app, hunt, team[0]) for team in hunt["teams"][:ops]]
    await skip_pending(socks)
    rounds = 5
    with Timer(rounds * len(socks), profile=profile == "ping") as timer:
        for _ in range(rounds):
            for comm in socks:
                await comm.send_json_to({"type": "ping"})
            await asyncio.gather(*(drain(comm, "pong") for comm in socks))
    for comm in socks:
        await comm.disconnect()
    return {f"ping_burst_{rounds}": timer.figures()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=300, help="operations of each kind (<= players / 4)")
    parser.add_argument("--profile", choices=["connect", "guess", "solve", "refused", "ping", "push"])
    parser.add_argument("--concurrent-pings", action="store_true", help="only ping bursts (ping_burst_*)")
    args = parser.parse_args(argv)
    setup_environment()
    hunt = prepare(players=4 * args.ops + 40)
    measuring = measure_ping_bursts if args.concurrent_pings else measure
    results = asyncio.run(measuring(hunt, args.ops, args.profile))
    print(json.dumps({op: {k: round(v, 3) for k, v in f.items()} for op, f in results.items()}))
    for op, figures in results.items():
        servers = "".join(
            f"   {name} {figures[key]:6.3f}"
            for name, key in (("PostgreSQL", "postgresql_ms"), ("Redis", "redis_ms"))
            if key in figures
        )
        print(f"{op:8} cpu {figures['cpu_ms']:7.3f} ms/op{servers}   wall {figures['wall_ms']:7.3f} ms/op")


if __name__ == "__main__":
    main()
