"""The live stream (DESIGN section 7): handshake, close codes, frames, errors, isolation, staff stream."""

import asyncio
import contextlib
import json
import threading
from datetime import timedelta
from types import SimpleNamespace

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth import logout
from django.contrib.sessions.backends.db import SessionStore
from django.core.cache import cache
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test import Client, RequestFactory
from django.utils import timezone
from rest_framework.authtoken.models import Token

from hunts import consumers, services
from hunts.errors import Conflict, NotFound
from hunts.events import end_user_sessions, head_key, leaderboard_dirty_key
from hunts.models import Event, Hunt, Team
from hunts.routing import websocket_urlpatterns
from puzzles import services as puzzle_services
from puzzles.models import Guess
from testing.factories import (
    AnswerFactory,
    HuntFactory,
    MembershipFactory,
    PuzzleFactory,
    TeamFactory,
    UserFactory,
)
from treasurehunt import lanes
from treasurehunt.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 3
ORIGIN = "http://testserver"


@pytest.fixture(autouse=True)
async def _fresh_layer():
    """The in-memory layer outlives a test's event loop: start each test with no channels or groups."""
    await get_channel_layer().flush()
    yield
    await get_channel_layer().flush()


@pytest.fixture
def world(transactional_db):
    hunt = HuntFactory(slug="harbour")
    puzzle = PuzzleFactory(hunt=hunt, slug="lighthouse", points=10)
    AnswerFactory(puzzle=puzzle, parameters={"value": "BRIGHT BEAM"})
    alpha = TeamFactory(hunt=hunt, name="Alpha")
    bravo = TeamFactory(hunt=hunt, name="Bravo")
    users = {
        "ann": MembershipFactory(team=alpha, user__username="ann").user,
        "bob": MembershipFactory(team=alpha, user__username="bob").user,
        "cat": MembershipFactory(team=bravo, user__username="cat").user,
        "lou": UserFactory(username="lou"),
        "sam": UserFactory(username="sam", is_staff=True),
    }
    tokens = {name: Token.objects.create(user=user).key for name, user in users.items()}
    return SimpleNamespace(hunt=hunt, puzzle=puzzle, alpha=alpha, bravo=bravo, tokens=tokens, **users)


@pytest.fixture
async def sockets():
    """Opens sockets through the full ASGI stack and disconnects every one of them at the end."""
    opened = []

    async def open_socket(
        path="/ws/hunts/harbour/", *, token=None, cookie=None, origin=ORIGIN, app=application
    ):
        headers = [(b"host", b"testserver")]
        if origin is not None:
            headers.append((b"origin", origin.encode()))
        if token is not None:
            headers.append((b"authorization", f"Token {token}".encode()))
        if cookie is not None:
            headers.append((b"cookie", f"sessionid={cookie}".encode()))
        socket = WebsocketCommunicator(app, path, headers=headers)
        opened.append(socket)
        socket.accepted, socket.code = await socket.connect(timeout=TIMEOUT)
        return socket

    yield open_socket
    for socket in opened:
        # A socket refused before accept has no app left to disconnect.
        with contextlib.suppress(Exception):
            await socket.disconnect(timeout=TIMEOUT)


async def receive(socket) -> dict:
    return await socket.receive_json_from(timeout=TIMEOUT)


async def receive_until(socket, kind: str) -> dict:
    """The next frame of this type, skipping others (presence, live frames)."""
    while True:
        frame = await receive(socket)
        if frame["type"] == kind:
            return frame


async def closed_with(socket) -> int:
    """The close code, after any frames still queued before the close."""
    while True:
        message = await socket.receive_output(timeout=TIMEOUT)
        if message["type"] == "websocket.close":
            return message.get("code")


async def connected(open_socket, name: str, world, path="/ws/hunts/harbour/") -> WebsocketCommunicator:
    """A socket of this user that got its hello (and its presence frame, if on a team)."""
    socket = await open_socket(path, token=world.tokens[name])
    hello = await receive(socket)
    assert hello["type"] == "hello", hello
    socket.hello = hello
    if hello["team"] is not None:
        await receive_until(socket, "presence")
    return socket


def guess_submit(answer: str, frame_id: str, puzzle: str = "lighthouse") -> dict:
    return {"type": "guess.submit", "puzzle": puzzle, "answer": answer, "id": frame_id}


async def silent(socket, seconds: float = 0.2) -> bool:
    return await socket.receive_nothing(timeout=seconds)


async def drain(socket, seconds: float = 0.2) -> list[dict]:
    frames = []
    while not await socket.receive_nothing(timeout=seconds):
        frames.append(await receive(socket))
    return frames


# --- Handshake and close codes ------------------------------------------------------------


