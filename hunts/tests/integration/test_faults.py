"""Faults on the production stack: a daphne process killed, and the database killing our connections.

The stack (testing/processes.py) runs on the pytest-django test database and a private redis-server. A Redis
restart, a killed judge worker and a broker outage are covered by test_live.py and puzzles' test_stack.py.
Each fault test has a twin with its guard removed (clients that reconnect without resuming; a pool that
hands out connections unchecked) that must then break.
"""

import asyncio
import threading
import time
import uuid
from collections import Counter

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection, transaction

from hunts.models import Event, Team
from puzzles.models import Answer, Guess, Puzzle, Solve
from testing.live import STREAMS, LiveClient, make_world
from testing.processes import Stack, wait_until

from . import base_url, unguarded_daphne

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

TIMEOUT = 30


@pytest.fixture(scope="module")
def stack_env() -> dict:
    # Plain HTTP on loopback: cookies must not be Secure-only for the page sessions to work.
    return {"DJANGO_SESSION_COOKIE_SECURE": "0", "DJANGO_CSRF_COOKIE_SECURE": "0"}


# --- A daphne process killed: its clients reconnect to the other and resume --------------------------


def received(clients: list[LiveClient]) -> dict[str, set[int]]:
    """The logged seqs a user's sockets (old and new) received, per stream."""
    seqs: dict[str, set[int]] = {stream: set() for stream in STREAMS}
    for client in clients:
        for _, frame in client.frames:
            if frame.get("stream") in STREAMS and isinstance(frame.get("seq"), int):
                seqs[frame["stream"]].add(frame["seq"])
    return seqs


def logged(hunt, team) -> dict[str, set[int]]:
    return {
        "team": set(Event.objects.filter(team=team).values_list("seq", flat=True)),
        "hunt": set(Event.objects.filter(hunt=hunt, team__isnull=True).values_list("seq", flat=True)),
    }


async def make_events(stack: Stack, web: str, world, round_: str) -> None:
    """A wrong guess by every team and one announcement, through process `web`."""
    base = base_url(stack, web)
    async with httpx.AsyncClient(base_url=base, timeout=TIMEOUT, trust_env=False) as http:
        path = f"/api/hunts/{world.hunt.slug}/puzzles/{world.puzzle.slug}/guesses/"
        for members in world.members:
            response = await http.post(
                path, json={"answer": f"wrong {round_}"}, headers={"Authorization": f"Token {members[0][1]}"}
            )
            assert response.status_code == 201, response.text
        response = await http.post(
            f"/api/hunts/{world.hunt.slug}/announcements/",
            json={"text": f"Announcement {round_}"},
            headers={"Authorization": f"Token {world.staff_token}"},
        )
        assert response.status_code == 201, response.text


