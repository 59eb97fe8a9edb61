"""The load generator: simulated players on the live stream (websockets) and the REST API (httpx).

One asyncio process drives every socket. A `Fleet` is a set of sockets of one kind, the app's
(`/ws/hunts/<hunt>/`, `Authorization: Token`) or the bare baseline's (`/bench/ws/<team>/`), each with a
reader that timestamps the frames it cares about on arrival:

- guesses are sent open-loop at a fixed rate (one scheduler, round-robin over teams and their members), and
  a guess is delivered when EVERY open socket of its team (the sender and its teammates) has its
  `guess.judged` frame; its latency is send -> the last of those frames;
- an announcement is delivered when every open socket has it;
- a connect storm opens N sockets at once and times each until its `hello`.

Nothing here knows Django: the hunt comes as the JSON written by bench/setup_hunt.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import math
import random
import resource
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

perf = time.perf_counter
TYPE_PREFIX = '{"type": "'  # json.dumps with default separators, "type" first: every frame of both consumers
DRAIN_MAX = 120.0  # seconds a guess run waits at most, after its last send, for guesses still arriving


def raise_open_files_limit() -> int:
    """Raise RLIMIT_NOFILE to the hard limit (thousands of sockets); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def summarize(values: Sequence[float]) -> dict:
    """Count and percentiles (nearest rank) of latencies in milliseconds."""
    if not values:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 2)

    return {
        "n": len(ordered),
        "p50": rank(0.50),
        "p90": rank(0.90),
        "p99": rank(0.99),
        "max": round(ordered[-1], 2),
        "mean": round(sum(ordered) / len(ordered), 2),
    }


@contextlib.contextmanager
def collector_paused():
    """This process's garbage collector off through a timed run, after one collection before it.

    The load generator holds thousands of sockets, so its collections took 5-15 ms each (young and middle
    generations) and a full one up to 150 ms; every frame that arrived meanwhile was timestamped late,
    the bare baseline's as the app's, and the slowest of them were counted in the p99 of both
    (BENCHMARKS.md, fix 58). A run's garbage waits for the collection after it.
    """
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class Progress:
    """One status line on stderr, rewritten at most 10 times a second."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and sys.stderr.isatty()
        self.plain = enabled and not self.enabled  # not a terminal: a line now and then
        self.shown_at = 0.0
        self.width = 0

    def update(self, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.enabled and (force or now - self.shown_at >= 0.1):
            sys.stderr.write("\r" + text.ljust(self.width))
            sys.stderr.flush()
            self.width, self.shown_at = len(text), now
        elif self.plain and (force or now - self.shown_at >= 5):
            print(text, file=sys.stderr, flush=True)
            self.shown_at = now

    def done(self, text: str) -> None:
        if self.enabled:
            sys.stderr.write("\r" + text.ljust(self.width) + "\n")
            sys.stderr.flush()
            self.width = 0
        elif self.plain:
            print(text, file=sys.stderr, flush=True)


# --- Sockets --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Player:
    team: int
    url: str
    headers: tuple[tuple[str, str], ...] = ()


class Conn:
    __slots__ = ("index", "player", "ws", "reader", "hello", "hello_at", "started_at", "failure")

    def __init__(self, index: int, player: Player):
        self.index, self.player = index, player
        self.ws = self.reader = None
        self.hello = asyncio.Event()
        self.hello_at: float | None = None
        self.started_at = 0.0
        self.failure: str | None = None

    @property
    def open(self) -> bool:
        return self.hello_at is not None and self.failure is None


class Flight:
    """A frame that must reach a set of sockets: sent at `sent_at`, delivered at `done_at`."""

    __slots__ = ("sent_at", "expected", "seen", "done_at", "accepted_at", "error")

    def __init__(self, sent_at: float, expected: frozenset[int]):
        self.sent_at, self.expected = sent_at, expected
        self.seen: set[int] = set()
        self.done_at = self.accepted_at = None
        self.error: str | None = None

    @property
    def answered(self) -> bool:
        """The sender has the server's answer: guess.accepted, an error, or the verdict itself."""
        return self.accepted_at is not None or self.error is not None or self.done_at is not None