async def test_hello_names_the_user_team_heads_and_hunt(world, sockets):
    await database_sync_to_async(services.post_announcement)(hunt=world.hunt, text="Welcome")
    socket = await sockets(token=world.tokens["ann"])
    assert socket.accepted

    hello = await receive(socket)

    assert set(hello) == {"type", "user", "staff", "team", "team_seq", "hunt_seq", "hunt", "server_time"}
    assert hello["type"] == "hello"
    assert hello["user"] == "ann"
    assert hello["staff"] is False
    assert hello["team"] == {"slug": world.alpha.slug, "name": "Alpha"}
    assert hello["team_seq"] == 0
    assert hello["hunt_seq"] == 1
    assert hello["hunt"] == {"slug": "harbour", "state": "running"}
    assert hello["server_time"].endswith("Z")
    # hello fills the cached heads that pongs read (with the presence check, for a team's socket).
    assert cache.get(head_key("team", world.alpha.pk)) == 0
    assert cache.get(head_key("hunt", world.hunt.pk)) == 1


async def test_a_socket_runs_on_the_consumers_own_dispatch_loop(world, sockets, monkeypatch):
    """HuntConsumer.__call__ reads the socket and the layer through hunts.consumers.dispatch_loop."""
    from hunts import consumers

    loops = []
    real = consumers.dispatch_loop

    async def spy(sources, dispatch):
        loops.append(len(sources))
        await real(sources, dispatch)

    monkeypatch.setattr(consumers, "dispatch_loop", spy)
    socket = await sockets(token=world.tokens["ann"])
    assert (await receive(socket))["type"] == "hello"
    await socket.send_json_to({"type": "ping"})
    assert (await receive_until(socket, "pong"))["type"] == "pong"
    assert loops == [2]  # the socket and the channel layer


async def test_staff_connect_without_a_team(world, sockets):
    socket = await sockets(token=world.tokens["sam"])

    hello = await receive(socket)

    assert hello["staff"] is True
    assert hello["team"] is None
    assert hello["team_seq"] is None
    assert hello["hunt_seq"] == 0
    assert cache.get(head_key("hunt", world.hunt.pk)) == 0  # recorded without a presence check


async def test_staff_may_open_an_unpublished_hunt(world, sockets):
    await database_sync_to_async(Hunt.objects.filter(pk=world.hunt.pk).update)(published=False)
    socket = await sockets(token=world.tokens["sam"])

    assert (await receive(socket))["type"] == "hello"


@pytest.mark.parametrize("token", [None, "not-a-token", ""])
async def test_anonymous_socket_is_accepted_then_closed_4401(world, sockets, token):
    socket = await sockets(token=token)

    assert socket.accepted
    assert await closed_with(socket) == 4401


async def test_player_without_team_is_closed_4403(world, sockets):
    socket = await sockets(token=world.tokens["lou"])

    assert socket.accepted
    assert await closed_with(socket) == 4403


async def test_unknown_hunt_is_closed_4404(world, sockets):
    socket = await sockets("/ws/hunts/nowhere/", token=world.tokens["ann"])

    assert await closed_with(socket) == 4404


async def test_unpublished_hunt_is_closed_4404_for_players(world, sockets):
    await database_sync_to_async(Hunt.objects.filter(pk=world.hunt.pk).update)(published=False)
    socket = await sockets(token=world.tokens["ann"])

    assert await closed_with(socket) == 4404


async def test_flooding_closes_4429(world, sockets):
    socket = await connected(sockets, "ann", world)

    for _ in range(60):
        await socket.send_json_to({"type": "nope"})

    errors = 0
    while True:
        message = await socket.receive_output(timeout=TIMEOUT)
        if message["type"] == "websocket.close":
            break
        errors += 1
    assert message["code"] == 4429
    # The burst of 40 is answered (plus what refilled meanwhile); the frames after the close are not.
    assert 40 <= errors < 60
    assert await silent(socket)


async def test_a_burst_under_the_limit_is_not_flooding(world, sockets):
    socket = await connected(sockets, "ann", world)

    for _ in range(40):
        await socket.send_json_to({"type": "ping"})

    frames = [await receive(socket) for _ in range(40)]
    assert {f["type"] for f in frames} == {"pong"}


# --- Origin rule ------------------------------------------------------------------------


@pytest.fixture
def session_of(transactional_db):
    def login(user) -> str:
        client = Client()
        client.force_login(user)
        return client.cookies["sessionid"].value

    return login


async def test_foreign_origin_is_refused_before_accept(world, sockets):
    socket = await sockets(token=world.tokens["ann"], origin="https://evil.example")

    assert not socket.accepted


async def test_origin_without_host_is_refused(world, sockets):
    socket = await sockets(token=world.tokens["ann"], origin="null")

    assert not socket.accepted


async def test_allowed_origin_with_session_cookie_is_accepted(world, sockets, session_of):
    cookie = await sync_to_async(session_of)(world.ann)
    socket = await sockets(cookie=cookie, origin="http://testserver:8000")

    assert (await receive(socket))["user"] == "ann"


