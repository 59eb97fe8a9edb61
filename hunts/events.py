"""The event log: append under row locks, publish after commit. The only module that knows group names."""

import asyncio
import json
import logging
import os
import threading
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterable

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.core.cache import cache
from django.db import transaction

from treasurehunt import hotsql
from treasurehunt.cache import redis_cache
from treasurehunt.layers import PubSubChannelLayer

from .models import Event, Hunt, Team

log = logging.getLogger(__name__)

MAX_REPLAY = 500


def team_group(team_id: int) -> str:
    return f"team.{team_id}"


def hunt_group(hunt_id: int) -> str:
    return f"hunt.{hunt_id}"


def staff_group(hunt_id: int) -> str:
    return f"staff.{hunt_id}"


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def head_key(stream: str, stream_id: int) -> str:
    return f"seq:{stream}:{stream_id}"


def iso(dt) -> str:
    """UTC timestamps as clients expect them: ...Z, millisecond precision."""
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def frame_of(event: Event) -> dict:
    return {
        "type": event.kind,
        "stream": event.stream,
        "seq": event.seq,
        "at": iso(event.created_at),
        "data": event.data,
    }


def after_commit(fn: Callable[[], None]) -> None:
    """Run fn once the surrounding transaction commits; a failure is logged, never raised to the caller."""
    transaction.on_commit(fn, robust=True)


class EventLog:
    """Events of one transaction: seqs taken under the caller's row locks, one INSERT, pushed on commit.

    The caller holds the lock of every Team (and, for hunt events, the Hunt) it passes in, fetched in
    this transaction, so `event_seq` read from the instance is the current head.
    """

    def __init__(self, hunt: Hunt):
        self.hunt = hunt
        self.events: list[Event] = []
        self.staff_frames: list[tuple[Event, dict]] = []
        self._teams: dict[int, Team] = {}
        self._team_fields: dict[int, set[str]] = {}
        self._after_flush: list[Callable[[], None]] = []
        self._hunt_touched = False
        self._rows: list = []

    def insert_first(self, row) -> None:
        """Write this new row (its id taken ahead, hotsql.next_id) at flush, with the events: in their
        statement on PostgreSQL (a guess and its verdict in one round trip), else just before it."""
        self._rows.append(row)

    def after_flush(self, fn: Callable[[], None]) -> None:
        """Call fn at flush, after the push is registered: on-commit work fn registers (a task) runs after it.

        An eager task commits (and pushes) inside its on-commit callback, so enqueued first it would push
        later events before earlier ones.
        """
        self._after_flush.append(fn)

    def save_team(self, team: Team, *fields: str) -> None:
        """Write these fields of the (locked) team at flush, in the same UPDATE as its new event head."""
        self._teams[team.pk] = team
        self._team_fields.setdefault(team.pk, set()).update(fields)

    def team(self, team: Team, kind: str, data: dict, *, staff: bool = False) -> Event:
        """Append to the team stream; `staff` also shows the frame on the hunt's staff stream."""
        team.event_seq += 1
        self._teams[team.pk] = team
        event = Event(hunt_id=self.hunt.pk, team=team, seq=team.event_seq, kind=kind, data=data)
        self.events.append(event)
        if staff:
            self.staff_frames.append((event, {"slug": team.slug, "name": team.name}))
        return event

    def hunt_wide(self, kind: str, data: dict) -> Event:
        self.hunt.event_seq += 1
        self._hunt_touched = True
        event = Event(hunt_id=self.hunt.pk, team=None, seq=self.hunt.event_seq, kind=kind, data=data)
        self.events.append(event)
        return event

    def flush(self) -> list[Event]:
        """Write the events, the new heads and the saved team fields; push the events after commit."""
        # Written out (treasurehunt/hotsql.py): every guess flushes here.
        updates = [
            (team, sorted({"event_seq", *self._team_fields.get(team.pk, ())}))
            for team in self._teams.values()
        ]
        if self._hunt_touched:
            updates.append((self.hunt, ["event_seq"]))
        hotsql.insert_and_update(self.events, updates, rows=self._rows)  # one statement on PostgreSQL
        events, staff = self.events, self.staff_frames
        if events:
            hunt_id = self.hunt.pk
            after_commit(lambda: publish(hunt_id, events, staff))
        then = self._after_flush
        self.events, self.staff_frames, self._teams, self._team_fields = [], [], {}, {}
        self._after_flush, self._hunt_touched, self._rows = [], False, []
        for fn in then:
            fn()
        return events


