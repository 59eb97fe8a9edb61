"""A small client of the live stream (DESIGN section 7) for the integration tier and the benches.

It holds the last seq per stream the way a browser does: a logged frame with seq <= held is dropped, held + 1
is applied, anything above is a gap (not applied: the next `catch_up` resumes from the held seq). Every frame
is kept with the monotonic time it arrived, so a bench can measure delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

STREAMS = ("hunt", "team")

Frame = dict


class LiveClient:
    """One socket of one user, authenticated by the `Authorization: Token` header."""

    def __init__(self, base_url: str, hunt: str, token: str):
        self.url = f"{base_url.replace('http', 'ws', 1)}/ws/hunts/{hunt}/"
        self.token = token
        self.socket: ClientConnection | None = None
        self.hello: Frame | None = None
        self.held: dict[str, int | None] = dict.fromkeys(STREAMS)
        self.applied: dict[str, list[int]] = {stream: [] for stream in STREAMS}
        self.gaps: set[str] = set()
        self.frames: list[tuple[float, Frame]] = []
        self.close_code: int | None = None
        self._changed = asyncio.Event()
        self._reader: asyncio.Task | None = None
        self.on_frame: Callable[[float, Frame], None] | None = None

    async def connect(self, *, timeout: float = 30) -> Frame:
        """Open the socket and wait for the hello; its heads become the held seqs."""
        self.socket = await connect(
            self.url,
            additional_headers={"Authorization": f"Token {self.token}"},
            open_timeout=timeout,
            ping_interval=None,  # the protocol has its own ping; daphne's keepalive is off (-1)
            max_queue=None,
        )
        self._reader = asyncio.create_task(self._read())
        self.hello = await self.wait_for(lambda f: f["type"] == "hello", timeout=timeout)
        for stream in STREAMS:
            self.held[stream] = self.hello[f"{stream}_seq"]
        return self.hello

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)

    async def _read(self) -> None:
        try:
            async for text in self.socket:
                at = time.monotonic()
                frame = json.loads(text)
                self._track(frame)
                self.frames.append((at, frame))
                if self.on_frame is not None:
                    self.on_frame(at, frame)
                self._changed.set()
        except Exception:  # noqa: S110 - a lost connection shows as close_code
            pass
        finally:
            self.close_code = self.socket.close_code
            self._changed.set()

    def _track(self, frame: Frame) -> None:
        stream, seq = frame.get("stream"), frame.get("seq")
        if stream not in STREAMS or self.held.get(stream) is None or not isinstance(seq, int):
            return
        if seq <= self.held[stream]:
            return
        if seq > self.held[stream] + 1:
            self.gaps.add(stream)
            return
        self.held[stream] = seq
        self.applied[stream].append(seq)

    async def send(self, frame: Frame) -> None:
        await self.socket.send(json.dumps(frame))

    async def wait_for(self, predicate: Callable[[Frame], bool], *, timeout: float, start: int = 0) -> Frame:
        """The first frame from index `start` on that matches; fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        index = start
        while True:
            while index < len(self.frames):
                frame = self.frames[index][1]
                index += 1
                if predicate(frame):
                    return frame
            if self.close_code is not None:
                raise ConnectionError(f"socket closed with {self.close_code} while waiting")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching frame within {timeout} s; last: {self.frames[-3:]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def request(self, frame: Frame, reply: str, *, timeout: float = 10) -> Frame:
        start = len(self.frames)
        await self.send(frame)
        return await self.wait_for(lambda f: f["type"] == reply, timeout=timeout, start=start)

    async def catch_up(self, *, timeout: float = 10) -> Frame:
        """Ping; resume every stream whose pong head is null or ahead of the held seq (or had a gap).

        Returns the pong that started it (a test asserts on its heads).
        """
        pong = await self.request({"type": "ping"}, "pong", timeout=timeout)
        carried = [s for s in STREAMS if self.held[s] is not None]
        behind = {
            s
            for s in carried
            if pong[f"{s}_seq"] is None or pong[f"{s}_seq"] > self.held[s] or s in self.gaps
        }
        for _ in range(20):  # 500 frames per round: far more than any test or bench logs
            if not behind:
                return pong
            self.gaps -= behind
            done = await self.request(
                {"type": "resume", **{f"{s}_seq": self.held[s] for s in behind}},
                "resume.done",
                timeout=timeout,
            )
            behind = {s for s in carried if done[f"{s}_seq"] > self.held[s] or s in self.gaps}
        raise RuntimeError(f"resume makes no progress: held {self.held}, gaps {self.gaps}")


@dataclass
class World:
    """A running hunt with one exact-answer puzzle and teams of players, each with an API token."""

    hunt: Any
    puzzle: Any
    teams: list
    members: list[list[tuple[str, str]]]  # per team: (username, token)
    staff_token: str


def make_world(*, teams: int, members: int, hunt_slug: str = "live", answer: str = "BRIGHT BEAM") -> World:
    """Bulk-made rows (no events, no password hashing): quick enough for 1,000 players in a test.

    The hunt has no guess limit, so a bench can guess as often as it likes.
    """
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from hunts.models import Hunt, Membership, Team
    from puzzles.models import Answer, Puzzle, Round
    from testing.factories import crockford_code

    user_model = get_user_model()
    now = timezone.now()
    hunt = Hunt.objects.create(
        slug=hunt_slug,
        title="Live",
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=2),
        guess_limit_guesses=None,
        guess_limit_minutes=None,
    )
    round_ = Round.objects.create(hunt=hunt, title="Harbour", order=1)
    puzzle = Puzzle.objects.create(
        hunt=hunt, round=round_, slug="lighthouse", title="The Lighthouse", points=10
    )
    Answer.objects.create(puzzle=puzzle, kind=Answer.Kind.EXACT, parameters={"value": answer}, final=True)
    team_rows = Team.objects.bulk_create(
        Team(hunt=hunt, name=f"Team {i}", slug=f"team-{i}", join_code=crockford_code(i)) for i in range(teams)
    )
    users = user_model.objects.bulk_create(
        user_model(username=f"p{t}-{m}", password="!") for t in range(teams) for m in range(members)
    )
    staff = user_model.objects.create(username="staff", password="!", is_staff=True)
    tokens = Token.objects.bulk_create(Token(key=Token.generate_key(), user=user) for user in [*users, staff])
    Membership.objects.bulk_create(
        Membership(hunt=hunt, team=team_rows[i // members], user=user) for i, user in enumerate(users)
    )
    keys = [token.key for token in tokens]
    roster = [
        [(users[t * members + m].username, keys[t * members + m]) for m in range(members)]
        for t in range(teams)
    ]
    return World(hunt, puzzle, team_rows, roster, keys[-1])