async def test_session_cookie_without_origin_is_refused(world, sockets, session_of):
    cookie = await sync_to_async(session_of)(world.ann)
    socket = await sockets(cookie=cookie, origin=None)

    assert not socket.accepted


async def test_token_without_origin_is_accepted(world, sockets):
    socket = await sockets(token=world.tokens["ann"], origin=None)

    assert (await receive(socket))["user"] == "ann"


async def test_token_header_replaces_the_session_user(world, sockets, session_of):
    cookie = await sync_to_async(session_of)(world.ann)
    socket = await sockets(cookie=cookie, token=world.tokens["cat"])

    assert (await receive(socket))["user"] == "cat"


async def test_bad_token_is_anonymous_even_with_a_session(world, sockets, session_of):
    cookie = await sync_to_async(session_of)(world.ann)
    socket = await sockets(cookie=cookie, token="0" * 40)

    assert await closed_with(socket) == 4401


async def test_router_alone_takes_the_scope_user(world):
    """Focused tests may skip the middleware: the consumer reads scope["user"]."""
    socket = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/hunts/harbour/")
    socket.scope["user"] = world.bob
    await socket.connect(timeout=TIMEOUT)

    assert (await receive(socket))["user"] == "bob"
    await socket.disconnect()


# --- Resume -----------------------------------------------------------------------------


async def _log_events(world, *, hunt_wide: int = 0, team: int = 0) -> None:
    def log():
        for i in range(hunt_wide):
            services.post_announcement(hunt=world.hunt, text=f"News {i + 1}")
        if team:
            alpha = Team.objects.get(pk=world.alpha.pk)
            Event.objects.bulk_create(
                Event(
                    hunt=world.hunt, team=alpha, seq=alpha.event_seq + n, kind="score.adjusted", data={"n": n}
                )
                for n in range(1, team + 1)
            )
            Team.objects.filter(pk=alpha.pk).update(event_seq=alpha.event_seq + team)

    await database_sync_to_async(log)()


async def test_resume_replays_both_streams_hunt_first(world, sockets):
    await _log_events(world, hunt_wide=2, team=3)
    socket = await connected(sockets, "ann", world)

    await socket.send_json_to({"type": "resume", "team_seq": 1, "hunt_seq": 0})

    frames = [await receive(socket) for _ in range(5)]
    assert [(f["stream"], f["seq"]) for f in frames[:4]] == [
        ("hunt", 1),
        ("hunt", 2),
        ("team", 2),
        ("team", 3),
    ]
    assert frames[0]["type"] == "announcement.posted"
    assert frames[0]["data"]["text"] == "News 1"
    assert set(frames[0]) == {"type", "stream", "seq", "at", "data"}
    assert frames[4] == {"type": "resume.done", "team_seq": 3, "hunt_seq": 2, "more": False}


async def test_resume_replays_only_the_streams_given(world, sockets):
    await _log_events(world, hunt_wide=2, team=2)
    socket = await connected(sockets, "ann", world)

    await socket.send_json_to({"type": "resume", "hunt_seq": 1})

    frame = await receive(socket)
    assert (frame["stream"], frame["seq"]) == ("hunt", 2)
    assert await receive(socket) == {"type": "resume.done", "team_seq": 2, "hunt_seq": 2, "more": False}

    await socket.send_json_to({"type": "resume"})
    assert (await receive(socket))["type"] == "resume.done"


async def test_resume_sends_at_most_500_per_stream_and_says_more(world, sockets):
    await _log_events(world, team=501)
    socket = await connected(sockets, "ann", world)

    await socket.send_json_to({"type": "resume", "team_seq": 0})

    frames = [await receive(socket) for _ in range(501)]
    assert [f["seq"] for f in frames[:500]] == list(range(1, 501))
    assert frames[500] == {"type": "resume.done", "team_seq": 501, "hunt_seq": 0, "more": True}

    await socket.send_json_to({"type": "resume", "team_seq": 500})
    assert (await receive(socket))["seq"] == 501
    assert (await receive(socket))["more"] is False


async def test_resume_above_the_head_is_bad_seq(world, sockets):
    await _log_events(world, hunt_wide=1)
    socket = await connected(sockets, "ann", world)

    await socket.send_json_to({"type": "resume", "hunt_seq": 2})

    error = await receive(socket)
    assert error["type"] == "error"
    assert error["code"] == "bad_seq"
    assert await silent(socket)


@pytest.mark.parametrize("seq", [-1, "3", 1.5, True, None])
async def test_resume_with_a_bad_seq_value_is_invalid_frame(world, sockets, seq):
    socket = await connected(sockets, "ann", world)

    await socket.send_json_to({"type": "resume", "team_seq": seq})

    assert (await receive(socket))["code"] == "invalid_frame"


