"""Pongs in batches: the pings a process receives within 50 ms share one thread hop and one Redis trip.

A ping reads its streams' heads from the cache and keeps its connection's presence key alive (DESIGN
section 7; hunts/presence.py). With thousands of sockets pinging every 10 s, a thread hop and two cache
calls per ping cost more CPU than everything else an idle socket does. Here each event loop has one
batcher: a ping joins the queue, and the queue goes when PING_BATCH pings wait or PING_WINDOW seconds after
the first, whichever is sooner, as one pipeline (an MGET of the distinct heads and an EXPIRE per connection
key) in one thread hop; then each ping's future gets its heads. A connection key found missing (a flushed
cache) and the team's periodic presence check run in the same hop, after the pipeline.

A failed batch (Redis down) fails each of its pings as a lone ping failed before: the consumer answers it
with a `server_error` frame and the socket stays open. With a cache other than Redis (the embedded
default's LocMemCache) each ping takes the plain path: one hop, Django's cache API.
"""

import asyncio
import logging
import weakref
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.core.cache import cache

from treasurehunt.cache import redis_cache

from . import presence
from .events import head_key

log = logging.getLogger(__name__)

PING_BATCH = 100
# Seconds a batch waits for more pings after its first. 2,000 sockets pinging every 10 s send 200 pings a
# second, spread out: a 5 ms window gathered one or two, so nearly every ping still cost a hop and a round
# trip (daphne 26-29% of a core for the pings alone, against 15-16% with 50 ms; BENCHMARKS.md, fix 26).
# A pong 50 ms later changes nothing for a client that pings every 10 s.
PING_WINDOW = 0.05


@dataclass(slots=True)
class Ping:
    hunt_id: int
    team_id: int | None
    conn: str
    username: str
    future: asyncio.Future | None = None


async def cached_heads(*, hunt_id: int, team_id: int | None, conn: str, username: str) -> dict:
    """The heads the publisher cached (unknown: null), never the database; also keeps presence alive."""
    ping = Ping(hunt_id, team_id, conn, username)
    if redis_cache() is None:
        return await sync_to_async(_serve_one, thread_sensitive=False)(ping)
    loop = asyncio.get_running_loop()
    ping.future = loop.create_future()
    Batcher.of(loop).add(ping)
    return await ping.future


def _serve_one(ping: Ping) -> dict:
    keys = _head_keys(ping)
    found = cache.get_many([k for k in keys if k])
    if ping.team_id is not None:
        presence.refresh(team_id=ping.team_id, conn=ping.conn, username=ping.username)
    return _pong(keys, found)


def _head_keys(ping: Ping) -> tuple[str | None, str]:
    team_key = head_key("team", ping.team_id) if ping.team_id is not None else None
    return team_key, head_key("hunt", ping.hunt_id)


def _pong(keys: tuple[str | None, str], found: dict) -> dict:
    team_key, hunt_key = keys
    return {"team_seq": found.get(team_key) if team_key else None, "hunt_seq": found.get(hunt_key)}


class Batcher:
    """The queue of one event loop's pings; used on that loop only."""

    _by_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # loop -> its batcher

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> "Batcher":
        batcher = cls._by_loop.get(loop)
        if batcher is None:
            batcher = cls._by_loop[loop] = cls(loop)
        return batcher

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.queue: list[Ping] = []
        self.timer: asyncio.TimerHandle | None = None
        self.tasks: set[asyncio.Task] = set()  # batches in flight, referenced until done

    def add(self, ping: Ping) -> None:
        self.queue.append(ping)
        if len(self.queue) >= PING_BATCH:
            self.flush()
        elif self.timer is None:
            self.timer = self.loop.call_later(PING_WINDOW, self.flush)

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        batch, self.queue = self.queue, []
        if batch:
            task = self.loop.create_task(self.serve(batch))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def serve(self, batch: list[Ping]) -> None:
        try:
            pongs = await sync_to_async(serve_batch, thread_sensitive=False)(batch)
        except Exception as exc:  # the consumer logs each ping's failure
            for ping in batch:
                if not ping.future.done():  # a socket closed meanwhile cancelled its future
                    ping.future.set_exception(exc)
            return
        for ping, pong in zip(batch, pongs, strict=True):
            if not ping.future.done():
                ping.future.set_result(pong)


def serve_batch(batch: list[Ping]) -> list[dict]:
    """One pipeline for the batch's heads and connection keys, then presence repairs and checks when due."""
    backend = redis_cache()
    key = backend.make_and_validate_key
    keys = [_head_keys(ping) for ping in batch]
    heads = list({k for pair in keys for k in pair if k})
    conns = [ping for ping in batch if ping.team_id is not None]
    pipeline = backend.client().pipeline(transaction=False)
    pipeline.mget([key(k) for k in heads])
    for ping in conns:
        pipeline.expire(key(presence.conn_key(ping.conn)), presence.PRESENCE_TTL)
    values, *touched = pipeline.execute()
    found = {k: backend.loads(v) for k, v in zip(heads, values, strict=True) if v is not None}
    for ping, alive in zip(conns, touched, strict=True):
        try:
            presence.refresh(team_id=ping.team_id, conn=ping.conn, username=ping.username, alive=bool(alive))
        except Exception:
            # The pong stands: presence is repaired by a later ping or check.
            log.exception("presence refresh failed for team %s", ping.team_id)
    return [_pong(pair, found) for pair in keys]