class Fleet:
    """Sockets of one kind, their readers, and the frames in the air (guesses and announcements)."""

    def __init__(self, name: str, *, progress: Progress):
        self.name, self.progress = name, progress
        self.conns: list[Conn] = []
        self.flights: dict[str, Flight] = {}
        self.open_flights = 0
        self.frames: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.error_messages: dict[str, str] = {}  # code -> the first message seen with it
        self.created: Counter[str] = Counter()
        self.stray = self.duplicates = 0

    # Frames ---------------------------------------------------------------------------------------

    def on_frame(self, conn: Conn, text: str, now: float) -> None:
        if text.startswith(TYPE_PREFIX):
            kind = text[10 : text.find('"', 10)]
        else:
            kind = json.loads(text).get("type", "?")
        self.frames[kind] += 1
        if kind == "guess.judged":
            self._arrived(json.loads(text)["data"]["guess"]["client_id"], conn, now)
        elif kind == "announcement.posted":
            self._arrived(json.loads(text)["data"]["text"], conn, now)
        elif kind == "hello":
            conn.hello_at = now
            conn.hello.set()
        elif kind == "guess.accepted":
            frame = json.loads(text)
            self.created["created" if frame.get("created") else "repeat"] += 1
            flight = self.flights.get(frame.get("id"))
            if flight is not None:
                flight.accepted_at = now
        elif kind == "error":
            frame = json.loads(text)
            code = frame.get("code", "?")
            self.errors[code] += 1
            self.error_messages.setdefault(code, str(frame.get("message", ""))[:200])
            flight = self.flights.get(frame.get("id"))
            if flight is not None:
                flight.error = frame.get("code")

    def _arrived(self, key: str, conn: Conn, now: float) -> None:
        flight = self.flights.get(key)
        if flight is None or conn.index not in flight.expected:
            self.stray += 1
            return
        if conn.index in flight.seen:
            self.duplicates += 1
            return
        flight.seen.add(conn.index)
        if len(flight.seen) == len(flight.expected):
            flight.done_at = now
            self.open_flights -= 1

    async def _read(self, conn: Conn) -> None:
        on_frame = self.on_frame
        try:
            async for text in conn.ws:
                on_frame(conn, text, perf())
        except ConnectionClosed:
            pass
        code = conn.ws.close_code
        if conn.hello_at is None or code not in (1000, 1001, None):
            conn.failure = conn.failure or f"closed {code}"
        conn.hello.set()

    # Connecting -----------------------------------------------------------------------------------

    async def _open(self, conn: Conn, timeout: float) -> None:
        conn.started_at = perf()
        try:
            conn.ws = await connect(
                conn.player.url,
                additional_headers=list(conn.player.headers),
                compression=None,
                proxy=None,
                open_timeout=timeout,
                ping_interval=None,
                close_timeout=10,
                max_queue=None,
                user_agent_header=None,
            )
        except Exception as exc:  # noqa: BLE001 - every failure is counted by kind
            conn.failure = type(exc).__name__
            return
        conn.reader = asyncio.ensure_future(self._read(conn))
        try:
            await asyncio.wait_for(conn.hello.wait(), timeout)
        except TimeoutError:
            conn.failure = "no hello"

    async def open(self, players: Sequence[Player], *, timeout: float = 60, label: str = "") -> dict:
        """Open a socket per player, all at once; returns the storm's timings and failures."""
        start = len(self.conns)
        conns = [Conn(start + i, p) for i, p in enumerate(players)]
        self.conns.extend(conns)
        cpu0, t0 = cpu_seconds(), perf()
        tasks = [asyncio.ensure_future(self._open(c, timeout)) for c in conns]
        while True:
            done = sum(t.done() for t in tasks)
            # Counted from the sockets, not from the finished tasks: a hello arrives before its task ends.
            ok = sum(c.hello_at is not None for c in conns)
            failed = sum(c.failure is not None for c in conns)
            self.progress.update(
                f"{label} {self.name}: {ok}/{len(conns)} hello, {failed} failed, {perf() - t0:.1f} s"
            )
            if done == len(tasks):
                break
            await asyncio.sleep(0.1)
        wall = perf() - t0
        failures = Counter(c.failure for c in conns if c.failure)
        helloed = [c for c in conns if c.hello_at is not None and c.failure is None]
        last = max((c.hello_at for c in helloed), default=t0)
        return {
            "sockets": len(conns),
            "connected": len(helloed),
            "errors": sum(failures.values()),
            "error_kinds": dict(failures),
            "all_hello_s": round(last - t0, 3) if len(helloed) == len(conns) else None,
            "last_hello_s": round(last - t0, 3),
            "hello_ms": summarize([(c.hello_at - c.started_at) * 1000 for c in helloed]),
            "client_cpu": round((cpu_seconds() - cpu0) / wall, 2) if wall else None,
        }

    async def close(self) -> float:
        """Close every socket (closing handshake); returns the seconds it took."""
        t0 = perf()

        async def close_one(conn: Conn) -> None:
            if conn.ws is not None:
                with contextlib.suppress(Exception):  # already gone
                    await conn.ws.close()
            if conn.reader is not None:
                await conn.reader

        await asyncio.gather(*(close_one(c) for c in self.conns))
        self.conns = []
        return perf() - t0

    def open_conns(self) -> list[Conn]:
        return [c for c in self.conns if c.open]

    def teams(self) -> list[list[Conn]]:
        """Open sockets grouped by team, in team order."""
        by_team: dict[int, list[Conn]] = {}
        for conn in self.open_conns():
            by_team.setdefault(conn.player.team, []).append(conn)
        return [by_team[t] for t in sorted(by_team)]

    # Traffic --------------------------------------------------------------------------------------

    def reset_counters(self) -> None:
        self.flights, self.open_flights = {}, 0
        self.frames, self.errors, self.created = Counter(), Counter(), Counter()
        self.error_messages = {}
        self.stray = self.duplicates = 0

    def _launch(self, key: str, expected: frozenset[int]) -> Flight:
        flight = Flight(perf(), expected)
        self.flights[key] = flight
        self.open_flights += 1
        return flight

    async def _drain(self, deadline: float, label: str, *, stall: float | None = None) -> None:
        """Wait until every flight is done, or until `deadline`, or (with `stall`) until none has been done
        for `stall` seconds."""
        left, progressed = self.open_flights, perf()
        while self.open_flights > 0 and perf() < deadline:
            if self.open_flights != left:
                left, progressed = self.open_flights, perf()
            elif stall is not None and perf() - progressed >= stall:
                return
            self.progress.update(f"{label} {self.name}: waiting for {self.open_flights} deliveries")
            await asyncio.sleep(0.02)

    def _delivery(self) -> dict:
        flights = list(self.flights.values())
        done = [f for f in flights if f.done_at is not None]
        return {
            "sent": len(flights),
            "delivered": len(done),
            "undelivered": len(flights) - len(done),
            "deliveries_expected": sum(len(f.expected) for f in flights),
            "deliveries_seen": sum(len(f.seen) for f in flights),
            "duplicates": self.duplicates,
            "stray": self.stray,
            "latency_ms": summarize([(f.done_at - f.sent_at) * 1000 for f in done]),
        }

    async def guesses(
        self,
        *,
        rate: float,
        duration: float,
        frame_for: Callable[[int, str, bool], str],
        label: str = "",
        drain: float = 10.0,
    ) -> dict:
        """Send `rate` guesses a second for `duration` seconds, open-loop; each must reach its whole team.

        `frame_for(team, client_id, settled)` returns the guess.submit frame; `settled` is whether every
        earlier guess of the team has its answer (guess.accepted or an error). Latency runs from the moment
        the frame is handed to the socket to the arrival of the last copy of its guess.judged at the team's
        sockets.

        After the last send it waits for the guesses in the air as long as they keep reaching their teams:
        until `drain` seconds pass with none done (or DRAIN_MAX in all). A server behind the rate delivers
        late, and its late guesses count with their latency; "undelivered" are the guesses that stopped
        arriving, not the slow ones.
        """
        with collector_paused():
            return await self._guesses(rate, duration, frame_for, label, drain)

    async def _guesses(self, rate, duration, frame_for, label, drain) -> dict:
        self.reset_counters()
        teams = self.teams()
        total = int(rate * duration)
        cpu0, t0 = cpu_seconds(), perf() + 0.05
        epoch0 = time.time() + (t0 - perf())  # the timeline's zero in Unix time, to line it up with logs
        late = 0.0
        run = f"{random.getrandbits(32):08x}"
        unanswered: dict[int, list[Flight]] = {}  # team -> its guesses sent and not yet answered
        for i in range(total):
            target = t0 + i / rate
            delay = target - perf()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                late = max(late, -delay)
                if i % 20 == 0:
                    await asyncio.sleep(0)  # let the readers run
            team = teams[i % len(teams)]
            sender = team[(i // len(teams)) % len(team)]
            client_id = f"{run}-{i}"
            now = perf()  # a guess unanswered for a minute is lost (its socket closed): stop waiting for it
            waiting = [
                f for f in unanswered.get(sender.player.team, ()) if not f.answered and now - f.sent_at < 60
            ]
            frame = frame_for(sender.player.team, client_id, not waiting)
            waiting.append(self._launch(client_id, frozenset(c.index for c in team if c.open)))
            unanswered[sender.player.team] = waiting
            await sender.ws.send(frame)
            if i % 50 == 0:
                self.progress.update(
                    f"{label} {self.name}: {rate:g}/s {i}/{total} sent, {self.open_flights} in the air"
                )
        sent_for = perf() - t0
        await self._drain(perf() + max(drain, DRAIN_MAX), label, stall=drain)
        wall = perf() - t0
        result = self._delivery()
        done = [f for f in self.flights.values() if f.done_at is not None]
        # Throughput: guesses done per second from the first send to the last send or the last done,
        # whichever came later (a server behind the rate finishes after the sending stopped).
        finished = max(sent_for, max((f.done_at for f in done), default=t0) - t0)
        accepted = [(f.accepted_at - f.sent_at) * 1000 for f in self.flights.values() if f.accepted_at]
        result.update(
            rate=rate,
            duration_s=round(sent_for, 2),
            delivered_per_s=round(len(done) / finished, 1) if sent_for else None,
            scheduler_late_max_ms=round(late * 1000, 1),
            accepted_ms=summarize(accepted),
            created=dict(self.created),
            error_frames=dict(self.errors),
            error_messages=dict(self.error_messages),
            frames=dict(self.frames),
            client_cpu=round((cpu_seconds() - cpu0) / wall, 2),
            # Every guess: seconds since the first was sent (at `started_at`, Unix time), latency in ms (None:
            # not delivered).
            started_at=round(epoch0, 3),
            timeline=[
                (round(f.sent_at - t0, 3), round((f.done_at - f.sent_at) * 1000, 1) if f.done_at else None)
                for f in self.flights.values()
            ],
        )
        return result

    async def announcement(
        self, post: Callable[[str], Awaitable[float | None]], *, timeout: float = 30, label: str = ""
    ) -> dict:
        """Post one announcement through `post(text)` and time it until every open socket has it."""
        self.reset_counters()
        expected = frozenset(c.index for c in self.open_conns())
        text = f"bench announcement {random.getrandbits(48):012x}"
        flight = self._launch(text, expected)
        with collector_paused():
            post_ms = await post(text)
            await self._drain(perf() + timeout, label)
        return {
            "sockets": len(expected),
            "reached": len(flight.seen),
            "all_s": round(flight.done_at - flight.sent_at, 3) if flight.done_at else None,
            "post_ms": post_ms,
        }

    async def pinger(self, interval: float) -> None:
        """Like a browser: every open socket pings once per `interval` seconds (spread evenly)."""
        frame = json.dumps({"type": "ping"})
        for i in itertools.count():
            conns = self.conns
            if not conns:
                await asyncio.sleep(0.5)
                continue
            await asyncio.sleep(interval / len(conns))
            conn = conns[i % len(conns)]
            if conn.open:
                with contextlib.suppress(ConnectionClosed):
                    await conn.ws.send(frame)


# --- Guesses the app's judge will see ---------------------------------------------------------------


class GuessMaker:
    """Guess frames for the app's puzzles in the given mix of wrong, partial and correct answers.

    Each team works through the exact puzzles in order: a partial answer is each "STEP k" once per puzzle,
    a correct one moves the team to the next puzzle, a wrong one is never repeated (no dedupe hits). With
    `judged_share`, that share of guesses goes to the numeric puzzles judged by the Celery worker.

    A correct answer goes out only when every earlier guess of the team has its answer (`settled`); until
    then a wrong one goes in its place (counted in `held_back`). Each socket's frames are handled in
    order, but a team's sockets side by side: under overload a teammate's wrong guess on the puzzle,
    sent earlier but waiting behind that socket's own backlog, would reach the server after the solve
    and be refused as "Already solved", as it would be for real players.
    """

    def __init__(self, hunt: dict, *, mix: dict[str, float], judged_share: float = 0.0, seed: int = 1):
        self.puzzles, self.judged = hunt["puzzles"], hunt["judged_puzzles"]
        self.partials = hunt["partials"]
        self.kinds, self.weights = zip(*mix.items(), strict=True)
        self.judged_share = judged_share
        self.random = random.Random(seed)
        self.position: dict[int, int] = {}  # team -> index of its current puzzle
        self.steps: dict[int, int] = {}  # team -> partial answers used on its current puzzle
        self.count = itertools.count()
        self.kinds_sent: Counter[str] = Counter()
        self.held_back = 0

    def __call__(self, team: int, client_id: str, settled: bool = True) -> str:
        n = next(self.count)
        if self.judged and self.random.random() < self.judged_share:
            puzzle, answer, kind = self.judged[n % len(self.judged)], f"{1000 + n}", "judged"
        else:
            index = self.position.get(team, 0)
            if index >= len(self.puzzles):
                raise RuntimeError("a team solved every bench puzzle: create the hunt with more --puzzles")
            puzzle = self.puzzles[index]
            kind = self.random.choices(self.kinds, self.weights)[0]
            if kind == "partial" and self.steps.get(team, 0) >= self.partials:
                kind = "wrong"
            if kind == "correct" and not settled:
                kind, self.held_back = "wrong", self.held_back + 1
            if kind == "correct":
                answer = f"ANSWER {puzzle[1:]}"
                self.position[team], self.steps[team] = index + 1, 0
            elif kind == "partial":
                self.steps[team] = self.steps.get(team, 0) + 1
                answer = f"STEP {self.steps[team]}"
            else:
                answer = f"wrong {n}"
        self.kinds_sent[kind] += 1
        return json.dumps({"type": "guess.submit", "puzzle": puzzle, "answer": answer, "id": client_id})


def bare_guess(team: int, client_id: str, settled: bool = True) -> str:
    return json.dumps({"type": "guess.submit", "puzzle": "p0", "answer": "wrong", "id": client_id})


# --- HTTP -------------------------------------------------------------------------------------------


async def http_load(
    *,
    base: str,
    request_for: Callable[[int], tuple[str, dict, dict]],
    concurrency: int,
    duration: float,
    progress: Progress,
    label: str = "",
) -> dict:
    """`concurrency` keep-alive clients POST back to back for `duration` seconds; returns requests/s."""
    statuses: Counter[int] = Counter()
    failures: Counter[str] = Counter()
    latencies: list[float] = []
    counter = itertools.count()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30, trust_env=False) as client:
        cpu0, t0 = cpu_seconds(), perf()
        deadline = t0 + duration

        async def worker() -> None:
            while perf() < deadline:
                path, headers, body = request_for(next(counter))
                started = perf()
                try:
                    response = await client.post(path, headers=headers, json=body)
                except httpx.HTTPError as exc:
                    failures[type(exc).__name__] += 1
                    continue
                latencies.append((perf() - started) * 1000)
                statuses[response.status_code] += 1

        async def report() -> None:
            while perf() < deadline:
                progress.update(f"{label}: {sum(statuses.values())} requests, {perf() - t0:.1f} s")
                await asyncio.sleep(0.2)

        reporter = asyncio.ensure_future(report())
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        reporter.cancel()
        wall = perf() - t0
    ok = sum(n for code, n in statuses.items() if 200 <= code < 300)
    return {
        "concurrency": concurrency,
        "duration_s": round(wall, 2),
        "requests": sum(statuses.values()),
        "ok": ok,
        "per_s": round(ok / wall, 1),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "failures": dict(failures),
        "latency_ms": summarize(latencies),
        "client_cpu": round((cpu_seconds() - cpu0) / wall, 2),
    }