async def test_staff_without_team_cannot_resume_a_team_stream(world, sockets):
    socket = await connected(sockets, "sam", world)

    await socket.send_json_to({"type": "resume", "team_seq": 0})

    assert (await receive(socket))["code"] == "invalid_frame"


# --- Guesses ------------------------------------------------------------------------------


async def test_guess_over_the_socket_is_accepted_and_reaches_teammates(world, sockets):
    ann = await connected(sockets, "ann", world)
    bob = await connected(sockets, "bob", world)
    await drain(ann)

    await ann.send_json_to(guess_submit("bright beam", "g-1"))

    accepted = await receive_until(ann, "guess.accepted")
    assert accepted["id"] == "g-1"
    assert accepted["created"] is True
    guess = accepted["guess"]
    assert set(guess) == {
        "id",
        "puzzle",
        "answer",
        "status",
        "response",
        "user",
        "client_id",
        "created_at",
        "judged_at",
    }
    assert (guess["puzzle"], guess["status"], guess["user"], guess["client_id"]) == (
        "lighthouse",
        "correct",
        "ann",
        "g-1",
    )
    judged = await receive_until(bob, "guess.judged")
    assert judged["stream"] == "team"
    assert judged["data"]["guess"]["id"] == guess["id"]
    assert (await receive_until(bob, "puzzle.solved"))["data"]["points"] == 10


@pytest.fixture
def one_thread_stream_pool():
    """The process's stream pool with one thread, whose work records the lane it came by as it runs."""
    ran = []

    class Recording(lanes.Lanes):
        def submit(self, lane, fn, /, *args, **kwargs):
            def run():
                ran.append(lane)
                return fn(*args, **kwargs)

            return super().submit(lane, run)

    pool = Recording(1, name="test-stream")
    old = lanes.set_stream_pool(pool)
    yield pool, ran
    lanes.set_stream_pool(old)


async def wait_for_waiting(pool, lane: int) -> None:
    for _ in range(int(TIMEOUT / 0.01)):
        if pool.waiting(lane):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"nothing queued in lane {lane}")


async def test_a_guess_goes_before_the_connects_waiting_for_a_thread(world, sockets, one_thread_stream_pool):
    """In a connect storm a guess from an open socket does not queue behind the connects (BENCHMARKS.md,
    fix 51): the stream pool runs the guess's hop first."""
    pool, ran = one_thread_stream_pool
    ann = await connected(sockets, "ann", world)
    await drain(ann)
    busy, release = threading.Event(), threading.Event()
    pool.submit(lanes.CONNECT, lambda: busy.set() or release.wait(TIMEOUT))
    assert await asyncio.to_thread(busy.wait, TIMEOUT)  # the pool's one thread is taken
    bob = await sockets(token=world.tokens["bob"])  # accepted; its hop waits for the thread
    await wait_for_waiting(pool, lanes.CONNECT)
    await ann.send_json_to(guess_submit("low beam", "g-1"))
    await wait_for_waiting(pool, lanes.URGENT)
    del ran[:]

    release.set()

    assert (await receive_until(ann, "guess.accepted"))["id"] == "g-1"
    assert (await receive(bob))["type"] == "hello"
    assert ran == [lanes.URGENT, lanes.CONNECT]


async def test_repeated_guess_id_returns_the_original(world, sockets):
    ann = await connected(sockets, "ann", world)
    frame = {"type": "guess.submit", "puzzle": "lighthouse", "answer": "low beam", "id": "g-1"}

    await ann.send_json_to(frame)
    first = await receive_until(ann, "guess.accepted")
    await ann.send_json_to({**frame, "answer": "something else"})
    again = await receive_until(ann, "guess.accepted")

    assert first["created"] is True
    assert again["created"] is False
    assert again["guess"] == first["guess"]
    assert await database_sync_to_async(Guess.objects.count)() == 1


async def test_guess_errors_carry_the_frame_id(world, sockets):
    ann = await connected(sockets, "ann", world)

    await ann.send_json_to(guess_submit("x", "g-1", puzzle="nowhere"))
    not_found = await receive(ann)
    await ann.send_json_to(guess_submit("  ", "g-2"))
    invalid = await receive(ann)

    assert (not_found["type"], not_found["code"], not_found["id"]) == ("error", "not_found", "g-1")
    assert (invalid["code"], invalid["id"]) == ("invalid", "g-2")
    assert invalid["message"]


async def test_guess_after_the_hunt_is_judged_but_unscored(world, sockets):
    ann = await connected(sockets, "ann", world)
    ended = timezone.now() - timedelta(minutes=1)
    await database_sync_to_async(Hunt.objects.filter(pk=world.hunt.pk).update)(ends_at=ended)

    await ann.send_json_to(guess_submit("x", "g-1"))

    accepted = await receive_until(ann, "guess.accepted")
    assert (accepted["id"], accepted["guess"]["status"]) == ("g-1", "incorrect")