def kill_a_daphne_mid_hunt(stack: Stack, *, resume: bool) -> tuple[list[int], object]:
    """10 players on web1, web1 killed, events while they are away, then they reconnect to web2.

    Returns the events each player missed (lost) and the world.
    """
    stack.ensure("web1", "web2")
    world = make_world(teams=5, members=2, hunt_slug="kill")

    async def scenario() -> list[list[LiveClient]]:
        users = [
            [LiveClient(base_url(stack, "web1"), world.hunt.slug, token)]
            for t in world.members
            for _, token in t
        ]
        await asyncio.gather(*(sockets[0].connect() for sockets in users))
        await make_events(stack, "web2", world, "before")
        await asyncio.gather(
            *(s[0].wait_for(lambda f: f["type"] == "announcement.posted", timeout=10) for s in users)
        )

        stack.kill("web1")
        await asyncio.gather(*(wait_closed(s[0]) for s in users))
        await make_events(stack, "web2", world, "while away")

        async def reconnect(sockets: list[LiveClient]) -> None:
            old = sockets[0]
            new = LiveClient(base_url(stack, "web2"), world.hunt.slug, old.token)
            sockets.append(new)
            await new.connect()
            if resume:  # what static/js/live.js does after a reconnect: resume from the seqs it holds
                await new.request(
                    {"type": "resume", **{f"{s}_seq": old.held[s] for s in STREAMS}}, "resume.done"
                )

        await asyncio.gather(*(reconnect(s) for s in users))
        await make_events(stack, "web2", world, "after")
        await asyncio.gather(
            *(
                s[1].wait_for(lambda f: f.get("data", {}).get("text") == "Announcement after", timeout=10)
                for s in users
            )
        )
        for sockets in users:
            await sockets[1].close()
        return users

    users = asyncio.run(scenario())
    lost = []
    for i, sockets in enumerate(users):
        team = world.teams[i // 2]
        expected, got = logged(world.hunt, team), received(sockets)
        lost.append(sum(len(expected[s] - got[s]) for s in STREAMS))
    return lost, world


async def wait_closed(client: LiveClient) -> None:
    deadline = time.monotonic() + 10
    while client.close_code is None:
        assert time.monotonic() < deadline, "the socket did not notice its daphne died"
        await asyncio.sleep(0.05)


def test_a_killed_daphne_s_clients_reconnect_to_the_other_resume_and_lose_no_event(stack):
    lost, world = kill_a_daphne_mid_hunt(stack, resume=True)

    print(f"\n10 players moved from a killed daphne to the other: {sum(lost)} events lost")
    assert lost == [0] * 10
    # Each player had 3 guesses of their team and 3 announcements to receive, 6 of them while away or after.
    assert all(team.event_seq == 3 for team in Team.objects.filter(hunt=world.hunt))


def test_clients_that_reconnect_without_resuming_lose_the_events_of_the_gap(stack):
    lost, _ = kill_a_daphne_mid_hunt(stack, resume=False)

    # The team's guess and the announcement made while they were away.
    assert lost == [2] * 10


# --- The database terminating our connections -------------------------------------------------------


def terminate_backends(*, waiting_on_lock: bool = False) -> int:
    """pg_terminate_backend on the test database's other connections (or only those waiting on a lock)."""
    condition = "AND wait_event_type = 'Lock'" if waiting_on_lock else ""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            f"WHERE datname = current_database() AND pid <> pg_backend_pid() {condition}"
        )
        terminated = cursor.fetchone()[0]
    if connection.pool is not None:
        # This process's own idle pooled connections died too: replace them now (see the test of idle
        # connections below for what the pool does otherwise).
        connection.pool.check()
    return terminated


def geo_puzzle(world) -> Puzzle:
    """A second puzzle whose guesses are judged by the Celery worker (pending first)."""
    puzzle = Puzzle.objects.create(
        hunt=world.hunt, round=world.puzzle.round, slug="tower", title="Tower", points=20, all_exact=False
    )
    Answer.objects.create(
        puzzle=puzzle, kind=Answer.Kind.GEO, parameters={"lat": 48.8584, "lng": 2.2945, "radius_m": 150}
    )
    return puzzle


def page_session(stack: Stack, web: str, username: str, password: str) -> httpx.Client:
    """A browser-like session on the pages: logged in through the login form (CSRF cookie and token)."""
    client = httpx.Client(
        base_url=base_url(stack, web), timeout=TIMEOUT, trust_env=False, follow_redirects=False
    )
    client.get("/accounts/login/")
    response = client.post(
        "/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": client.cookies["csrftoken"]},
        headers={"Referer": f"{base_url(stack, web)}/accounts/login/"},
    )
    assert response.status_code == 302, response.text[:500]
    return client


def set_password(username: str, password: str) -> None:
    """Hashed as the stack's processes hash (the test process itself uses the fast MD5 hasher only)."""
    encoded = PBKDF2PasswordHasher().encode(password, PBKDF2PasswordHasher().salt(), iterations=1000)
    get_user_model().objects.filter(username=username).update(password=encoded)


def hold_team_lock(team_id: int, holder: threading.Event, release: threading.Event) -> None:
    """In its own connection: lock the team row, say so, and keep it until released."""
    with transaction.atomic():
        Team.objects.select_for_update().get(pk=team_id)
        holder.set()
        release.wait(TIMEOUT)
    connection.close()