def publish(hunt_id: int, events: Iterable[Event], staff: Iterable[tuple[Event, dict]] = ()) -> None:
    """Push committed events to their groups and record the new heads; a failure is only logged."""
    messages: list[tuple[str, dict]] = []
    heads: dict[str, int] = {}
    for event in events:
        frame = frame_of(event)
        if event.team_id:
            group = team_group(event.team_id)
            heads[head_key("team", event.team_id)] = event.seq
        else:
            group = hunt_group(hunt_id)
            heads[head_key("hunt", hunt_id)] = event.seq
        messages.append((group, frame))
    for event, team in staff:
        messages.append((staff_group(hunt_id), {**frame_of(event), "stream": "staff", "team": team}))
    if not _publish_with_heads(heads, messages):
        record_heads(heads)
        send_frames(messages)


def _publish_with_heads(heads: dict[str, int], messages: list[tuple[str, dict]]) -> bool:
    """Record the heads and publish the frames in one pipeline from this thread, where the cache's Redis is
    also the channel layer's server (as settings configure them): one round trip, heads first, and no
    hop to an event loop. False elsewhere (another server, the embedded default): the caller takes the
    long way. A failure is only logged, as there: clients recover what they missed through resume.

    Two transactions of one team commit in lock order but publish from their own threads, so their
    frames may, rarely, reach Redis in the other order; a client that sees a seq beyond the next one
    resumes from the one it holds (static/js/live.js), as for a lost frame.
    """
    try:
        rc, layer = redis_cache(), get_channel_layer()
        if rc is None or not isinstance(layer, PubSubChannelLayer) or not layer.publishes_on(rc.server):
            return False
    except Exception:
        log.exception("could not tell how to publish %d frames", len(messages))
        return False
    try:
        payloads = layer.group_payloads([(group, envelope(frame)) for group, frame in messages])

        def queue(pipeline):
            for channel, data in payloads:
                pipeline.publish(channel, data)

        _, results = rc.after_heads(heads, queue)
        failed = [result for result in results if isinstance(result, Exception)]
        if failed:
            log.error("could not publish %d of %d frames: %s", len(failed), len(messages), failed[0])
    except Exception:
        log.exception("could not publish %d frames", len(messages))
    return True


def read_heads(*, hunt: Hunt, team: Team | None) -> tuple[int | None, int]:
    """(team_seq, hunt_seq) from the database, one statement; team_seq None without a team."""
    t, c = hotsql.table, hotsql.col
    if team is None:
        sql = f"SELECT {c(Hunt, 'event_seq')} FROM {t(Hunt)} WHERE {c(Hunt, 'id')} = %s"
        return None, hotsql.fetch_one(sql, [hunt.pk])[0]
    sql = (
        f"SELECT t.{c(Team, 'event_seq')}, h.{c(Hunt, 'event_seq')} FROM {t(Team)} t INNER JOIN {t(Hunt)} h "
        f"ON h.{c(Hunt, 'id')} = t.{c(Team, 'hunt')} WHERE t.{c(Team, 'id')} = %s"
    )
    team_seq, hunt_seq = hotsql.fetch_one(sql, [team.pk])
    return team_seq, hunt_seq


def record_heads(heads: dict[str, int]) -> dict[str, int] | None:
    """Raise the cached heads (a cached head only ever rises); returns them as cached after it, each the
    higher of the cached and the given, or None when the cache could not record them (logged)."""
    if not heads:
        return {}
    try:
        raise_many = getattr(cache, "raise_many", None)  # treasurehunt.cache.RedisCache: atomic, one trip
        if raise_many is not None:
            return raise_many(heads)
        current = cache.get_many(list(heads))
        rising = {k: v for k, v in heads.items() if current.get(k) is None or current[k] < v}
        if rising:
            cache.set_many(rising, timeout=None)
        return {k: max(v, current.get(k) or v) for k, v in heads.items()}
    except Exception:
        log.exception("could not record event heads")
        return None


