"""The live stream of one hunt (DESIGN section 7): hello, pushed frames, resume, guesses and ping."""

import asyncio
import functools
import itertools
import json
import logging
import time

from asgiref.sync import sync_to_async
from autobahn.exception import Disconnected
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from puzzles.services import guess_data, submit_guess
from treasurehunt import lanes

from . import pings, presence
from .errors import Conflict, NotFound, RateLimited
from .events import (
    MAX_REPLAY,
    head_key,
    hunt_group,
    iso,
    read_heads,
    record_heads,
    replay,
    staff_group,
    team_group,
    user_group,
)
from .services import may_follow, stream_access, team_required

log = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_FLOODING = 4429

JOIN_TIMEOUT = 30.0  # seconds a connect waits for the loop to join its groups
MAX_FRAME_BYTES = 16 * 1024
FLOOD_RATE = 20.0  # frames per second, sustained
FLOOD_BURST = 40

SERVICE_ERRORS = (ValidationError, PermissionDenied, NotFound, Conflict, RateLimited)


class FrameError(Exception):
    """A client frame answered with an error frame; the socket stays open."""

    def __init__(self, code: str, message: str, *, retry_after: int | None = None):
        super().__init__(message)
        self.code, self.message, self.retry_after = code, message, retry_after

    def frame(self, frame_id: str | None) -> dict:
        error = {"type": "error", "code": self.code, "message": self.message}
        if frame_id is not None:
            error["id"] = frame_id
        if self.retry_after is not None:
            error["retry_after"] = self.retry_after
        return error


def service_error(exc: Exception) -> FrameError:
    """The error frame of a broken rule raised by a service (DESIGN section 3)."""
    if isinstance(exc, ValidationError):
        return FrameError("invalid", " ".join(exc.messages))
    if isinstance(exc, PermissionDenied):
        return FrameError("forbidden", str(exc) or "You may not do that.")
    if isinstance(exc, NotFound):
        return FrameError("not_found", exc.message)
    if isinstance(exc, Conflict):
        return FrameError("conflict", exc.message)
    if isinstance(exc, RateLimited):
        return FrameError("rate_limited", exc.message, retry_after=exc.retry_after)
    raise TypeError(f"not a service error: {exc!r}")


class TokenBucket:
    """`rate` frames per second sustained, bursts up to `burst`."""

    def __init__(self, *, rate: float, burst: int):
        self.rate, self.burst = rate, burst
        self.tokens, self.at = float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def _frame_size(text: str) -> int:
    # A character takes at most 4 bytes: most frames are sized without encoding them.
    if len(text) * 4 <= MAX_FRAME_BYTES:
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


YIELD_EVERY = 16  # messages a source dispatches back to back before it lets the loop run others


async def dispatch_loop(sources, dispatch) -> None:
    """Dispatch the messages of every source, one at a time, until a dispatch raises (StopConsumer included).

    Channels' own loop (await_many_dispatch) makes a new task and an asyncio.wait for every message; for a
    frame pushed to thousands of sockets that was the largest cost left in daphne after the write itself
    (BENCHMARKS.md, "Fixes"). Here each source has one task for the socket's life, reading and then
    dispatching under a lock, so messages are still handled one at a time and in order per source.
    """
    lock, stopped = asyncio.Lock(), False

    async def pump(receive):
        nonlocal stopped
        for n in itertools.count(1):
            message = await receive()
            async with lock:
                if stopped:  # another source's dispatch ended the consumer while this one waited
                    return
                try:
                    await dispatch(message)
                except BaseException:
                    stopped = True
                    raise
            if n % YIELD_EVERY == 0:  # a backlog must not hold the loop: let other sockets run
                await asyncio.sleep(0)

    tasks = [asyncio.ensure_future(pump(receive)) for receive in sources]
    try:
        # A pump ends only by raising (a cancelled dispatch included) or, after another pump raised, by
        # returning: the first to end ends the loop.
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def in_pool(method=None, *, lane: int = lanes.URGENT):
    """Run the consumer's database work in the stream pool's threads, not the one thread the process shares.

    database_sync_to_async defaults to the thread every thread-sensitive call of the process shares, so
    one socket's connect or guess waited for every other socket's: with thousands of sockets the guesses
    and the hellos of a connect storm queued there. A consumer handles its own frames one at a time, and
    the services lock the rows they change, so these calls may run side by side (each with its own
    pooled connection; DB_POOL_MAX >= the pool's threads). The pool serves a lane at a time, the most
    urgent first (treasurehunt/lanes.py): a guess or a resume does not queue behind a storm's connects.
    """
    if method is None:
        return functools.partial(in_pool, lane=lane)
    return database_sync_to_async(method, thread_sensitive=False, executor=lanes.stream_lane(lane))