def terminate_blocked_requests(stack: Stack, web: str) -> dict[str, tuple[httpx.Response, httpx.Response]]:
    """A guess by the API and one by the page form, each waiting on a team lock the test holds, have their
    backends terminated; then each is sent again. Returns (terminated, again) per kind."""
    world = make_world(teams=1, members=2, hunt_slug="terminated")
    (ann, ann_token), (bob, _) = world.members[0]
    team = world.teams[0]
    set_password(bob, "terminated-pass-42")
    page = page_session(stack, web, bob, "terminated-pass-42")
    api = httpx.Client(base_url=base_url(stack, web), timeout=TIMEOUT, trust_env=False)
    api.headers["Authorization"] = f"Token {ann_token}"
    api_path = f"/api/hunts/{world.hunt.slug}/puzzles/{world.puzzle.slug}/guesses/"
    page_path = f"/hunts/{world.hunt.slug}/puzzles/{world.puzzle.slug}/guess/"
    csrf = {"csrfmiddlewaretoken": page.cookies["csrftoken"]}
    referer = {"Referer": f"{base_url(stack, web)}{page_path}"}

    sends = {
        "api": lambda answer: api.post(api_path, json={"answer": answer}),
        "page": lambda answer: page.post(page_path, data={"answer": answer, **csrf}, headers=referer),
    }
    replies = {}
    for kind, send in sends.items():
        holder, release = threading.Event(), threading.Event()
        locker = threading.Thread(target=hold_team_lock, args=(team.pk, holder, release))
        locker.start()
        holder.wait(TIMEOUT)
        result = {}
        sender = threading.Thread(
            target=lambda s=send, k=kind, r=result: r.update(response=s(f"blocked {k}"))
        )
        sender.start()
        wait_until(
            lambda: terminate_backends(waiting_on_lock=True), timeout=TIMEOUT, what="a request on the lock"
        )
        sender.join(TIMEOUT)
        release.set()
        locker.join(TIMEOUT)
        after = send(f"after {kind}")
        replies[kind] = (result["response"], after)
    # Nothing half-written: the terminated transactions left no guess and no event behind.
    assert sorted(Guess.objects.filter(team=team).values_list("text", flat=True)) == [
        "after api",
        "after page",
    ]
    team.refresh_from_db()
    assert (
        sorted(Event.objects.filter(team=team).values_list("seq", flat=True)) == [1, 2] == [1, team.event_seq]
    )
    return replies


def test_a_request_whose_connection_is_terminated_is_a_clean_503_and_the_next_one_succeeds(stack):
    """Deterministic: the request waits on a team lock the test holds when its backend is terminated."""
    stack.ensure("web1")

    replies = terminate_blocked_requests(stack, "web1")

    blocked, after = replies["api"]
    assert blocked.status_code == 503, blocked.text
    assert blocked.headers["Retry-After"] == "5"
    assert blocked.json() == {"detail": "The database is unavailable; try again shortly."}
    assert after.status_code == 201
    blocked, after = replies["page"]
    assert blocked.status_code == 503, blocked.text[:500]
    assert blocked.headers["Retry-After"] == "5" and "text/html" in blocked.headers["Content-Type"]
    assert "reload the page in a few seconds" in blocked.text
    assert after.status_code == 302


def test_without_the_error_mapping_the_same_terminations_are_500s(stack):
    """The twin: with DRF's and Django's own handlers, a dropped connection is a server error."""
    unguarded_daphne.start(stack, "unmapped", unguard="error-mapping")
    try:
        replies = terminate_blocked_requests(stack, "unmapped")
    finally:
        stack.kill("unmapped")

    assert [replies[kind][0].status_code for kind in ("api", "page")] == [500, 500]
    assert [replies[kind][1].status_code for kind in ("api", "page")] == [201, 302]