async def test_guess_before_the_hunt_is_forbidden(world, sockets):
    ann = await connected(sockets, "ann", world)
    later = timezone.now() + timedelta(hours=1)
    await database_sync_to_async(Hunt.objects.filter(pk=world.hunt.pk).update)(
        starts_at=later, ends_at=later + timedelta(days=1)
    )

    await ann.send_json_to(guess_submit("x", "g-1"))

    error = await receive(ann)
    assert (error["code"], error["id"]) == ("forbidden", "g-1")


async def test_guess_over_the_limit_is_rate_limited_with_retry_after(world, sockets):
    await database_sync_to_async(Hunt.objects.filter(pk=world.hunt.pk).update)(guess_limit_guesses=1)
    ann = await connected(sockets, "ann", world)

    await ann.send_json_to(guess_submit("one", "g-1"))
    await receive_until(ann, "guess.accepted")
    await ann.send_json_to(guess_submit("two", "g-2"))

    error = await receive_until(ann, "error")
    assert (error["code"], error["id"]) == ("rate_limited", "g-2")
    assert 1 <= error["retry_after"] <= 600


async def test_conflict_and_unexpected_errors_keep_the_socket_open(world, sockets, monkeypatch, caplog):
    ann = await connected(sockets, "ann", world)
    outcomes = iter([Conflict("That guess was just submitted."), RuntimeError("boom")])

    def failing_submit(**kwargs):
        raise next(outcomes)

    monkeypatch.setattr(consumers, "submit_guess", failing_submit)
    frame = {"type": "guess.submit", "puzzle": "lighthouse", "answer": "x"}

    await ann.send_json_to({**frame, "id": "g-1"})
    conflict = await receive(ann)
    await ann.send_json_to({**frame, "id": "g-2"})
    server_error = await receive(ann)

    assert (conflict["code"], conflict["id"]) == ("conflict", "g-1")
    assert (server_error["code"], server_error["id"]) == ("server_error", "g-2")
    assert "boom" not in server_error["message"]
    assert "live stream frame guess.submit failed" in caplog.text
    await ann.send_json_to({"type": "ping"})
    assert (await receive(ann))["type"] == "pong"


async def test_member_who_left_cannot_guess_for_the_old_team(world, sockets, monkeypatch):
    ann = await connected(sockets, "ann", world)
    # Keep the socket open past the leave, as if the close had not arrived yet.
    monkeypatch.setattr(consumers.HuntConsumer, "end", lambda self, code: asyncio.sleep(0))
    await database_sync_to_async(services.leave_team)(hunt=world.hunt, user=world.ann)

    await ann.send_json_to(guess_submit("x", "g-1"))

    assert (await receive_until(ann, "error"))["code"] == "not_found"


# --- Malformed frames -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_frame"),
        ('{"no": "type"}', "invalid_frame"),
        ('{"type": 7}', "invalid_frame"),
        ('{"type": "guess.submit", "puzzle": "lighthouse", "answer": "x"}', "invalid_frame"),
        ('{"type": "guess.submit", "puzzle": 3, "answer": "x", "id": "g"}', "invalid_frame"),
        ('{"type": "teleport"}', "unknown_type"),
        (json.dumps({"type": "ping", "pad": "x" * 16384}), "too_large"),
        (json.dumps({"type": "ping", "pad": "é" * 8200}, ensure_ascii=False), "too_large"),
    ],
)
async def test_bad_frames_get_an_error_and_the_socket_stays_open(world, sockets, text, code):
    ann = await connected(sockets, "ann", world)

    await ann.send_to(text_data=text)

    error = await receive(ann)
    assert error["type"] == "error"
    assert error["code"] == code
    assert error["message"]
    await ann.send_json_to({"type": "ping"})
    assert (await receive(ann))["type"] == "pong"


@pytest.mark.parametrize(
    ("data", "code"), [(b'{"type": "ping"}', "invalid_frame"), (b"\xff" * 20000, "too_large")]
)
async def test_binary_frames_get_an_error_without_closing(world, sockets, data, code):
    ann = await connected(sockets, "ann", world)

    await ann.send_to(bytes_data=data)

    assert (await receive(ann))["code"] == code
    await ann.send_json_to({"type": "ping"})
    assert (await receive(ann))["type"] == "pong"


async def test_an_empty_text_frame_is_invalid_json(world, sockets):
    ann = await connected(sockets, "ann", world)

    await ann.send_input({"type": "websocket.receive", "text": ""})

    assert (await receive(ann))["code"] == "invalid_json"


# --- Ping -------------------------------------------------------------------------------