PUBLISH_TIMEOUT_SECONDS = 5


def send_frames(messages: list[tuple[str, dict]]) -> None:
    """Send frames to groups; lost pushes are recovered by clients through resume.

    In daphne (sync code running for its event loop) the frames go to that loop's publisher, which sends
    them in order while this thread moves on. Elsewhere (Celery workers, commands) this waits until they
    are sent. Logged events, which carry seqs, usually go another way (publish: one pipeline with their
    heads, from the committing thread); what comes here is ephemeral (presence, the leaderboard).
    """
    if not messages:
        return
    try:
        layer = get_channel_layer()
        if layer is None:
            return
        loop = _serving_event_loop()
        if isinstance(layer, InMemoryChannelLayer):
            async_to_sync(_send_all)(layer, messages)
        elif loop is not None:
            LoopPublisher.of(loop).submit(layer, messages)
        else:
            future = asyncio.run_coroutine_threadsafe(_send_all(layer, messages), _publisher_loop())
            try:
                future.result(timeout=PUBLISH_TIMEOUT_SECONDS)
            except TimeoutError:
                future.cancel()
                raise
    except Exception:
        log.exception("could not publish %d frames", len(messages))


# Frames that no client orders against any other (no seq, nothing ends with them): a layer may hand them
# straight to each socket instead of through its consumer (`direct`, treasurehunt/layers.py).
DIRECT_KINDS = frozenset({"leaderboard.updated"})


def envelope(frame: dict) -> dict:
    """The channel-layer message of a frame: its JSON text, encoded once here instead of once per socket."""
    kind = frame.get("type")
    message = {"type": "event.forward", "kind": kind, "text": json.dumps(frame)}
    if kind in DIRECT_KINDS:
        message["direct"] = True
    return message


# Frames that carry a whole state (the team's online list, the top 10): a later one of the same kind to
# the same group makes an earlier one moot, so of those waiting to be published together only the last
# goes (`latest_only`, fix 57).
WHOLE_STATE_KINDS = frozenset({"presence", "leaderboard.updated"})


def latest_only(messages: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """The messages without the whole-state frames that a later one of the same kind to the same group
    makes moot; the rest, and the last of each such kind and group, keep their order."""
    last: dict[tuple[str, str], int] = {}
    whole = 0
    for i, (group, frame) in enumerate(messages):
        if (kind := frame.get("type")) in WHOLE_STATE_KINDS:
            last[group, kind] = i
            whole += 1
    if whole == len(last):
        return messages
    return [
        (group, frame)
        for i, (group, frame) in enumerate(messages)
        if frame.get("type") not in WHOLE_STATE_KINDS or last[group, frame["type"]] == i
    ]


async def _send_all(layer, messages: list[tuple[str, dict]]) -> None:
    many = getattr(layer, "group_send_many", None)
    if many is not None:
        await many([(group, envelope(frame)) for group, frame in messages])
        return
    for group, frame in messages:
        await layer.group_send(group, envelope(frame))


def _serving_event_loop() -> asyncio.AbstractEventLoop | None:
    """The live event loop (daphne's) this thread runs sync code for, if any: publish on its connection."""
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    pid = getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None)
    return loop if loop is not None and pid == os.getpid() and loop.is_running() else None