class HuntConsumer(AsyncJsonWebsocketConsumer):
    """One socket of a player or staff member on one hunt, at /ws/hunts/<hunt>/."""

    HANDLERS = {"resume": "on_resume", "guess.submit": "on_guess_submit", "ping": "on_ping"}
    closing = direct_sent = False  # set again by connect()

    async def __call__(self, scope, receive, send):
        # AsyncConsumer.__call__ with dispatch_loop in place of channels' await_many_dispatch.
        self.scope, self.base_send = scope, send
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        sources = [receive]
        if self.channel_layer is not None:
            # Only groups reach this consumer: on the Redis layer its channel needs no subscription.
            new_channel = getattr(self.channel_layer, "new_local_channel", self.channel_layer.new_channel)
            self.channel_name = await new_channel()
            sources.append(functools.partial(self.channel_layer.receive, self.channel_name))
        try:
            await dispatch_loop(sources, self.dispatch)
        except StopConsumer:
            pass
        finally:
            # A source cancelled while it dispatched never saw its cancellation: the layer forgets the
            # channel here (treasurehunt.layers; the Redis layer otherwise keeps its queue and subscription).
            # A consumer cancelled before its disconnect handler ran also leaves its groups here.
            delete = getattr(self.channel_layer, "delete_channel", None)
            if delete is not None:
                await delete(self.channel_name, groups=getattr(self, "groups", ()))

    async def dispatch(self, message):
        # Channels' own dispatch hops to the sync thread before every message to close stale database
        # connections. This consumer uses the database only inside database_sync_to_async, which does that
        # itself, so pushed frames and pings never leave the event loop.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # --- Lifecycle ----------------------------------------------------------------------

    async def connect(self):
        self.closing = self.direct_sent = False
        self.user = self.hunt = self.team = None
        self.bucket = TokenBucket(rate=FLOOD_RATE, burst=FLOOD_BURST)
        self.loop = asyncio.get_running_loop()  # open_stream's thread joins the groups on it
        # Accept first: the close codes below only reach a client on an open socket.
        await self.accept()
        try:
            opened = await self.open_stream()
        except Exception:
            log.exception("could not open the live stream")
            await self.end(1011)
            return
        if isinstance(opened, int):
            await self.end(opened)
            return
        hello, online = opened
        await self.send_json(hello)
        if online is not None:
            await self.send_json({"type": "presence", "online": online})
        # From now on the layer may hand this socket the frames no client orders against others without
        # going through this consumer (treasurehunt/layers.py, `direct`); delete_channel forgets it.
        set_direct = getattr(self.channel_layer, "set_direct", None)
        if set_direct is not None:
            set_direct(self.channel_name, self.push_direct)

    async def disconnect(self, code):
        if self.team is not None:
            leave = sync_to_async(presence.leave, thread_sensitive=False)
            await leave(team_id=self.team.pk, conn=self.channel_name)

    async def end(self, code: int) -> None:
        """Close the socket; frames still queued for it are dropped."""
        self.closing = True
        await self.close(code)

    @in_pool(lane=lanes.CONNECT)
    def open_stream(self) -> int | tuple[dict, list[str] | None]:
        """A connect's one database hop (one pooled connection): authenticate, join, greet.

        Returns a close code, or the hello frame and the presence list to send to this socket alone.
        """
        code = self.authenticate()
        if code is not None:
            return code
        self.groups = self.stream_groups()  # left by the base class on disconnect
        # One hop to the loop joins every group at once (each a SUBSCRIBE sent, no reply awaited), before
        # the heads are read: an event committed later also arrives live, so nothing falls between. A bare
        # hand-over to the loop, not async_to_sync (its contexts and executors were 5% of a connect storm's
        # samples, BENCHMARKS.md); a connect it holds up past JOIN_TIMEOUT ends with 1011.
        joined = asyncio.run_coroutine_threadsafe(self.join_groups(), self.loop)
        try:
            joined.result(timeout=JOIN_TIMEOUT)
        except TimeoutError:
            joined.cancel()  # the connect ends here: no join left running on the loop after it
            raise
        return self.greet()

    async def join_groups(self) -> None:
        await asyncio.gather(*(self.channel_layer.group_add(g, self.channel_name) for g in self.groups))

    def authenticate(self) -> int | None:
        """Who connects, to which hunt, on which team: None when they may, else the close code."""
        slug = self.scope["url_route"]["kwargs"]["hunt"]
        if "token_key" in self.scope:  # hunts.middleware.TokenHeaderMiddleware
            user, hunt, team = stream_access(hunt_slug=slug, token_key=self.scope["token_key"] or None)
        else:  # the session's user (lazy): anonymous and inactive users come back as None
            user, hunt, team = stream_access(hunt_slug=slug, user=self.scope.get("user"))
        if user is None:
            return CLOSE_UNAUTHENTICATED
        if hunt is None:
            return CLOSE_NOT_FOUND
        if not may_follow(team, user):
            return CLOSE_FORBIDDEN
        self.user, self.hunt, self.team = user, hunt, team
        return None

    def stream_groups(self) -> list[str]:
        groups = [hunt_group(self.hunt.pk), user_group(self.user.pk)]
        if self.team is not None:
            groups.append(team_group(self.team.pk))
        if self.user.is_staff:
            groups.append(staff_group(self.hunt.pk))
        return groups

    def greet(self) -> tuple[dict, list[str] | None]:
        """The hello frame (its heads read now, after joining the groups) and the presence list for this
        socket.

        The heads come from the cache, raised first to the database's as the access statement read them
        (before the joins) in the presence check's round trip: a cached head is recorded after its event
        commits and before its frame is published, so an event committed since that statement either
        reaches this socket live or is counted in the cached head. Where the cache could not give them,
        they are read from the database, as a resume reads them (BENCHMARKS.md, fix 55). The presence list
        is None when it changed: then it went to the whole team, this socket included.
        """
        user, hunt, team = self.user, self.hunt, self.team
        username = user.get_username()
        heads = self.heads_as_cached(team.event_seq if team is not None else None, hunt.event_seq)
        if team is not None:
            online, cached = presence.join(
                team_id=team.pk, conn=self.channel_name, username=username, heads=heads
            )
        else:
            online, cached = None, record_heads(heads)
        if cached is not None:
            team_seq, hunt_seq = self.seqs_of(cached)
        else:
            team_seq, hunt_seq, _ = self.read_heads()
        hello = {
            "type": "hello",
            "user": username,
            "staff": user.is_staff,
            "team": {"slug": team.slug, "name": team.name} if team else None,
            "team_seq": team_seq,
            "hunt_seq": hunt_seq,
            "hunt": {"slug": hunt.slug, "state": hunt.state},
            "server_time": iso(timezone.now()),
        }
        return hello, online

    def read_heads(self) -> tuple[int | None, int, dict[str, int]]:
        """The streams' heads from the database (one query), and as the cache keys' values that the caller
        records for pongs."""
        team_seq, hunt_seq = read_heads(hunt=self.hunt, team=self.team)
        return team_seq, hunt_seq, self.heads_as_cached(team_seq, hunt_seq)

    def heads_as_cached(self, team_seq: int | None, hunt_seq: int) -> dict[str, int]:
        """This socket's streams' heads under their cache keys (the team's only with a team)."""
        heads = {head_key("hunt", self.hunt.pk): hunt_seq}
        if self.team is not None:
            heads[head_key("team", self.team.pk)] = team_seq
        return heads

    def seqs_of(self, heads: dict[str, int]) -> tuple[int | None, int]:
        """(team_seq, hunt_seq) from heads keyed as heads_as_cached keys them."""
        team_seq = heads[head_key("team", self.team.pk)] if self.team is not None else None
        return team_seq, heads[head_key("hunt", self.hunt.pk)]

    # --- Pushed frames ------------------------------------------------------------------

    async def event_forward(self, message):
        """Every pushed frame: its text as the publisher encoded it, with no database work and no encoding.

        Two internal frames end the socket. (A message with a `frame` dict comes from a publisher of the
        previous release during a rolling deploy.)
        """
        if self.closing:
            return
        if "text" in message:
            kind, text = message.get("kind"), message["text"]
        else:
            kind, text = message["frame"].get("type"), None
        if message.get("direct") and self.direct_sent:
            # Queued before this socket had a sender (its connect), so older than the one it has had since.
            return
        if kind == "membership.ended":
            frame = message.get("frame") or json.loads(text)
            if frame.get("hunt") in (None, self.hunt.pk):
                await self.end(CLOSE_FORBIDDEN)
            return
        if text is None:
            await self.send_json(message["frame"])
        else:
            await self.send(text_data=text)
        if kind == "session.ended":
            await self.end(CLOSE_UNAUTHENTICATED)

    async def push_direct(self, text: str) -> None:
        """A frame's text handed over by the layer itself (`direct` frames): sent unless the socket ends.

        A socket its client or daphne is closing refuses it (autobahn's Disconnected): nothing more is
        sent to it, and nothing logged, as many may be closing when a push goes out."""
        if self.closing:
            return
        try:
            await self.send(text_data=text)
        except Disconnected:
            self.closing = True
            return
        self.direct_sent = True

    # --- Client frames ------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        if self.closing:
            return
        if not self.bucket.take():
            await self.end(CLOSE_FLOODING)
            return
        frame_id = None
        try:
            frame = await self.decode_frame(text_data, bytes_data)
            if isinstance(frame.get("id"), str):
                frame_id = frame["id"]
            await self.handle(frame)
        except FrameError as exc:
            await self.send_json(exc.frame(frame_id))

    async def decode_frame(self, text_data: str | None, bytes_data: bytes | None) -> dict:
        if text_data is None:
            if len(bytes_data or b"") > MAX_FRAME_BYTES:
                raise FrameError("too_large", f"Frames are limited to {MAX_FRAME_BYTES // 1024} KiB.")
            raise FrameError("invalid_frame", "Send frames as JSON text, not binary.")
        if _frame_size(text_data) > MAX_FRAME_BYTES:
            raise FrameError("too_large", f"Frames are limited to {MAX_FRAME_BYTES // 1024} KiB.")
        try:
            frame = await self.decode_json(text_data)
        except (ValueError, RecursionError):  # `[[[[...` nested thousands deep is a RecursionError
            raise FrameError("invalid_json", "The frame is not valid JSON.") from None
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            raise FrameError("invalid_frame", 'A frame is a JSON object with a string "type".')
        return frame

    async def handle(self, frame: dict) -> None:
        name = self.HANDLERS.get(frame["type"])
        if name is None:
            raise FrameError("unknown_type", f"Unknown frame type {frame['type'][:40]!r}.")
        try:
            await getattr(self, name)(frame)
        except FrameError:
            raise
        except SERVICE_ERRORS as exc:
            raise service_error(exc) from None
        except Exception:
            log.exception("live stream frame %s failed", frame["type"])
            raise FrameError("server_error", "Something went wrong on our side; please try again.") from None

    async def on_resume(self, frame: dict) -> None:
        after = {}
        for stream in ("hunt", "team"):
            field = f"{stream}_seq"
            if field in frame:
                seq = frame[field]
                if type(seq) is not int or seq < 0:
                    raise FrameError("invalid_frame", f"{field} must be a non-negative integer.")
                after[stream] = seq
        if "team" in after and self.team is None:
            raise FrameError("invalid_frame", "This connection has no team stream.")
        frames, done = await self.read_log(after)
        for logged in frames:
            await self.send_json(logged)
        await self.send_json(done)

    @in_pool
    def read_log(self, after: dict[str, int]) -> tuple[list[dict], dict]:
        """Frames logged after the given seqs, hunt stream first, MAX_REPLAY per stream; then resume.done."""
        team_seq, hunt_seq, cached = self.read_heads()
        record_heads(cached)
        heads = {"team": team_seq, "hunt": hunt_seq}
        for stream, seq in after.items():
            if seq > heads[stream]:
                message = f"{stream}_seq {seq} is above the {stream} stream's head ({heads[stream]})."
                raise FrameError("bad_seq", message)
        frames, more = [], False
        for stream in ("hunt", "team"):
            if stream in after:
                batch = replay(hunt=self.hunt, team=self.team, stream=stream, after=after[stream])
                frames.extend(batch)
                more = more or (len(batch) == MAX_REPLAY and batch[-1]["seq"] < heads[stream])
        return frames, {"type": "resume.done", "team_seq": team_seq, "hunt_seq": hunt_seq, "more": more}

    async def on_guess_submit(self, frame: dict) -> None:
        client_id, puzzle, answer = frame.get("id"), frame.get("puzzle"), frame.get("answer")
        if not isinstance(client_id, str) or not client_id.strip():
            raise FrameError("invalid_frame", 'guess.submit needs a non-empty string "id".')
        if not isinstance(puzzle, str) or not isinstance(answer, str):
            raise FrameError("invalid_frame", 'guess.submit needs string "puzzle" and "answer".')
        await self.send_json(await self.submit(puzzle=puzzle, answer=answer, client_id=client_id))

    @in_pool
    def submit(self, *, puzzle: str, answer: str, client_id: str) -> dict:
        team = team_required(self.team)
        # submit_guess checks under the team's lock that the user is still a member (no query here).
        guess, created = submit_guess(
            team=team, user=self.user, puzzle_slug=puzzle, text=answer, client_id=client_id
        )
        username = guess.user.get_username() if guess.user_id else None
        return {
            "type": "guess.accepted",
            "id": client_id,
            "created": created,
            "guess": guess_data(guess, puzzle_slug=guess.puzzle.slug, username=username),
        }

    async def on_ping(self, frame: dict) -> None:
        team_id = self.team.pk if self.team is not None else None
        heads = await pings.cached_heads(
            hunt_id=self.hunt.pk, team_id=team_id, conn=self.channel_name, username=self.user.get_username()
        )
        await self.send_json({"type": "pong", **heads})
