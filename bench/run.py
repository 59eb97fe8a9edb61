"""Run the load benchmark: start the stack, run every scenario against the app and its bare baselines.

    .venv/bin/python -m bench.run                      # the standard scenario (`make bench`)
    .venv/bin/python -m bench.run --mode embedded      # one daphne, SQLite, in-memory layer (informative)
    .venv/bin/python -m bench.run --smoke              # 20 sockets, counts only (the bench smoke test)

Layout on 2 cores: daphne, the Celery processes, PostgreSQL and Redis on core 0; this process (the load
generator) on core 1. PostgreSQL and Redis are the machine's services: pinned with `taskset -a -p -c 0`
for the run and given back their own CPU masks afterwards. The run gets a fresh database of its own,
its own Redis database numbers, and a daphne serving bench.asgi (the app plus the /bench/ baselines).

Writes bench/results/<time>.json and .md (and latest.json / latest.md), and, for a standard run, the
figures section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import functools
import json
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, asynccontextmanager, contextmanager, nullcontext, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import redis

from bench import loadgen, probe
from bench.loadgen import Fleet, GuessMaker, Player, Progress, bare_guess, http_load
from testing.processes import BIN, ROOT, Process, RedisServer, Stack, free_port
from treasurehunt.memory import rss_kb

RESULTS = ROOT / "bench" / "results"
BENCHMARKS = ROOT / "BENCHMARKS.md"
P99_TARGET_MS = 50.0
SCENARIOS = ("storm", "guesses", "http")
PROFILES = ("storm", "announcement", "guesses", "http")  # --profile: a scenario, or the storm's announcement
STORM_GUESSERS = 40  # --storm-guesses: sockets opened before the storm that guess during it
STORM_GUESS_SECONDS = 10.0  # ... for this long (or the fixed-rate run's duration, if shorter)
SERVER_CORE, CLIENT_CORE = 0, 1
CORE_READING_S = 0.2  # how often the fixed-rate run reads the server core's busy share (20 clock ticks)
SATURATED = 0.95  # a reading at least this busy: the server core had no time to spare


@dataclass
class Options:
    mode: str = "production"  # or "embedded"
    sockets: int = 2000  # sockets of the guess scenarios
    storm: int = 5000  # sockets of the connect storm, the announcement and the memory cycles
    rate: float = 200.0  # guesses per second of the fixed-rate scenario
    duration: float = 20.0  # seconds of the fixed-rate scenario
    ramp_step: float = 6.0  # seconds per step of the sustained-rate search (0: no search)
    ramp_max_steps: int = 10
    cycles: int = 5  # connect/disconnect cycles of the memory scenario
    idle: float = 5.0  # seconds the guess scenario's sockets only ping, before the guesses (server CPU)
    http_duration: float = 10.0
    http_concurrency: int = 16
    ping_interval: float = 10.0  # each socket pings like a browser (0: never)
    # Guesses/s sent during the app's first storm by STORM_GUESSERS sockets opened before it (0: none).
    # Informative: their work loads the storm it measures, so the standard run sends none.
    storm_guesses: float = 0.0
    mix: dict = field(default_factory=lambda: {"wrong": 0.7, "partial": 0.2, "correct": 0.1})
    judged_share: float = 0.0  # share of guesses on puzzles judged by the Celery worker
    pin: bool = True
    smoke: bool = False
    profile: str = ""  # one of PROFILES: py-spy records the app's daphne through it
    only: tuple[str, ...] = SCENARIOS
    database_url: str = "postgres://postgres@127.0.0.1:5432/th_bench"
    redis_url: str = "redis://127.0.0.1:6379/8"
    out_dir: str = str(RESULTS)
    update_benchmarks: bool = True


def smoke_options(out_dir: str) -> Options:
    """20 sockets, a few seconds per scenario, nothing pinned, a private Redis, a throwaway database."""
    server = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    return Options(
        sockets=20,
        storm=20,
        rate=20,
        duration=2,
        ramp_step=1.5,
        idle=0.5,
        ramp_max_steps=2,
        cycles=2,
        http_duration=1.5,
        http_concurrency=4,
        ping_interval=1.0,
        judged_share=0.2,
        storm_guesses=5,
        pin=False,
        smoke=True,
        database_url=_with_database(server, f"th_bench_smoke_{os.getpid()}"),
        redis_url="",
        out_dir=out_dir,
        update_benchmarks=False,
    )


# --- Machine, layout and load ----------------------------------------------------------------------------


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_times() -> dict:
    """Busy and total jiffies per core (/proc/stat) and daphne's own CPU seconds, for utilizations."""
    cores = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name != "cpu":
            values = [int(v) for v in fields]
            cores[name] = (sum(values) - values[3] - values[4], sum(values))  # all but idle and iowait
    return {"cores": cores, "at": time.monotonic()}


async def read_core(core: str, into: list[tuple[float, float]], *, every: float = CORE_READING_S) -> None:
    """Until cancelled: every `every` seconds, (Unix time, busy share of `core` since the last reading).

    One read of /proc/stat per reading, on the load generator's loop: the server core's saturated stretches
    on the same clock as the guesses' timeline (`started_at`)."""
    last = cpu_times()["cores"].get(core)
    while True:
        await asyncio.sleep(every)
        now = cpu_times()["cores"].get(core)
        share = busy_share(last, now) if last is not None and now is not None else None
        if share is not None:
            into.append((round(time.time(), 3), round(share, 3)))
        last = now


def saturation(
    readings: list[tuple[float, float]],
    timeline: list[tuple[float, float | None]],
    started_at: float,
    *,
    every: float = CORE_READING_S,
    slow_ms: float = P99_TARGET_MS,
    busy: float = SATURATED,
) -> dict:
    """How the slow guesses of a run line up with the server core's saturated readings.

    `readings`: (Unix time, busy share over the `every` seconds before it), from read_core; `timeline`:
    each guess's (seconds after `started_at` it was sent, latency in ms or None when undelivered). A guess
    meets a saturated reading when one covers part of its life, from its send to its last verdict (an
    undelivered one: to the end of the readings).
    """
    ends = sorted(t - started_at for t, share in readings if share >= busy)

    def meets(sent: float, latency: float | None) -> bool:
        done = float("inf") if latency is None else sent + latency / 1000
        i = bisect.bisect_right(ends, sent)  # the first saturated reading ending after the send
        return i < len(ends) and ends[i] - every < done

    # Each guess once: (slow or undelivered, met a saturated reading).
    guesses = [(ms is None or ms > slow_ms, meets(sent, ms)) for sent, ms in timeline]
    met = sum(m for _, m in guesses)
    return {
        "readings": len(readings),
        "saturated_share": round(len(ends) / len(readings), 3) if readings else None,
        "slow": sum(s for s, _ in guesses),
        "slow_meeting_saturated": sum(s and m for s, m in guesses),
        "all_meeting_saturated_share": round(met / len(guesses), 3) if guesses else None,
    }