class LoopPublisher:
    """Sends the batches handed over by sync code, on the event loop, one at a time in the order given.

    One per loop: a single sender keeps the frames of the batches handed to it in order. Waiting batches
    go out merged, up
    to MAX_BATCH frames per round trip; a round trip that fails or takes longer than
    PUBLISH_TIMEOUT_SECONDS is logged and its frames dropped (clients recover through resume); past
    MAX_PENDING waiting batches (Redis gone), new ones are dropped the same way instead of piling up.
    Of the whole-state frames waiting together (WHOLE_STATE_KINDS), only the last of each kind and group
    goes: in a burst of connects each of a team's sockets changed its online list (fix 57).
    """

    MAX_PENDING = 10_000
    MAX_BATCH = 500  # frames per round trip
    _lock = threading.Lock()
    _by_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # loop -> its publisher

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> "LoopPublisher":
        with cls._lock:
            if loop not in cls._by_loop:
                cls._by_loop[loop] = cls(loop)
            return cls._by_loop[loop]

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop_ref = weakref.ref(loop)  # a closed loop and its publisher can go
        self.batches: deque[tuple[object, list[tuple[str, dict]]]] = deque()
        self.task: asyncio.Task | None = None

    def submit(self, layer, messages: list[tuple[str, dict]]) -> None:
        """From any thread."""
        self.loop_ref().call_soon_threadsafe(self._add, layer, messages)

    def _add(self, layer, messages: list[tuple[str, dict]]) -> None:
        if len(self.batches) >= self.MAX_PENDING:
            log.error("publisher backlog full: dropped %d frames", len(messages))
            return
        self.batches.append((layer, messages))
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self.batches:
                # Everything waiting for the same layer goes at once, in order (one pipeline where the
                # layer can: treasurehunt.layers); thousands of sockets connecting at once each publish
                # a presence frame, and one round trip each would queue later frames behind them.
                layer, messages = self.batches.popleft()
                messages = list(messages)
                while self.batches and self.batches[0][0] is layer and len(messages) < self.MAX_BATCH:
                    messages.extend(self.batches.popleft()[1])
                try:
                    async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
                        await _send_all(layer, latest_only(messages))
                except Exception:
                    log.exception("could not publish %d frames", len(messages))
        finally:
            self.task = None


_publisher_lock = threading.Lock()
_publisher: tuple[int, asyncio.AbstractEventLoop] | None = None


def _publisher_loop() -> asyncio.AbstractEventLoop:
    """This process's publishing loop, for callers outside any event loop (Celery workers, commands).

    async_to_sync there would run each call in a new event loop, and the Redis layer opens (and closes) a
    connection per loop: one new connection per transaction. One loop thread per process keeps one.
    Started on first use, and again in a forked child (a Celery prefork worker).
    """
    global _publisher
    with _publisher_lock:
        if _publisher is None or _publisher[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="event-publisher", daemon=True).start()
            _publisher = (os.getpid(), loop)
        return _publisher[1]


def send_ephemeral(*, group: str, frame: dict) -> None:
    """Push a frame that is not logged (presence, leaderboard.updated, session.ended)."""
    send_frames([(group, frame)])


def end_user_sessions(user_id: int) -> None:
    """After commit: every open socket of the user gets `session.ended` and closes with 4401.

    Called on logout and whenever the user's API token is regenerated or revoked.
    """
    after_commit(lambda: send_ephemeral(group=user_group(user_id), frame={"type": "session.ended"}))


def leaderboard_version_key(hunt_id: int) -> str:
    return f"lb:version:{hunt_id}"


def leaderboard_key(hunt_id: int) -> str:
    """The cache key of the hunt's current board; read it before computing the board.

    Every committed score change moves it to a new version, so a board computed from rows read before
    that commit is stored under the old key and never served (a plain delete would race such a reader).
    """
    version_key = leaderboard_version_key(hunt_id)
    version = cache.get(version_key)
    if version is None:
        cache.add(version_key, uuid.uuid4().hex, None)
        version = cache.get(version_key)
    return f"lb:{hunt_id}:{version}"


def leaderboard_dirty_key(hunt_id: int) -> str:
    return f"lb:dirty:{hunt_id}"


def mark_leaderboard_dirty(hunt_id: int) -> None:
    """After commit: move to a new board version and flag the hunt for the clock's coalesced push."""

    def mark():
        cache.set_many(
            {leaderboard_version_key(hunt_id): uuid.uuid4().hex, leaderboard_dirty_key(hunt_id): 1}, None
        )

    after_commit(mark)


def replay(*, hunt: Hunt, team: Team | None, stream: str, after: int, limit: int = MAX_REPLAY) -> list[dict]:
    """Logged frames of one stream with seq > after, in order, at most `limit`."""
    qs = (
        Event.objects.filter(team=team)
        if stream == "team"
        else Event.objects.filter(hunt=hunt, team__isnull=True)
    )
    return [frame_of(e) for e in qs.filter(seq__gt=after).order_by("seq")[:limit]]