async def test_ping_answers_heads_from_the_cache_without_database_work(world, sockets, monkeypatch):
    await _log_events(world, hunt_wide=1)
    ann = await connected(sockets, "ann", world)
    staff = await connected(sockets, "sam", world)
    queries = []
    real_cursor = BaseDatabaseWrapper.cursor

    def counting_cursor(self, *args, **kwargs):
        queries.append(self.alias)
        return real_cursor(self, *args, **kwargs)

    monkeypatch.setattr(BaseDatabaseWrapper, "cursor", counting_cursor)

    await ann.send_json_to({"type": "ping"})
    first = await receive(ann)
    cache.set(head_key("hunt", world.hunt.pk), 7)
    cache.delete(head_key("team", world.alpha.pk))
    await ann.send_json_to({"type": "ping"})
    second = await receive(ann)
    await staff.send_json_to({"type": "ping"})
    staff_pong = await receive(staff)

    assert first == {"type": "pong", "team_seq": 0, "hunt_seq": 1}
    assert second == {"type": "pong", "team_seq": None, "hunt_seq": 7}
    assert staff_pong == {"type": "pong", "team_seq": None, "hunt_seq": 7}
    assert queries == []


async def test_published_events_raise_the_cached_heads(world, sockets):
    ann = await connected(sockets, "ann", world)

    await database_sync_to_async(services.post_announcement)(hunt=world.hunt, text="Hi")
    await receive_until(ann, "announcement.posted")
    await ann.send_json_to({"type": "ping"})

    assert (await receive(ann))["hunt_seq"] == 1


# --- Isolation and the staff stream -----------------------------------------------------


async def test_team_b_never_receives_team_a_frames(world, sockets):
    ann = await connected(sockets, "ann", world)
    cat = await connected(sockets, "cat", world)
    await drain(ann)

    await ann.send_json_to(guess_submit("wrong", "g-1"))
    await receive_until(ann, "guess.judged")
    await database_sync_to_async(services.post_announcement)(hunt=world.hunt, text="For everyone")

    frames = await drain(cat, 0.3)
    assert [f["type"] for f in frames] == ["announcement.posted"]


async def test_staff_stream_gets_every_teams_guesses(world, sockets):
    staff = await connected(sockets, "sam", world)
    ann = await connected(sockets, "ann", world)
    cat = await connected(sockets, "cat", world)

    await ann.send_json_to(guess_submit("one", "a"))
    await receive_until(ann, "guess.accepted")
    await cat.send_json_to(guess_submit("two", "c"))
    await receive_until(cat, "guess.accepted")

    frames = [f for f in await drain(staff, 0.3) if f["type"] == "guess.judged"]
    assert [(f["stream"], f["team"]["name"], f["data"]["guess"]["answer"]) for f in frames] == [
        ("staff", "Alpha", "one"),
        ("staff", "Bravo", "two"),
    ]


# --- Ending sockets ---------------------------------------------------------------------


async def test_logout_sends_session_ended_then_closes_4401(world, sockets, session_of):
    cookie = await sync_to_async(session_of)(world.ann)
    socket = await sockets(cookie=cookie)
    await receive(socket)

    def log_out():
        request = RequestFactory().get("/")
        request.session = SessionStore(session_key=cookie)
        request.user = world.ann
        logout(request)

    await database_sync_to_async(log_out)()

    assert await receive_until(socket, "session.ended") == {"type": "session.ended"}
    assert await closed_with(socket) == 4401
    again = await sockets(cookie=cookie)
    assert await closed_with(again) == 4401


async def test_token_regeneration_ending_sessions_closes_4401(world, sockets):
    socket = await connected(sockets, "ann", world)
    bob = await connected(sockets, "bob", world)

    await database_sync_to_async(end_user_sessions)(world.ann.pk)

    assert (await receive_until(socket, "session.ended"))["type"] == "session.ended"
    assert await closed_with(socket) == 4401
    assert all(f["type"] == "presence" for f in await drain(bob))


async def test_leaving_the_team_closes_4403_only_on_that_hunt(world, sockets):
    other = await database_sync_to_async(HuntFactory)(slug="other")
    await database_sync_to_async(MembershipFactory)(team__hunt=other, user=world.ann)
    here = await connected(sockets, "ann", world)
    there = await connected(sockets, "ann", world, path="/ws/hunts/other/")

    await database_sync_to_async(services.leave_team)(hunt=world.hunt, user=world.ann)

    assert await closed_with(here) == 4403
    assert await silent(there)


# --- Presence and the leaderboard ---------------------------------------------------------