def test_after_every_idle_connection_is_terminated_requests_recover_with_at_worst_503s(stack):
    """Warm the pool with concurrent requests, terminate every backend, then ask again one by one.

    The pool checks a connection before handing it out, but backs off 1, 2, 4 s between dead ones, so
    the first request can wait out the pool's 10 s timeout (a 503) before the pool is whole again.
    """
    stack.ensure("web1")
    world = make_world(teams=3, members=1, hunt_slug="idle")
    path = f"/api/hunts/{world.hunt.slug}/leaderboard/"
    replies = []
    with httpx.Client(base_url=base_url(stack, "web1"), timeout=TIMEOUT, trust_env=False) as http:
        threads = [threading.Thread(target=http.get, args=(path,)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert terminate_backends() > 0
        for _ in range(10):
            started = time.monotonic()
            response = http.get(path)
            replies.append((response.status_code, round(time.monotonic() - started, 1), response.headers))

    print(f"\nafter terminating every connection: {[(status, took) for status, took, _ in replies]}")
    assert {status for status, _, _ in replies} <= {200, 503}
    assert all(headers["Retry-After"] == "5" for status, _, headers in replies if status == 503)
    assert [status for status, _, _ in replies[-5:]] == [200] * 5


def time_to_recover(urls: list[str], world) -> float:
    """Seconds until both processes answer 10 requests in a row without an error (each may first stall
    on the pool's back-off over dead connections, see the test above)."""
    started = time.monotonic()
    with httpx.Client(timeout=TIMEOUT, trust_env=False) as http:
        for url in urls:
            wait_until(
                lambda u=url: all(
                    http.get(f"{u}/api/hunts/{world.hunt.slug}/leaderboard/").status_code == 200
                    for _ in range(10)
                ),
                timeout=TIMEOUT,
                what=f"{url} answering again",
            )
    return time.monotonic() - started


def test_repeated_terminations_under_load_give_only_503s_and_leave_no_half_written_state(stack):
    """Guesses (judged inline and by the worker) keep coming over both processes while every connection to
    the database is terminated three times; afterwards each stream has no gap, each guess one verdict."""
    stack.ensure("web1", "web2", "judge", "clock", "beat")
    world = make_world(teams=6, members=2, hunt_slug="load")
    tower = geo_puzzle(world)
    urls = [base_url(stack, "web1"), base_url(stack, "web2")]
    stop = threading.Event()
    replies: list[tuple[float, int, str]] = []  # (when, status, client_id)
    lock = threading.Lock()

    def player(t: int, members) -> None:
        with httpx.Client(timeout=TIMEOUT, trust_env=False) as http:
            i = 0
            while not stop.is_set():
                # Exact guesses (judged inline) and geo ones (judged by the worker); the 25th solves the
                # exact puzzle (make_world's answer), after which only geo guesses make sense.
                slug = tower.slug if i % 3 == 2 or i > 25 else world.puzzle.slug
                answer = f"{10 + t}.{i:04d}, 20.5" if slug == tower.slug else f"WRONG {t} {i}"
                if i == 25:
                    answer = "BRIGHT BEAM"
                client_id = uuid.uuid4().hex
                response = http.post(
                    f"{urls[i % 2]}/api/hunts/{world.hunt.slug}/puzzles/{slug}/guesses/",
                    json={"answer": answer, "client_id": client_id},
                    headers={"Authorization": f"Token {members[i % 2][1]}"},
                )
                with lock:
                    replies.append((time.monotonic(), response.status_code, client_id))
                if response.status_code == 503:
                    assert response.headers["Retry-After"] == "5"
                    assert response.json()["detail"].startswith("The database is unavailable")
                i += 1

    players = [threading.Thread(target=player, args=(t, m)) for t, m in enumerate(world.members)]
    for thread in players:
        thread.start()
    terminated = []
    try:
        for _ in range(3):
            time.sleep(1.5)
            terminated.append(terminate_backends())
        time.sleep(1)
    finally:
        stop.set()
        for thread in players:
            thread.join(TIMEOUT)
    recovered_in = time_to_recover(urls, world)

    statuses = Counter(status for _, status, _ in replies)
    print(f"\n{len(replies)} guesses, {terminated} terminated: {statuses}; back in {recovered_in:.0f} s")
    assert all(n > 0 for n in terminated)
    assert set(statuses) <= {200, 201, 202, 503}, statuses
    assert recovered_in < 15

    # Every pending check gets judged (the sweeper re-enqueues what a failed task dropped), exactly once.
    wait_until(
        lambda: not Guess.objects.filter(puzzle__hunt=world.hunt, status=Guess.Status.PENDING).exists(),
        timeout=60,
        what="every pending check judged",
    )
    guesses = Guess.objects.filter(puzzle__hunt=world.hunt)
    accepted = {client_id for _, status, client_id in replies if status in (201, 202)}
    assert accepted <= set(guesses.values_list("client_id", flat=True))
    for team in Team.objects.filter(hunt=world.hunt):
        events = list(Event.objects.filter(team=team).values_list("seq", "kind", "data"))
        seqs = sorted(seq for seq, _, _ in events)
        assert seqs == list(range(1, team.event_seq + 1)), "a gap or a duplicate in the team stream"
        judged = Counter(data["guess"]["id"] for _, kind, data in events if kind == "guess.judged")
        assert judged == Counter({pk: 1 for pk in guesses.filter(team=team).values_list("pk", flat=True)})
        solves = Solve.objects.filter(team=team)
        assert team.solve_count == solves.count() == sum(kind == "puzzle.solved" for _, kind, _ in events)
        assert team.score == sum(solves.values_list("points", flat=True))