def process_cpu(pid: int, *, children: bool = False) -> tuple[float, float]:
    """User and system CPU seconds of a process; with `children`, those of its children that ended and
    were waited for are added (utime + cutime, stime + cstime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    user, system = int(fields[11]), int(fields[12])
    if children:
        user, system = user + int(fields[13]), system + int(fields[14])
    return user / tick, system / tick


def stack_cpu(pids: dict[str, list[int]]) -> dict[str, dict[int, float]]:
    """CPU seconds of each process of the stack (with its ended children's), by kind; one gone is left out."""
    found: dict[str, dict[int, float]] = {}
    for kind, listed in pids.items():
        found[kind] = {}
        for pid in listed:
            with suppress(OSError, IndexError, ValueError):
                found[kind][pid] = sum(process_cpu(pid, children=True))
    return found


def cpu_by_kind(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict[str, float]:
    """CPU seconds each kind of process used between two readings of stack_cpu.

    A process that started in between (a PostgreSQL backend) counts from zero. One that ended in between
    (a backend closed by the pool, an autovacuum worker) is missing from the second reading, and its
    parent, read too (the postmaster, a Celery worker's main process), has its time among its children's
    once it has waited for it: the sums before and after stay comparable.
    """
    return {
        kind: round(max(0.0, sum(now.values()) - sum(before.get(kind, {}).values())), 3)
        for kind, now in after.items()
    }


def stack_load(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict:
    """A scenario's CPU by kind of process, and how many processes of each kind were read at its end."""
    return {
        "stack_cpu_s": cpu_by_kind(before, after),
        "stack_processes": {k: len(v) for k, v in after.items()},
    }


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    """A core's busy share between two of cpu_times' (busy, total) readings; None when no tick passed."""
    ticks = after[1] - before[1]
    return (after[0] - before[0]) / ticks if ticks > 0 else None


def utilization(before: dict, after: dict, daphne: tuple[tuple, tuple]) -> dict:
    """Per core: the busy share over the interval; daphne: CPU seconds per second (and the system part)."""
    used = {
        core: round(busy_share(ticks, after["cores"][core]) or 0.0, 2)
        for core, ticks in before["cores"].items()
    }
    wall = max(after["at"] - before["at"], 1e-9)
    (user0, sys0), (user1, sys1) = daphne
    return {
        **used,
        "daphne": round((user1 + sys1 - user0 - sys0) / wall, 2),
        "daphne_sys": round((sys1 - sys0) / wall, 2),
    }


def machine() -> dict:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


BUSY = 0.8  # of a core: daphne working flat out (a full collection, a release), not settled


async def settled_rss(pid: int, *, steady: float = 2.0, timeout: float = 15.0) -> int:
    """daphne's RSS once it stops moving and daphne is not working flat out (readings 0.5 s apart within
    0.5% of each other for `steady` s, with under BUSY of a core between any two of them: what the server
    does once idle, such as treasurehunt.memory's release, is done), or after `timeout`.

    RSS alone is not enough: it stays put through a full collection, which took 1.7-2.5 s on a slow
    machine (BENCHMARKS.md, stop 18), so a reading taken during the release looked settled."""
    deadline = time.monotonic() + timeout
    last, cpu, at = rss_kb(pid), sum(process_cpu(pid)), time.monotonic()
    since = at
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now, cpu_now, at_now = rss_kb(pid), sum(process_cpu(pid)), time.monotonic()
        busy = (cpu_now - cpu) / max(at_now - at, 1e-9) >= BUSY
        if busy or abs(now - last) > last * 0.005:
            since = at_now
        elif at_now - since >= steady:
            return now
        last, cpu, at = now, cpu_now, at_now
    print(f"daphne's RSS did not settle in {timeout:.0f} s: its last reading is used", file=sys.stderr)
    return last


def _taskset(*args: str) -> str:
    return subprocess.run(["taskset", *args], check=True, capture_output=True, text=True).stdout


class Pinning:
    """Pins processes (every thread) to a core for the run; `restore` gives each its own CPU mask back.

    A pinned tree (the postmaster) is restored with its children of the moment: backends forked during
    the run inherited the pin.
    """

    def __init__(self):
        self.saved: dict[int, str] = {}
        self.trees: list[int] = []

    def pin(self, pids: list[int], core: int) -> None:
        for pid in pids:
            with suppress(subprocess.CalledProcessError):
                self.saved.setdefault(pid, _taskset("-p", str(pid)).strip().rsplit(" ", 1)[-1])
                _taskset("-a", "-p", "-c", str(core), str(pid))

    def pin_tree(self, root: int, core: int) -> None:
        self.trees.append(root)
        self.pin(tree(root), core)

    def restore(self) -> None:
        masks = dict(self.saved)
        for root in self.trees:
            if root in self.saved:
                masks.update({child: self.saved[root] for child in _children(root)})
        for pid, mask in masks.items():
            with suppress(subprocess.CalledProcessError):
                _taskset("-a", "-p", mask, str(pid))
        self.saved, self.trees = {}, []


def postmaster_pid(database_url: str) -> int:
    """The postmaster of the server behind `database_url` (its backends fork from it)."""
    with psycopg.connect(_with_database(database_url, "postgres"), autocommit=True) as conn:
        data_directory = conn.execute("SHOW data_directory").fetchone()[0]
    return int(Path(data_directory, "postmaster.pid").read_text().split()[0])


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


def redis_pid(redis_url: str) -> int:
    return int(redis.Redis.from_url(redis_url).info("server")["process_id"])


def local_services(database_url: str, redis_url: str, *, required: bool) -> tuple[int | None, int | None]:
    """The PostgreSQL postmaster's and redis-server's pids on this machine.

    Pinning needs both (`required`: an error goes on as it is). Otherwise one that cannot be found here (a
    server elsewhere or in a container, a database user who may not read the server's settings) is None,
    and the CPU per guess leaves it out.
    """
    found: list[int | None] = []
    for read, url, name in ((postmaster_pid, database_url, "postgres"), (redis_pid, redis_url, "redis")):
        try:
            pid = read(url)
            if name not in Path(f"/proc/{pid}/comm").read_text():
                raise LookupError(f"process {pid} is not {name} on this machine")
            found.append(pid)
        except Exception:
            if required:
                raise
            found.append(None)
    return found[0], found[1]


def group_pids(pgid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


def tree(root: int) -> list[int]:
    """A process and its children of the moment (the postmaster and its backends)."""
    return [root, *_children(root)]


def server_processes(postmaster: int | None, redis_server: int | None) -> dict[str, list[int]]:
    """The machine's PostgreSQL (the postmaster and its children of the moment) and redis-server, by kind;
    one not found here (None) is left out."""
    pids = {}
    if postmaster is not None:
        pids["PostgreSQL"] = tree(postmaster)
    if redis_server is not None:
        pids["Redis"] = [redis_server]
    return pids


def celery_pids(stack: Stack) -> list[int]:
    """Every process of the Celery judge and clock workers and beat that run."""
    return [
        pid
        for name in ("judge", "clock", "beat")
        if stack.running(name)
        for pid in group_pids(stack[name].popen.pid)
    ]


# --- Database and stack ------------------------------------------------------------------------------------


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _database_name(url: str) -> str:
    return urlsplit(url).path.strip("/")


def recreate_database(url: str) -> None:
    name = _database_name(url)
    with psycopg.connect(_with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    with psycopg.connect(_with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{_database_name(url)}" WITH (FORCE)')


def manage(env: dict, *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)


def daphne_argv(port: int, *, pin: bool) -> list[str]:
    """daphne as DESIGN section 2 runs it, serving bench.asgi, with room for thousands of sockets."""
    argv = [
        str(BIN / "daphne"),
        "-e",
        f"tcp:port={port}:interface=127.0.0.1:backlog=4096",
        "--websocket_timeout",
        "-1",
        "--websocket_connect_timeout",
        "30",
        "bench.asgi:application",
    ]
    if pin:
        argv = ["taskset", "-c", str(SERVER_CORE), *argv]
    raise_limit = 'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"'
    return ["bash", "-c", raise_limit, "daphne", *argv]


@dataclass
class Running:
    """What the scenarios need to know about the stack they run against."""

    base: str
    hunt: dict
    stack: Stack
    log_dir: Path
    postmaster: int | None = None  # the machine's PostgreSQL and Redis, in production mode
    redis_server: int | None = None

    @property
    def daphne_pid(self) -> int:
        return self.stack["web"].popen.pid

    def server_pids(self) -> dict[str, list[int]]:
        """The processes on the server core, by kind, as of now (PostgreSQL's backends come and go)."""
        pids = {"daphne": [self.daphne_pid], **server_processes(self.postmaster, self.redis_server)}
        if celery := celery_pids(self.stack):
            pids["Celery"] = celery
        return pids

    def analyze_if_no_autovacuum(self) -> bool:
        """ANALYZE the run's database when its server runs without autovacuum; returns whether it did.

        The bench's tables start empty and grow by tens of thousands of guesses and events. PostgreSQL's
        autovacuum (on by default) re-analyzes a table once a tenth of it changed; a server with it off
        keeps the empty tables' statistics, and the planner then scans `puzzles_guess` whole for every
        guess (BENCHMARKS.md, "This round"). Before each scenario and each sustained step the bench does
        what autovacuum would have done by then.
        """
        if self.autovacuum in (None, "on"):
            return False
        with psycopg.connect(self.stack.env["DATABASE_URL"], autocommit=True) as conn:
            conn.execute("ANALYZE")
        return True

    @functools.cached_property
    def autovacuum(self) -> str | None:
        """The server's autovacuum setting ("on", "off"), None for SQLite (read once per run)."""
        url = self.stack.env.get("DATABASE_URL", "")
        if not url.startswith("postgres"):
            return None
        with psycopg.connect(url, autocommit=True) as conn:
            return conn.execute("SHOW autovacuum").fetchone()[0]

    def restart_daphne(self) -> None:
        """A fresh daphne on the same port: memory is measured from a heap no earlier scenario grew."""
        web = self.stack["web"]
        web.stop(grace=15)
        web.start()
        web.wait_for_port(timeout=60)


@contextmanager
def stack_running(opts: Options, progress: Progress):
    """Database, Redis, the hunt and the stack's processes, pinned as the layout says; all undone on exit."""
    with ExitStack() as cleanup:
        log_dir = Path(tempfile.mkdtemp(prefix="bench-", dir=opts.out_dir))
        pinning = Pinning()
        cleanup.callback(pinning.restore)
        extra: dict[str, str] = {}  # production settings as they are (LOG_LEVEL INFO included)
        if opts.mode == "embedded":
            sqlite = Path(opts.out_dir) / "embedded.sqlite3"
            for path in Path(opts.out_dir).glob("embedded.sqlite3*"):
                path.unlink()
            database_url, redis_url = f"sqlite:///{sqlite}", ""
            extra["EMBEDDED_CLOCK"] = "1"
        else:
            database_url, redis_url = opts.database_url, opts.redis_url
            if not redis_url:  # a private redis-server (the smoke test)
                server = RedisServer(log_dir).start()
                cleanup.callback(server.stop)
                redis_url = server.url(0)
            recreate_database(database_url)
            if opts.smoke:
                cleanup.callback(drop_database, database_url)
            for offset in (0, 1):  # broker and cache databases of this run
                redis.Redis.from_url(_redis_db(redis_url, offset)).flushdb()
        stack = Stack(database_url=database_url, redis_url=redis_url, directory=log_dir, extra_env=extra)
        if opts.mode == "embedded":
            stack.env["REDIS_URL"] = ""
        progress.update("setting up: migrate", force=True)
        manage(stack.env, "migrate", "--noinput", "-v0")
        hunt_file = log_dir / "hunt.json"
        progress.update(f"setting up: {max(opts.storm, opts.sockets)} players", force=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.setup_hunt",
                "--players",
                str(max(opts.storm, opts.sockets)),
                "--out",
                str(hunt_file),
            ],
            cwd=ROOT,
            env=stack.env,
            check=True,
        )
        hunt = json.loads(hunt_file.read_text())
        cleanup.callback(stack.stop_all)
        port = free_port()
        web = Process(
            "web", daphne_argv(port, pin=opts.pin), env=stack.env, log_path=log_dir / "web.log", port=port
        )
        stack.processes["web"] = web.start()
        web.wait_for_port(timeout=60)
        if opts.mode == "production":
            progress.update("starting the Celery worker, clock and beat", force=True)
            stack.worker("judge", "judge,treasure,celery", concurrency=2)
            stack.worker("clock", "clock", concurrency=1)
            stack.beat()
        services = None
        if opts.mode == "production":  # pinned below; read for the CPU per guess where they can be found here
            services = local_services(database_url, redis_url, required=opts.pin)
        if opts.pin:
            pinning.pin(celery_pids(stack), SERVER_CORE)
            if services:
                pinning.pin_tree(services[0], SERVER_CORE)
                pinning.pin([services[1]], SERVER_CORE)
            own = os.sched_getaffinity(0)
            os.sched_setaffinity(0, {CLIENT_CORE})
            cleanup.callback(os.sched_setaffinity, 0, own)
        yield Running(
            base=f"http://127.0.0.1:{port}",
            hunt=hunt,
            stack=stack,
            log_dir=log_dir,
            postmaster=services[0] if services else None,
            redis_server=services[1] if services else None,
        )


def _redis_db(url: str, offset: int) -> str:
    parts = urlsplit(url)
    number = int(parts.path.strip("/") or 0)
    moved = number + offset if number + offset <= 15 else number - offset
    return urlunsplit(parts._replace(path=f"/{moved}"))


# --- Scenarios ---------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, opts: Options, running: Running, progress: Progress):
        self.opts, self.running, self.progress = opts, running, progress
        self.hunt = running.hunt
        ws = running.base.replace("http://", "ws://")
        slug = self.hunt["slug"]
        self.app_players = [
            Player(team=t, url=f"{ws}/ws/hunts/{slug}/", headers=(("Authorization", f"Token {m['token']}"),))
            for t, members in enumerate(self.hunt["teams"])
            for m in members
        ]
        self.bare_players = [
            Player(team=t, url=f"{ws}/bench/ws/{t}/")
            for t, members in enumerate(self.hunt["teams"])
            for _ in members
        ]
        self.staff_headers = {"Authorization": f"Token {self.hunt['staff']['token']}"}
        self.guess_maker = GuessMaker(self.hunt, mix=opts.mix, judged_share=opts.judged_share)
        self.loads: dict[str, list[float]] = {}

    def players(self, kind: str) -> list[Player]:
        return self.app_players if kind == "app" else self.bare_players

    @contextmanager
    def measuring(self, name: str):
        """Load average around a scenario, and how busy each core and daphne were through it."""
        pid = self.running.daphne_pid
        start, cpu, daphne = loadavg(), cpu_times(), process_cpu(pid)
        stack = stack_cpu(self.running.server_pids())
        try:
            yield
        finally:
            self.loads[name] = {
                "start": start,
                "end": loadavg(),
                "cpu": utilization(cpu, cpu_times(), (daphne, process_cpu(pid))),
                **stack_load(stack, stack_cpu(self.running.server_pids())),
            }

    async def quiet_server(self, *, below: float = 0.5, timeout: float = 60) -> float:
        """Wait until daphne used less than `below` of a core over the last second (what was queued has
        drained), at least 1 s and at most `timeout` s, then bring the database's statistics up to date
        where autovacuum would have; returns the seconds waited."""
        pid, started = self.running.daphne_pid, time.monotonic()
        while True:
            before = sum(process_cpu(pid))
            await asyncio.sleep(1.0)
            if sum(process_cpu(pid)) - before < below or time.monotonic() - started > timeout:
                await asyncio.to_thread(self.running.analyze_if_no_autovacuum)
                return time.monotonic() - started
            self.progress.update(f"waiting for daphne to drain ({time.monotonic() - started:.0f} s)")

    async def fleet(self, kind: str) -> tuple[Fleet, asyncio.Task | None]:
        fleet = Fleet(kind, progress=self.progress)
        pinger = (
            asyncio.ensure_future(fleet.pinger(self.opts.ping_interval)) if self.opts.ping_interval else None
        )
        return fleet, pinger

    async def post_announcement(self, client, text: str) -> float:
        started = time.perf_counter()
        response = await client.post(
            f"/api/hunts/{self.hunt['slug']}/announcements/", json={"text": text}, headers=self.staff_headers
        )
        response.raise_for_status()
        return round((time.perf_counter() - started) * 1000, 1)

    async def warm_up(self) -> None:
        """A few sockets, guesses and requests of each kind first: imports, pools and caches warm up."""
        for kind, frame_for in (("app", self.guess_maker), ("bare", bare_guess)):
            fleet, _ = await self.fleet(kind)
            await fleet.open(self.players(kind)[-8:], label="warm-up")
            await fleet.guesses(rate=20, duration=0.5, frame_for=frame_for, label="warm-up")
            await fleet.close()
        await self.http("app", duration=0.5, label="warm-up")
        await self.http("bare", duration=0.5, label="warm-up")

    async def storms(self, kind: str) -> dict:
        """Connect storm, announcement fan-out and idle memory: `cycles` times N sockets at once, closed."""
        pid = self.running.daphne_pid
        idle_before = await settled_rss(pid)
        cycles = []
        async with httpx.AsyncClient(base_url=self.running.base, timeout=30, trust_env=False) as client:
            for cycle in range(1, self.opts.cycles + 1):
                label = f"storm {cycle}/{self.opts.cycles}"
                fleet, pinger = await self.fleet(kind)
                guessing = kind == "app" and cycle == 1 and self.opts.storm_guesses
                async with self.guessing_during(label) if guessing else nullcontext() as during:
                    with self.profiling("storm" if cycle == 1 else "", kind):
                        storm = await fleet.open(self.players(kind)[: self.opts.storm], label=label)
                if during is not None:  # the guessers are gone: memory and the announcement are measured next
                    storm["guesses_during"] = during
                connected_rss = await settled_rss(pid)
                if kind == "app":
                    post = functools.partial(self.post_announcement, client)
                else:
                    post = functools.partial(self._broadcast, fleet)
                with self.profiling("announcement" if cycle == 1 else "", kind):
                    announcement = await fleet.announcement(post, label=label)
                if pinger:
                    pinger.cancel()
                close_s = await fleet.close()
                await self.quiet_server()
                idle_rss = await settled_rss(pid)
                cycles.append(
                    {
                        "storm": storm,
                        "announcement": announcement,
                        "connected_rss_kb": connected_rss,
                        "idle_rss_kb": idle_rss,
                        "close_s": round(close_s, 2),
                    }
                )
                self.progress.done(
                    f"{label} {kind}: {storm['connected']}/{storm['sockets']} in {storm['last_hello_s']} s, "
                    f"{storm['errors']} errors; announcement {announcement['reached']}/"
                    f"{announcement['sockets']} in {announcement['all_s']} s; "
                    f"RSS {connected_rss // 1024} MB connected, {idle_rss // 1024} MB idle"
                )
        first = cycles[0]
        per_socket = (first["connected_rss_kb"] - idle_before) / max(1, first["storm"]["connected"])
        during = first["storm"].get("guesses_during")
        return {
            **({"guesses_during": during} if during else {}),
            "idle_rss_before_kb": idle_before,
            "cycles": cycles,
            "all_hello_s": first["storm"]["all_hello_s"],
            "worst_all_hello_s": _worst([c["storm"]["all_hello_s"] for c in cycles]),
            "errors": sum(c["storm"]["errors"] for c in cycles),
            "announcement_s": first["announcement"]["all_s"],
            "worst_announcement_s": _worst([c["announcement"]["all_s"] for c in cycles]),
            "rss_per_socket_kb": round(per_socket, 1),
            "idle_growth": round(cycles[-1]["idle_rss_kb"] / first["idle_rss_kb"], 3),
        }

    @asynccontextmanager
    async def guessing_during(self, label: str):
        """Sockets opened before a storm send guesses while it connects (--storm-guesses): how long a player
        already in waits for a verdict while thousands connect (BENCHMARKS.md, fix 51). Yields a dict that
        holds their figures once the block (the storm) is over; the sockets are closed on leaving it."""
        guessers = Fleet("app", progress=self.progress)
        players = self.players("app")[: min(STORM_GUESSERS, self.opts.storm)]
        seconds = min(STORM_GUESS_SECONDS, self.opts.duration)
        sending = None
        try:
            opened = await guessers.open(players, label=f"{label} guessers")
            if opened["connected"] != len(players):
                raise RuntimeError(f"guessers: {opened['connected']} of {len(players)} open before the storm")
            sending = asyncio.ensure_future(
                guessers.guesses(
                    rate=self.opts.storm_guesses,
                    duration=seconds,
                    frame_for=self.guess_maker,
                    label=f"{label} guesses",
                    drain=30.0,
                )
            )
            figures = {"rate": self.opts.storm_guesses, "sockets": len(players), "seconds": seconds}
            yield figures
            got = await sending
            # With each guess's send time and latency (`timeline`, from `started_at`): which seconds of
            # the storm kept the players already in waiting.
            kept = ("sent", "delivered", "undelivered", "duplicates", "latency_ms", "accepted_ms")
            figures.update({key: got[key] for key in (*kept, "error_frames", "started_at", "timeline")})
        finally:
            if sending is not None:
                sending.cancel()
            await guessers.close()

    async def _broadcast(self, fleet: Fleet, text: str) -> float:
        started = time.perf_counter()
        await fleet.open_conns()[0].ws.send(json.dumps({"type": "broadcast", "text": text}))
        return round((time.perf_counter() - started) * 1000, 1)

    async def guesses(self, kind: str) -> dict:
        """The fixed-rate scenario, then the search for the highest rate with p99 within the target."""
        fleet, pinger = await self.fleet(kind)
        frame_for = self.guess_maker if kind == "app" else bare_guess
        opened = await fleet.open(self.players(kind)[: self.opts.sockets], label="guesses")
        self.progress.done(f"guesses {kind}: {opened['connected']}/{opened['sockets']} sockets open")
        await self.quiet_server()
        with self.measuring(f"idle {kind}"):  # the cost of open sockets that only ping
            await asyncio.sleep(self.opts.idle)
        held = getattr(frame_for, "held_back", 0)
        core, readings = f"cpu{SERVER_CORE}", []
        reading = asyncio.ensure_future(read_core(core, readings))
        try:
            with self.measuring(f"guesses {kind}"), self.profiling("guesses", kind):
                fixed = await fleet.guesses(
                    rate=self.opts.rate, duration=self.opts.duration, frame_for=frame_for, label="guesses"
                )
        finally:
            reading.cancel()
        fixed["server_core"] = {
            "core": core,
            "every_s": CORE_READING_S,
            **saturation(readings, fixed["timeline"], fixed["started_at"]),
            "busy": readings,  # (Unix time, busy share since the reading before)
        }
        fixed["sockets"] = opened["connected"]
        fixed["corrects_held_back"] = getattr(frame_for, "held_back", 0) - held  # GuessMaker
        self.progress.done(_guess_line(f"guesses {kind}", fixed))
        ramp = None
        if self.opts.ramp_step:
            with self.measuring(f"sustained {kind}"):
                ramp = await self.ramp(fleet, frame_for, kind)
        if pinger:
            pinger.cancel()
        await fleet.close()
        return {"fixed": fixed, "sustained": ramp}

    async def ramp(self, fleet: Fleet, frame_for, kind: str) -> dict:
        """Rates growing by half until a step fails, then two bisections: the highest passing rate."""
        steps, passed, failed = [], None, None
        rate = self.opts.rate
        for _ in range(self.opts.ramp_max_steps):
            await self.quiet_server()  # a failed step's backlog must not count against the next one
            with self.measuring(f"sustained {kind} {round(rate)}"):
                step = await fleet.guesses(
                    rate=round(rate), duration=self.opts.ramp_step, frame_for=frame_for, label="sustained"
                )
            step["pass"] = _passes(step)
            steps.append(step)
            self.progress.done(
                _guess_line(f"sustained {kind}", step) + (" pass" if step["pass"] else " FAIL")
            )
            if step["pass"]:
                passed = max(passed or 0, step["rate"])
            else:
                failed = min(failed or float("inf"), step["rate"])
            if failed is None:
                rate = rate * 1.5
            elif passed is None:
                rate = rate / 1.5
            elif failed / passed > 1.12:
                rate = (passed + failed) / 2
            else:
                break
        return {"steps": steps, "per_s": passed, "first_failing_per_s": failed}

    def request_for(self, kind: str):
        slug, teams = self.hunt["slug"], self.hunt["teams"]
        # The last puzzle: no bench team reaches it, so every POST is a new wrong guess (201).
        path = f"/api/hunts/{slug}/puzzles/{self.hunt['puzzles'][-1]}/guesses/"
        run = time.monotonic_ns()

        def request(i: int) -> tuple[str, dict, dict]:
            members = teams[i % len(teams)]
            token = members[(i // len(teams)) % len(members)]["token"]
            headers = {"Authorization": f"Token {token}"}
            if kind == "app":
                return path, headers, {"answer": f"http {run} {i}"}
            return "/bench/api/noop/", headers, {"answer": f"http {run} {i}"}

        return request

    async def http(self, kind: str, *, duration: float | None = None, label: str = "http") -> dict:
        return await http_load(
            base=self.running.base,
            request_for=self.request_for(kind),
            concurrency=self.opts.http_concurrency,
            duration=duration or self.opts.http_duration,
            progress=self.progress,
            label=f"{label} {kind}",
        )

    @contextmanager
    def profiling(self, scenario: str, kind: str):
        """py-spy samples the app's daphne through the scenario named by --profile (collapsed stacks)."""
        if not self.opts.profile or self.opts.profile != scenario or kind != "app":
            yield
            return
        out = Path(self.opts.out_dir) / f"profile-{scenario}-{_stamp()}.txt"
        argv = [
            str(BIN / "py-spy"),
            "record",
            "--pid",
            str(self.running.daphne_pid),
            "--format",
            "raw",
            "--rate",
            "1000" if scenario == "announcement" else "250",  # an announcement lasts about a second
            "--gil",  # only the thread holding the GIL: where daphne's Python spends its CPU
            "--nonblocking",
            "-o",
            str(out),
        ]
        spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # py-spy attaches before the scenario starts
        try:
            yield
        finally:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file and exits
            spy.wait(timeout=60)
            self.progress.done(f"profile of {scenario}: {out}")

    async def fresh_daphne_after(self, scenarios: dict) -> None:
        """Restart daphne when an earlier scenario ran: each starts on a heap no other one left garbage in.

        The app's sockets leave theirs to the app's release (treasurehunt/memory.py), which the bare
        consumers under /bench/ do not pass through: thousands of closed bare sockets stayed for the
        collector, whose automatic full collections then paused daphne 0.6-1.6 s in the middle of the
        next scenario's app run (BENCHMARKS.md, fix 24).
        """
        if scenarios:
            self.running.restart_daphne()
            await self.warm_up()

    async def run(self) -> dict:
        """Each scenario for the app, then for its baseline, minutes apart on the same processes."""
        scenarios: dict = {}
        self.progress.update("warming up", force=True)
        await self.warm_up()
        if "storm" in self.opts.only:
            scenarios["storm"] = {}
            for kind in ("app", "bare"):
                if kind == "bare":
                    self.running.restart_daphne()
                    await self.warm_up()
                await self.quiet_server()
                with self.measuring(f"storm {kind}"):
                    scenarios["storm"][kind] = await self.storms(kind)
        if "guesses" in self.opts.only:
            await self.fresh_daphne_after(scenarios)
            scenarios["guesses"] = {kind: await self.guesses(kind) for kind in ("app", "bare")}
        if "http" in self.opts.only:
            await self.fresh_daphne_after(scenarios)
            scenarios["http"] = {}
            for kind in ("app", "bare"):
                await self.quiet_server()
                with self.measuring(f"http {kind}"), self.profiling("http", kind):
                    result = await self.http(kind)
                self.progress.done(
                    f"http {kind}: {result['per_s']} requests/s, statuses {result['statuses']}"
                )
                scenarios["http"][kind] = result
        return scenarios


def _worst(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else max(values, default=None)


def _passes(step: dict) -> bool:
    p99 = step["latency_ms"]["p99"]
    return (
        p99 is not None
        and p99 <= P99_TARGET_MS
        and step["undelivered"] == 0
        and not step["error_frames"]
        and step["delivered_per_s"] >= 0.95 * step["rate"]
    )


def _guess_line(label: str, step: dict) -> str:
    lat = step["latency_ms"]
    return (
        f"{label}: {step['rate']:g}/s -> {step['delivered']}/{step['sent']} delivered, p50 {lat['p50']} ms, "
        f"p99 {lat['p99']} ms, max {lat['max']} ms, errors {step['error_frames'] or 0}, "
        f"client CPU {step['client_cpu']:.0%}"
    )


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


# --- Report --------------------------------------------------------------------------------------------


def _ratio(app, bare, digits: int = 2):
    if app is None or bare in (None, 0):
        return None
    return round(app / bare, digits)


def _at_most(value, limit) -> bool:
    return value is not None and value <= limit


def _share_at_least(app, bare, share: float) -> bool:
    """app >= share x bare, on the figures themselves: the table's ratio is rounded (0.497 shows as 0.5x)."""
    return app is not None and bare not in (None, 0) and app >= share * bare  # as _ratio: no bare, no ratio


def per_guess(load: dict | None, sent: int) -> dict[str, float] | None:
    """Milliseconds of CPU per guess sent, by kind of process on the server core, from a scenario's load
    ("total": all of them), rounded to hundredths."""
    if not load or not load.get("stack_cpu_s") or not sent:
        return None
    used = load["stack_cpu_s"]
    return {
        **{kind: round(seconds * 1000 / sent, 2) for kind, seconds in used.items()},
        "total": round(sum(used.values()) * 1000 / sent, 2),
    }


def guess_cpu(result: dict) -> dict[str, dict[str, float]] | None:
    """The fixed-rate runs' CPU per guess (app) and per message (bare), when both were read."""
    guesses = result["scenarios"].get("guesses")
    if not guesses:
        return None
    splits = {
        kind: per_guess(result["load"].get(f"guesses {kind}"), guesses[kind]["fixed"]["sent"])
        for kind in ("app", "bare")
    }
    return splits if all(splits.values()) else None


def figures(result: dict) -> list[dict]:
    """The rows of the table: each figure, its baseline, their ratio, the target and the load meanwhile."""
    s, opts, loads = result["scenarios"], result["options"], result["load"]
    rows = []

    def row(figure, app, bare, target, met, load_name, ratio=None):
        got = loads.get(load_name)
        cpu = got.get("cpu") if got else None
        rows.append(
            {
                "figure": figure,
                "app": app,
                "bare": bare,
                "ratio": _ratio(app, bare) if ratio is None else ratio,
                "target": target,
                "met": met,
                "load": f"{got['start'][0]:.2f} -> {got['end'][0]:.2f}" if got else "",
                "cpu": f"{cpu['cpu0']:.0%} / {cpu['cpu1']:.0%} / {cpu['daphne']:.0%}" if cpu else "",
            }
        )

    n, rate, storm_n, cycles = opts["sockets"], opts["rate"], opts["storm"], opts["cycles"]
    if "guesses" in s:
        app, bare = s["guesses"]["app"], s["guesses"]["bare"]
        fa, fb = app["fixed"], bare["fixed"]
        p99, bare_p99 = fa["latency_ms"]["p99"], fb["latency_ms"]["p99"]
        row(
            f"p99 guess -> every teammate's guess.judged, {n} sockets at {rate:g}/s (ms)",
            p99,
            bare_p99,
            "<= 50 ms, <= 3x bare",
            _at_most(p99, P99_TARGET_MS)
            and fa["undelivered"] == 0
            and bare_p99 is not None
            and _at_most(p99, 3 * bare_p99),
            "guesses app",
        )
        row("p50 of the same (ms)", fa["latency_ms"]["p50"], fb["latency_ms"]["p50"], "", None, "guesses app")
        idle_a, idle_b = (loads.get(f"idle {k}", {}).get("cpu") for k in ("app", "bare"))
        if idle_a and idle_b:
            row(
                f"daphne CPU with {n} open sockets pinging every {opts['ping_interval']:g} s, no guesses (%)",
                round(idle_a["daphne"] * 100),
                round(idle_b["daphne"] * 100),
                "",
                None,
                "idle app",
            )
        row(
            "guesses delivered to every teammate / sent",
            f"{fa['delivered']}/{fa['sent']}",
            f"{fb['delivered']}/{fb['sent']}",
            "all",
            fa["undelivered"] == 0,
            "guesses app",
            ratio="",
        )
        if splits := guess_cpu(result):
            row(
                f"server core's CPU per guess at {rate:g}/s, its pings and the clock included (ms; bare: per "
                "message)",
                splits["app"]["total"],
                splits["bare"]["total"],
                "",
                None,
                "guesses app",
            )
        if app["sustained"] and bare["sustained"]:
            row(
                f"sustained guesses/s at p99 <= 50 ms, {n} sockets (bare: messages/s)",
                app["sustained"]["per_s"],
                bare["sustained"]["per_s"],
                "aim >= 0.5x",
                _share_at_least(app["sustained"]["per_s"], bare["sustained"]["per_s"], 0.5),
                "sustained app",
            )
    if "storm" in s:
        a, b = s["storm"]["app"], s["storm"]["bare"]
        row(
            f"connect storm: {storm_n} sockets at once, all hello (s), 1st cycle",
            a["all_hello_s"],
            b["all_hello_s"],
            "<= 15 s, 0 errors",
            _at_most(a["all_hello_s"], 15) and a["errors"] == 0,
            "storm app",
        )
        row(
            f"connect storm: worst of {cycles} cycles (s)",
            a["worst_all_hello_s"],
            b["worst_all_hello_s"],
            "<= 15 s",
            _at_most(a["worst_all_hello_s"], 15),
            "storm app",
        )
        row(
            f"connect errors, {cycles} cycles",
            a["errors"],
            b["errors"],
            "0",
            a["errors"] == 0,
            "storm app",
            ratio="",
        )
        row(
            f"announcement reaches all {storm_n} sockets (s), 1st cycle",
            a["announcement_s"],
            b["announcement_s"],
            "<= 1 s",
            _at_most(a["announcement_s"], 1),
            "storm app",
        )
        row(
            f"announcement: worst of {cycles} cycles (s)",
            a["worst_announcement_s"],
            b["worst_announcement_s"],
            "<= 1 s",
            _at_most(a["worst_announcement_s"], 1),
            "storm app",
        )
        row(
            "daphne RSS per idle socket (KB)",
            a["rss_per_socket_kb"],
            b["rss_per_socket_kb"],
            "<= 60 KB",
            _at_most(a["rss_per_socket_kb"], 60),
            "storm app",
        )
        row(
            f"idle RSS after cycle {cycles} / after cycle 1",
            a["idle_growth"],
            b["idle_growth"],
            "<= 1.10x",
            _at_most(a["idle_growth"], 1.10),
            "storm app",
        )
    if "http" in s:
        a, b = s["http"]["app"]["per_s"], s["http"]["bare"]["per_s"]
        row(
            f"HTTP guess POST requests/s, {opts['http_concurrency']} clients (bare: DRF view returning {{}})",
            a,
            b,
            "aim >= 0.5x",
            _share_at_least(a, b, 0.5),
            "http app",
        )
    return rows


def markdown(result: dict) -> str:
    def cell(value) -> str:
        if value is None:
            return "n/a"
        if value is True:
            return "yes"
        if value is False:
            return "**no**"
        return str(value)

    lines = [
        f"Run {result['started_at']} ({result['mode']}{', smoke' if result['options']['smoke'] else ''}), "
        f"{result['duration_s']:.0f} s; load average (1 min) before: {result['loadavg_before'][0]:.2f}, "
        f"after: {result['loadavg_after'][0]:.2f}."
        + (
            " PostgreSQL runs with autovacuum off: the bench ANALYZEs before each scenario and step."
            if result.get("versions", {}).get("postgresql_autovacuum") == "off"
            else ""
        ),
        *(["", probe.describe(result["probe"])] if "probe" in result else []),
        "",
        "| figure | app | bare baseline | app / bare | target | met | load avg 1 min (start -> end) "
        "| busy: core 0 / core 1 / daphne |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["figures"]:
        ratio = "" if r["ratio"] in ("", None) else f"{r['ratio']}x"
        met = "" if r["met"] is None else cell(r["met"])
        lines.append(
            f"| {r['figure']} | {cell(r['app'])} | {cell(r['bare'])} | {ratio} | {r['target']} | {met} "
            f"| {r['load']} | {r['cpu']} |"
        )
    guesses = result["scenarios"].get("guesses")
    if guesses and guesses["app"]["sustained"]:
        lines += ["", "Sustained-rate search (guesses/s -> p99 ms, pass):"]
        for kind in ("app", "bare"):
            steps = guesses[kind]["sustained"]["steps"]
            text = ", ".join(
                f"{s['rate']:g} -> {s['latency_ms']['p99']} {'ok' if s['pass'] else 'fail'}" for s in steps
            )
            lines.append(f"- {kind}: {text}")
    if guesses:
        if splits := guess_cpu(result):
            text = "; ".join(
                f"{kind} " + ", ".join(f"{name} {ms}" for name, ms in split.items() if name != "total")
                for kind, split in splits.items()
            )
            lines += ["", f"Server core's CPU per guess in the fixed-rate run, by process (ms): {text}."]
        fixed = guesses["app"]["fixed"]
        if fixed.get("error_frames"):
            messages = fixed.get("error_messages", {})
            text = "; ".join(
                f"{code} x{n}" + (f' ("{messages[code]}")' if messages.get(code) else "")
                for code, n in sorted(fixed["error_frames"].items())
            )
            lines += ["", f"Error frames the app sent in the fixed-rate run: {text}."]
        if line := _saturation_line(fixed.get("server_core")):
            lines += ["", line]
        if fixed.get("corrects_held_back"):
            lines += [
                "",
                f"Correct answers held back in the fixed-rate run until the team's earlier guesses had their "
                f"answers (a wrong one sent instead): {fixed['corrects_held_back']} of "
                f"{fixed.get('sent', '?')} guesses.",
            ]
    during = result["scenarios"].get("storm", {}).get("app", {}).get("guesses_during")
    if during:
        latency = during["latency_ms"]
        lines += [
            "",
            f"Guesses during the first storm (informative: their work loads the storm): "
            f"{during['rate']:g}/s for {during['seconds']:g} s from {during['sockets']} sockets opened "
            f"before it, each until every teammate had its verdict p50 {latency.get('p50')} ms, p90 "
            f"{latency.get('p90')} ms, p99 {latency.get('p99')} ms; {during['delivered']} of "
            f"{during['sent']} delivered.",
        ]
    lines += ["", f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def _saturation_line(core: dict | None) -> str | None:
    """The report's line on where the fixed-rate run's slow guesses were (None without readings)."""
    if not core or not core.get("readings"):
        return None
    text = (
        f"Server core through the app's fixed-rate run (read every {core['every_s']:g} s): at least "
        f"{SATURATED:.0%} busy in {core['saturated_share']:.0%} of the readings; "
    )
    if not core["slow"]:
        return text + f"no guess over {P99_TARGET_MS:g} ms."
    return text + (
        f"of the {core['slow']} guesses over {P99_TARGET_MS:g} ms (or undelivered), "
        f"{core['slow_meeting_saturated']} lived through such a reading (of all guesses, "
        f"{core['all_meeting_saturated_share']:.0%})."
    )


MARKERS = {
    "production": ("<!-- bench:production:start -->", "<!-- bench:production:end -->"),
    "embedded": ("<!-- bench:embedded:start -->", "<!-- bench:embedded:end -->"),
}


def update_benchmarks(result: dict, table: str) -> None:
    """Replace the figures section of this mode in BENCHMARKS.md (the hand-written parts stay)."""
    start, end = MARKERS[result["mode"]]
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else ""
    if start not in text or end not in text:
        print(f"BENCHMARKS.md has no {start} ... {end} section: not updated", file=sys.stderr)
        return
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    BENCHMARKS.write_text(f"{head}{start}\n{table}\n{end}{tail}")


# --- Entry point -------------------------------------------------------------------------------------------


def run(opts: Options, *, command: str = "") -> dict:
    """Run every scenario; returns the result (also written to opts.out_dir)."""
    out_dir = Path(opts.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    loadgen.raise_open_files_limit()
    progress = Progress(enabled=True)
    started, before = time.monotonic(), loadavg()
    result = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": opts.mode,
        "command": command,
        "options": asdict(opts),
        "machine": machine(),
        "loadavg_before": before,
    }
    with stack_running(opts, progress) as running:
        result["layout"] = layout(opts)
        result["versions"] = versions(opts, running)
        env = running.stack.env
        result["probe"] = probe.measure(database_url=env["DATABASE_URL"], redis_url=env["REDIS_URL"])
        bench = Bench(opts, running, progress)
        result["scenarios"] = asyncio.run(bench.run())
        result["load"] = bench.loads
        result["guess_kinds_sent"] = dict(bench.guess_maker.kinds_sent)
        result["logs"] = str(running.log_dir)
    result["duration_s"] = round(time.monotonic() - started, 1)
    result["loadavg_after"] = loadavg()
    result["figures"] = figures(result)
    table = markdown(result)
    stamp = _stamp()
    for name in (f"{stamp}-{opts.mode}", f"latest-{opts.mode}"):
        (out_dir / f"{name}.json").write_text(json.dumps(result, indent=1))
        (out_dir / f"{name}.md").write_text(table)
    if opts.update_benchmarks and not opts.smoke and set(opts.only) == set(SCENARIOS):
        update_benchmarks(result, table)
    print(table)
    return result


def layout(opts: Options) -> str:
    if not opts.pin:
        return "not pinned"
    server = (
        "daphne, Celery judge + clock workers and beat, PostgreSQL, Redis"
        if opts.mode == "production"
        else "daphne"
    )
    return f"core {SERVER_CORE}: {server}; core {CLIENT_CORE}: the load generator"


def versions(opts: Options, running: Running) -> dict:
    found = {}
    if opts.mode == "production":
        with suppress(Exception), psycopg.connect(_with_database(opts.database_url, "postgres")) as conn:
            found["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
        # off: the bench ANALYZEs before each scenario and step (Running.analyze_if_no_autovacuum)
        found["postgresql_autovacuum"] = running.autovacuum
        with suppress(Exception):
            found["redis"] = redis.Redis.from_url(running.stack.env["REDIS_URL"]).info("server")[
                "redis_version"
            ]
    return found


def parse_args(argv: list[str] | None) -> Options:
    d = Options()
    p = argparse.ArgumentParser(description="Load benchmark of the live stream and the REST API.")
    p.add_argument("--mode", choices=["production", "embedded"], default=d.mode)
    p.add_argument("--sockets", type=int, default=d.sockets, help="sockets of the guess scenarios")
    p.add_argument("--storm", type=int, default=d.storm, help="sockets of the storm, announcement and memory")
    p.add_argument("--rate", type=float, default=d.rate, help="guesses/s of the fixed-rate scenario")
    p.add_argument("--duration", type=float, default=d.duration, help="seconds of the fixed-rate scenario")
    p.add_argument(
        "--ramp-step", type=float, default=d.ramp_step, help="seconds per sustained-rate step; 0: skip"
    )
    p.add_argument("--cycles", type=int, default=d.cycles)
    p.add_argument("--idle", type=float, default=d.idle, help="seconds of pings only, before the guesses")
    p.add_argument("--http-duration", type=float, default=d.http_duration)
    p.add_argument("--http-concurrency", type=int, default=d.http_concurrency)
    p.add_argument("--ping-interval", type=float, default=d.ping_interval, help="0: sockets never ping")
    p.add_argument(
        "--judged-share",
        type=float,
        default=d.judged_share,
        help="share of guesses judged by the Celery worker (numeric puzzles)",
    )
    p.add_argument(
        "--storm-guesses",
        type=float,
        default=d.storm_guesses,
        help=f"guesses/s from {STORM_GUESSERS} sockets opened before the first storm, sent during it "
        "(informative: they load the storm)",
    )
    p.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin processes to cores")
    p.add_argument(
        "--profile", choices=PROFILES, help="py-spy records the app's daphne through this scenario"
    )
    p.add_argument(
        "--only",
        type=lambda v: tuple(v.split(",")),
        default=d.only,
        help="comma-separated subset of storm,guesses,http (informative runs)",
    )
    p.add_argument("--smoke", action="store_true", help="20 sockets, counts only, private Redis and database")
    p.add_argument("--database-url", default=d.database_url, help="recreated for the run")
    p.add_argument("--redis-url", default=d.redis_url, help="database n (broker) and n+1 (cache) are flushed")
    p.add_argument("--out-dir", default=d.out_dir)
    p.add_argument(
        "--no-benchmarks", dest="update_benchmarks", action="store_false", help="leave BENCHMARKS.md alone"
    )
    args = p.parse_args(argv)
    if args.smoke:
        return smoke_options(args.out_dir)
    return Options(**{k: v for k, v in vars(args).items() if k in Options.__dataclass_fields__})


def main(argv: list[str] | None = None) -> None:
    opts = parse_args(argv)
    # SIGTERM (a killed make, a test timeout) unwinds like Ctrl-C: processes stopped, pins restored.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    command = " ".join(
        shlex.quote(a) for a in [".venv/bin/python", "-m", "bench.run", *(argv or sys.argv[1:])]
    )
    run(opts, command=command)


if __name__ == "__main__":
    main()