async def test_presence_lists_online_teammates_on_change(world, sockets):
    ann = await sockets(token=world.tokens["ann"])
    await receive(ann)
    assert await receive(ann) == {"type": "presence", "online": ["ann"]}

    bob = await connected(sockets, "bob", world)
    assert await receive(ann) == {"type": "presence", "online": ["ann", "bob"]}
    second_tab = await sockets(token=world.tokens["bob"])
    await receive(second_tab)
    assert await receive(second_tab) == {"type": "presence", "online": ["ann", "bob"]}
    assert await silent(ann)

    await second_tab.disconnect()
    assert await silent(ann)
    await bob.disconnect()
    assert await receive(ann) == {"type": "presence", "online": ["ann"]}


async def test_leaderboard_update_is_pushed_by_the_clock_once_per_change(world, sockets):
    cat = await connected(sockets, "cat", world)
    ann = await connected(sockets, "ann", world)

    await ann.send_json_to(guess_submit("bright beam", "g"))
    await receive_until(ann, "guess.accepted")
    await database_sync_to_async(puzzle_services.release_all_due)()

    update = await receive_until(cat, "leaderboard.updated")
    assert update["top"][0]["team"] == {"slug": world.alpha.slug, "name": "Alpha"}
    assert update["top"][0]["score"] == 10
    assert "team_id" not in update["top"][0]
    # Within the 5 s window nothing more is sent; after it, an unchanged top 10 is not sent again.
    await database_sync_to_async(puzzle_services.release_all_due)()
    cache.delete(f"lb:pushed:{world.hunt.pk}")
    cache.set(leaderboard_dirty_key(world.hunt.pk), 1)
    await database_sync_to_async(puzzle_services.release_all_due)()
    assert not [f for f in await drain(cat) if f["type"] == "leaderboard.updated"]


# --- Pings in batches (hunts/pings.py) ------------------------------------------------------


async def test_concurrent_pings_answer_each_socket_with_its_own_teams_heads(world, sockets):
    ann = await connected(sockets, "ann", world)
    cat = await connected(sockets, "cat", world)
    staff = await connected(sockets, "sam", world)
    cache.set_many(
        {
            head_key("hunt", world.hunt.pk): 5,
            head_key("team", world.alpha.pk): 3,
            head_key("team", world.bravo.pk): 8,
        }
    )

    for socket in (ann, cat, staff):
        await socket.send_json_to({"type": "ping"})
    pongs = [await receive_until(socket, "pong") for socket in (ann, cat, staff)]

    assert pongs == [
        {"type": "pong", "team_seq": 3, "hunt_seq": 5},
        {"type": "pong", "team_seq": 8, "hunt_seq": 5},
        {"type": "pong", "team_seq": None, "hunt_seq": 5},
    ]


async def test_a_ping_failing_in_the_cache_answers_server_error_and_keeps_the_socket(
    world, sockets, monkeypatch
):
    ann = await connected(sockets, "ann", world)
    real_cached_heads = consumers.pings.cached_heads

    async def unreachable(**kwargs):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(consumers.pings, "cached_heads", unreachable)
    await ann.send_json_to({"type": "ping"})
    error = await receive(ann)
    monkeypatch.setattr(consumers.pings, "cached_heads", real_cached_heads)
    await ann.send_json_to({"type": "ping"})

    assert error["type"] == "error" and error["code"] == "server_error"
    assert (await receive(ann))["type"] == "pong"


async def test_sockets_guess_side_by_side_not_one_after_another(world, sockets, monkeypatch):
    """One socket's slow guess does not hold up another's: consumers' database work runs in the pool."""
    import threading

    from hunts import consumers

    first_started, second_ran = threading.Event(), threading.Event()

    def submit_guess(*, text, **kwargs):
        if text == "slow":
            first_started.set()
            if not second_ran.wait(5):  # only another thread can set it while this one waits
                raise AssertionError("the second guess waited for the first")
        else:
            assert first_started.wait(5)
            second_ran.set()
        raise NotFound("stand-in")

    monkeypatch.setattr(consumers, "submit_guess", submit_guess)
    ann = await connected(sockets, "ann", world)
    bob = await connected(sockets, "bob", world)
    await drain(ann)

    await ann.send_json_to(guess_submit("slow", "g-1"))
    await bob.send_json_to(guess_submit("fast", "g-2"))

    assert (await receive(bob))["code"] == "not_found"
    assert (await receive(ann))["code"] == "not_found"


def spy_joins_and_heads(monkeypatch) -> list:
    """What a connect does, in order: ("join", on the loop), ("greet", every group of the socket joined by
    then), then ("cached heads",) where hello takes its heads from the cache, ("database heads", every
    group joined) where it reads them from the database."""
    from hunts import presence

    seen = []
    real_join, real_greet = consumers.HuntConsumer.join_groups, consumers.HuntConsumer.greet
    real_read, real_presence, real_record = (
        consumers.HuntConsumer.read_heads,
        presence.join,
        consumers.record_heads,
    )

    def joined(consumer) -> bool:
        layer_groups = get_channel_layer().groups
        return bool(consumer.groups) and all(
            consumer.channel_name in layer_groups.get(g, {}) for g in consumer.groups
        )

    async def join_groups(self):
        seen.append(("join", asyncio.get_running_loop() is self.loop))
        await real_join(self)

    def greet(self):
        seen.append(("greet", joined(self)))
        return real_greet(self)

    def read_heads(self):
        seen.append(("database heads", joined(self)))
        return real_read(self)

    def presence_join(**kwargs):
        seen.append(("cached heads",))
        return real_presence(**kwargs)

    def record_heads(heads):
        seen.append(("cached heads",))
        return real_record(heads)

    monkeypatch.setattr(consumers.HuntConsumer, "join_groups", join_groups)
    monkeypatch.setattr(consumers.HuntConsumer, "greet", greet)
    monkeypatch.setattr(consumers.HuntConsumer, "read_heads", read_heads)
    monkeypatch.setattr(presence, "join", presence_join)
    monkeypatch.setattr(consumers, "record_heads", record_heads)
    return seen


@pytest.mark.parametrize("name", ["ann", "sam"])
async def test_the_groups_are_joined_on_the_loop_before_the_heads_are_read(world, sockets, monkeypatch, name):
    """open_stream's thread hands the joins to the event loop and waits for them, then reads the heads from
    the cache (one round trip with the presence check): no statement of their own (fix 55)."""
    seen = spy_joins_and_heads(monkeypatch)
    socket = await sockets(token=world.tokens[name])
    assert (await receive(socket))["type"] == "hello"
    assert seen == [("join", True), ("greet", True), ("cached heads",)]


@pytest.mark.parametrize("name", ["ann", "sam"])
async def test_an_event_committed_after_the_access_statement_counts_in_the_hello(
    world, sockets, monkeypatch, name
):
    """The access statement reads the heads before the joins; an event committed between it and them is
    not delivered to this socket, so hello must count it: its head, cached at commit, is what hello says."""
    real_join = consumers.HuntConsumer.join_groups

    async def join_groups(self):
        await database_sync_to_async(services.post_announcement)(hunt=world.hunt, text="Between")
        await real_join(self)

    monkeypatch.setattr(consumers.HuntConsumer, "join_groups", join_groups)
    socket = await sockets(token=world.tokens[name])
    hello = await receive(socket)
    assert hello["hunt_seq"] == 1  # the access statement read 0
    assert cache.get(head_key("hunt", world.hunt.pk)) == 1


async def test_hello_heads_come_from_the_cache_where_it_is_ahead(world, sockets):
    """The cached head is the higher: recorded after a commit this connect's statement did not see."""
    cache.set(head_key("team", world.alpha.pk), 4)
    socket = await sockets(token=world.tokens["ann"])
    hello = await receive(socket)
    assert (hello["team_seq"], hello["hunt_seq"]) == (4, 0)


@pytest.mark.parametrize("name", ["ann", "sam"])
async def test_where_the_cache_cannot_give_the_heads_hello_reads_them_after_the_joins(
    world, sockets, monkeypatch, name
):
    from hunts import presence

    def cache_failed(heads):  # as record_heads answers when the cache could not record them (logged there)
        return None

    monkeypatch.setattr(presence, "record_heads", cache_failed)  # a team's socket: in the presence check
    monkeypatch.setattr(consumers, "record_heads", cache_failed)  # a staff socket without a team
    seen = spy_joins_and_heads(monkeypatch)
    await database_sync_to_async(services.post_announcement)(hunt=world.hunt, text="Welcome")

    socket = await sockets(token=world.tokens[name])
    hello = await receive(socket)

    assert hello["hunt_seq"] == 1
    assert hello["team_seq"] == (0 if name == "ann" else None)
    assert seen == [("join", True), ("greet", True), ("cached heads",), ("database heads", True)]


async def test_a_connect_whose_groups_cannot_be_joined_is_closed_1011(world, sockets, monkeypatch, caplog):
    async def join_groups(self):
        raise ConnectionError("the layer is gone")

    monkeypatch.setattr(consumers.HuntConsumer, "join_groups", join_groups)
    socket = await sockets(token=world.tokens["ann"])
    assert socket.accepted
    assert await closed_with(socket) == 1011
    assert "could not open the live stream" in caplog.text


async def test_a_connect_held_up_joining_its_groups_is_closed_1011_and_its_join_cancelled(
    world, sockets, monkeypatch, caplog
):
    cancelled = asyncio.Event()

    async def join_groups(self):
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    monkeypatch.setattr(consumers, "JOIN_TIMEOUT", 0.2)
    monkeypatch.setattr(consumers.HuntConsumer, "join_groups", join_groups)
    socket = await sockets(token=world.tokens["ann"])
    assert await closed_with(socket) == 1011
    await asyncio.wait_for(cancelled.wait(), TIMEOUT)
    assert "could not open the live stream" in caplog.text
