"""The production stack for real: PostgreSQL, a private Redis, two daphne, Celery workers per queue and beat.

The processes are started once for this module (testing/processes.py) against the pytest-django test
database and are killed with their process groups at the end, or as a test needs. Tests commit their data
(`transaction=True`) so that the processes see it, and talk to them only over HTTP, WebSockets and Redis.
Each race or fault test has a twin with its guard removed that must break, proving the test can fail.
"""

import json
import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import timedelta

import httpx
import pytest
from django.db import connection
from django.db.models.query import QuerySet
from django.utils import timezone
from rest_framework.authtoken.models import Token
from websockets.sync.client import ClientConnection, connect

from hunts.errors import Conflict
from hunts.models import Event, Hunt, Team
from puzzles import tasks
from puzzles.models import Answer, Guess, Solve, Treasure, TreasureFind
from puzzles.normalize import exact_key
from puzzles.services import SWEEP_AFTER, claim_treasure_by_code
from testing import factories
from testing.processes import CLOCK_NICE, RedisServer, Stack, database_url, flush_retrying, wait_until
from treasurehunt.celery import app as celery_app
from treasurehunt.layers import FANOUT_INLINE

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

EIFFEL = "48.8584, 2.2945"
# A sweep runs every 5 s and takes guesses older than SWEEP_AFTER: after this long, plus a margin for the
# judge, a lost check is back. A test without the sweeper waits this long to show it is not.
SWEEPER_DEADLINE = SWEEP_AFTER.total_seconds() + 5 + 5


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    with RedisServer(tmp_path_factory.mktemp("redis")).running() as server:
        yield server


@pytest.fixture(scope="module", autouse=True)
def _flush_despite_busy_processes():
    with flush_retrying():
        yield


@pytest.fixture(scope="module")
def stack(django_db_setup, redis_server, tmp_path_factory):
    """The stack's processes, started by the tests that need them, all killed at the end of the module."""
    url = database_url(connection.settings_dict)  # the test database, e.g. test_postgres
    directory = tmp_path_factory.mktemp("stack")
    with Stack(database_url=url, redis_url=redis_server.url(0), directory=directory).started() as running:
        yield running


@pytest.fixture(autouse=True)
def _after_each_test(request, stack, redis_server):
    """Leftover checks (the sweeper's extra copies) are dropped before the flush; a failure shows the logs."""
    failed = request.session.testsfailed
    yield
    redis_server.client().delete("judge", "treasure")
    if request.session.testsfailed > failed:
        print(stack.logs())


# --- helpers ---------------------------------------------------------------------------------


def make_hunt(**fields) -> Hunt:
    return factories.HuntFactory(guess_limit_guesses=None, **fields)


def make_geo_puzzle(hunt: Hunt, slug: str = "tower", points: int = 20):
    puzzle = factories.PuzzleFactory(hunt=hunt, slug=slug, points=points, all_exact=False)
    factories.AnswerFactory(
        puzzle=puzzle, kind=Answer.Kind.GEO, parameters={"lat": 48.8584, "lng": 2.2945, "radius_m": 150}
    )
    return puzzle


def make_member(team: Team, username: str) -> str:
    """A member of the team; returns their API token."""
    user = factories.MembershipFactory(team=team, hunt=team.hunt, user__username=username).user
    return Token.objects.create(user=user).key


def api(stack: Stack, web: str, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"http://127.0.0.1:{stack[web].port}",
        headers={"Authorization": f"Token {token}"},
        timeout=30,
        trust_env=False,
    )


def post_guess(client: httpx.Client, hunt: Hunt, puzzle: str, answer: str) -> httpx.Response:
    return client.post(f"/api/hunts/{hunt.slug}/puzzles/{puzzle}/guesses/", json={"answer": answer})


@contextmanager
def open_socket(stack: Stack, web: str, token: str, hunt: Hunt) -> Iterator[ClientConnection]:
    """A socket authenticated by token header and without Origin, as an API client opens it; after hello."""
    with connect(
        f"ws://127.0.0.1:{stack[web].port}/ws/hunts/{hunt.slug}/",
        additional_headers={"Authorization": f"Token {token}"},
        proxy=None,
        open_timeout=10,
    ) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello["type"] == "hello", hello
        yield ws


def next_frame(ws, predicate, *, timeout: float) -> dict:
    """The first frame matching predicate within timeout seconds (others are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no matching frame within {timeout} s")
        try:
            frame = json.loads(ws.recv(timeout=left))
        except TimeoutError:
            continue
        if predicate(frame):
            return frame


def make_pending_guess(team: Team, text: str = EIFFEL) -> Guess:
    """A pending guess whose enqueue was lost: only a task sent by the test (or the sweeper) judges it."""
    puzzle = team.hunt.puzzles.get(slug="tower")
    now = timezone.now()
    return Guess.objects.create(
        team=team, puzzle=puzzle, text=text, key=text, created_at=now, enqueued_at=now
    )


def judged_events(team: Team) -> Counter:
    """guess.judged events per guess id."""
    rows = Event.objects.filter(team=team, kind="guess.judged").values_list("data", flat=True)
    return Counter(data["guess"]["id"] for data in rows)


def pending_count(ids) -> int:
    return Guess.objects.filter(pk__in=ids, status=Guess.Status.PENDING).count()


def kill_judge_mid_run(stack: Stack, redis_server: RedisServer, ids: list[int]) -> int:
    """Start the judge on a full queue and kill -9 it while it holds unacknowledged checks.

    Returns how many guesses were judged by then. The checks it held stay in the broker's unacked hash
    until the visibility timeout (5 minutes): only the sweeper brings them back within a test.
    """
    broker = redis_server.client()
    for _ in range(3):
        held_before = broker.hlen("unacked")  # from earlier kills, still waiting for their timeout
        stack.ensure("judge")
        wait_until(
            lambda held=held_before: len(ids) - pending_count(ids) >= 20 and broker.hlen("unacked") > held,
            timeout=30,
            what="the judge working",
            interval=0.01,
        )
        stack.kill("judge")
        if broker.hlen("unacked") > held_before:
            judged = len(ids) - pending_count(ids)
            assert judged < len(ids), "the worker finished before it was killed; the test proves nothing"
            return judged
    raise AssertionError("the judge never held a check at the moment it was killed")


@pytest.fixture
def team_with_tokens():
    """A hunt with a geo puzzle and a team of ann and bob; returns (hunt, team, ann's token, bob's token)."""
    hunt = make_hunt()
    make_geo_puzzle(hunt)
    team = factories.TeamFactory(hunt=hunt)
    return hunt, team, make_member(team, "ann"), make_member(team, "bob")


# --- delivery across processes -------------------------------------------------------------


def test_geo_guess_judged_by_a_worker_reaches_the_teammates_socket(stack, team_with_tokens):
    stack.ensure("web1", "web2", "judge")
    hunt, team, ann, bob = team_with_tokens

    with open_socket(stack, "web2", bob, hunt) as ws, api(stack, "web1", ann) as client:
        response = post_guess(client, hunt, "tower", EIFFEL)
        assert response.status_code in (201, 202), response.text  # 201 if the worker was quicker
        guess_id = response.json()["id"]

        pending = next_frame(ws, lambda f: f["type"] == "guess.pending", timeout=10)
        judged = next_frame(ws, lambda f: f["type"] == "guess.judged", timeout=10)
        solved = next_frame(ws, lambda f: f["type"] == "puzzle.solved", timeout=10)

    assert pending["data"]["guess"]["id"] == guess_id
    assert judged["data"]["guess"]["id"] == guess_id
    assert (judged["data"]["guess"]["status"], judged["data"]["guess"]["user"]) == ("correct", "ann")
    assert judged["seq"] == pending["seq"] + 1
    assert solved["data"]["points"] == 20


def send_judge_tasks(redis_server: RedisServer, ids: list[int]) -> None:
    """Enqueue checks from the test, over one broker connection."""
    with celery_app.connection_for_write(redis_server.url(0)) as broker:
        for guess_id in ids:
            tasks.judge_guess_task.apply_async(args=[guess_id], connection=broker)


def test_worker_publishes_over_one_redis_connection(stack, redis_server, team_with_tokens):
    """Publishing from a sync worker does not open a Redis connection per transaction (40 here)."""
    stack.ensure("judge")
    hunt, team, _, _ = team_with_tokens
    first = [make_pending_guess(team, f"10.{i}, 20.5").pk for i in range(10)]
    send_judge_tasks(redis_server, first)  # both worker processes have their connections from here on
    wait_until(lambda: pending_count(first) == 0, timeout=30, what="the first checks")
    stats = redis_server.client()
    opened = stats.info("stats")["total_connections_received"]

    ids = [make_pending_guess(team, f"11.{i}, 20.5").pk for i in range(40)]
    send_judge_tasks(redis_server, ids)
    wait_until(lambda: pending_count(ids) == 0, timeout=30, what="40 checks")

    assert judged_events(team) == Counter({guess_id: 1 for guess_id in first + ids})
    # One is the test's own broker connection; a connection per publish would be 40 more.
    new_connections = stats.info("stats")["total_connections_received"] - opened
    assert new_connections <= 5, f"{new_connections} new Redis connections for 40 judged guesses"


# --- a supply-3 treasure claimed by 50 teams at once -----------------------------------------


CODE = "SILVER-COIN-77"


def claim_at_once(teams: list[Team]) -> list[str]:
    """Every team claims the code in its own thread with its own connection, released together."""
    barrier = threading.Barrier(len(teams))

    def claim(team: Team) -> str:
        try:
            barrier.wait()
            find, created = claim_treasure_by_code(team=team, code=CODE)
            return f"rank {find.rank}" if created else "repeat"
        except Conflict:
            return "none left"
        except Exception as exc:  # a broken guard shows here as a database error
            return type(exc).__name__
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(teams)) as pool:
        return list(pool.map(claim, teams))


@pytest.fixture
def fifty_teams():
    hunt = make_hunt()
    treasure = factories.TreasureFactory(
        hunt=hunt, code=CODE, code_key=exact_key(CODE), supply=3, bonus=[50, 30, 10]
    )
    return treasure, [factories.MembershipFactory(team__hunt=hunt).team for _ in range(50)]


def assert_ranks_1_to_3_and_bonuses_once(treasure: Treasure, teams: list[Team], outcomes: list[str]) -> None:
    finds = list(TreasureFind.objects.filter(treasure=treasure).order_by("rank", "pk"))
    assert [(f.rank, f.points) for f in finds] == [(1, 50), (2, 30), (3, 10)]
    assert sorted(outcomes) == ["none left"] * 47 + ["rank 1", "rank 2", "rank 3"]
    scores = dict(Team.objects.filter(pk__in=[t.pk for t in teams]).values_list("pk", "score"))
    assert {f.team_id: scores[f.team_id] for f in finds} == {f.team_id: f.points for f in finds}
    assert sum(scores.values()) == 90
    treasure.refresh_from_db()
    assert treasure.found_count == 3
    claimed = Event.objects.filter(hunt=treasure.hunt, team__isnull=True, kind="treasure.claimed")
    assert sorted((e.seq, e.data["rank"], e.data["remaining"]) for e in claimed) == [
        (1, 1, 2),
        (2, 2, 1),
        (3, 3, 0),
    ]


def test_fifty_teams_claiming_a_supply_3_treasure_at_once_get_ranks_1_to_3_and_bonuses_once(fifty_teams):
    treasure, teams = fifty_teams

    outcomes = claim_at_once(teams)

    assert_ranks_1_to_3_and_bonuses_once(treasure, teams, outcomes)


@pytest.fixture
def without_claim_guards(monkeypatch):
    """No row locks, and no unique ranks or hunt event seqs in the test database (restored afterwards)."""
    monkeypatch.setattr(QuerySet, "select_for_update", lambda self, *args, **kwargs: self)
    # A slower bonus lookup widens the window between reading found_count and writing the find.
    bonus_for = Treasure.bonus_for
    monkeypatch.setattr(Treasure, "bonus_for", lambda self, rank: time.sleep(0.05) or bonus_for(self, rank))
    dropped = [
        (TreasureFind, next(c for c in TreasureFind._meta.constraints if c.name == "treasure_rank_unique")),
        (Event, next(c for c in Event._meta.constraints if c.name == "event_hunt_seq_unique")),
    ]
    with connection.schema_editor() as editor:
        for model, constraint in dropped:
            editor.remove_constraint(model, constraint)
    yield
    TreasureFind.objects.all().delete()
    Event.objects.all().delete()
    with connection.schema_editor() as editor:
        for model, constraint in dropped:
            editor.add_constraint(model, constraint)


def test_without_locks_and_constraints_the_same_race_breaks_ranks_or_supply(
    without_claim_guards, fifty_teams
):
    treasure, teams = fifty_teams

    outcomes = claim_at_once(teams)

    with pytest.raises(AssertionError):
        assert_ranks_1_to_3_and_bonuses_once(treasure, teams, outcomes)
    ranks = list(TreasureFind.objects.filter(treasure=treasure).values_list("rank", flat=True))
    print(f"without the guards: {len(ranks)} finds of a supply of 3, ranks {sorted(ranks)}")
    assert len(ranks) > len(set(ranks)) or len(ranks) > 3, ranks


# --- kill -9 of the judge worker during 200 pending checks -----------------------------------


def queue_200_checks(redis_server: RedisServer, team: Team) -> list[int]:
    """200 pending geo guesses (all wrong, so none solves the puzzle), their checks queued for the judge."""
    puzzle = team.hunt.puzzles.get(slug="tower")
    now = timezone.now()
    guesses = Guess.objects.bulk_create(
        Guess(team=team, puzzle=puzzle, text=f"10.{i:04d}, 20.5", key=f"10.{i:04d}, 20.5", created_at=now,
              enqueued_at=now)
        for i in range(200)
    )  # fmt: skip
    ids = [guess.pk for guess in guesses]
    send_judge_tasks(redis_server, ids)
    return ids


def test_kill_9_of_the_judge_during_200_checks_then_a_restart_judges_each_exactly_once(
    stack, redis_server, team_with_tokens
):
    stack.ensure("clock", "beat")
    stack.ensure_stopped("judge")
    _, team, _, _ = team_with_tokens
    ids = queue_200_checks(redis_server, team)

    judged = kill_judge_mid_run(stack, redis_server, ids)
    stack.ensure("judge")
    restarted = time.monotonic()

    wait_until(lambda: pending_count(ids) == 0, timeout=60, what="200 checks after the restart")
    print(f"killed after {judged}/200; all judged {time.monotonic() - restarted:.1f} s after the restart")
    assert judged_events(team) == Counter({guess_id: 1 for guess_id in ids})


def test_without_the_sweeper_a_kill_9_loses_the_checks_in_flight(stack, redis_server, team_with_tokens):
    stack.ensure_stopped("judge", "clock", "beat")
    _, team, _, _ = team_with_tokens
    ids = queue_200_checks(redis_server, team)

    kill_judge_mid_run(stack, redis_server, ids)
    killed_at = time.monotonic()
    stack.ensure("judge")
    wait_until(lambda: redis_server.client().llen("judge") == 0, timeout=60, what="the judge's queue drained")
    # What is pending from here on was lost with the killed worker (redelivered only after 5 minutes).
    time.sleep(max(0.0, killed_at + SWEEPER_DEADLINE - time.monotonic()))

    print(
        f"without the sweeper {pending_count(ids)}/200 still pending {SWEEPER_DEADLINE:.0f} s after the kill"
    )
    assert pending_count(ids) > 0
    assert all(n == 1 for n in judged_events(team).values())


# --- a broker outage during a guess ----------------------------------------------------------


def guess_during_outage(stack: Stack, redis_server: RedisServer, token: str, hunt: Hunt) -> tuple[int, float]:
    """Stop Redis, post a guess, start Redis again on the same port; returns the guess id and the wait."""
    redis_server.stop()
    try:
        with api(stack, "web1", token) as client:
            started = time.monotonic()
            response = post_guess(client, hunt, "tower", EIFFEL)
            elapsed = time.monotonic() - started
    finally:
        redis_server.start()
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "pending"
    return response.json()["id"], elapsed


def test_broker_outage_during_a_guess_gives_no_500_and_the_check_runs_once_the_broker_is_back(
    stack, redis_server, team_with_tokens
):
    stack.ensure("web1", "judge", "clock", "beat")
    hunt, team, ann, _ = team_with_tokens

    guess_id, elapsed = guess_during_outage(stack, redis_server, ann, hunt)

    assert elapsed < 5
    back = time.monotonic()
    wait_until(lambda: pending_count([guess_id]) == 0, timeout=60, what="the check after the outage")
    print(f"202 in {elapsed:.2f} s during the outage; judged {time.monotonic() - back:.1f} s after it")
    assert Guess.objects.get(pk=guess_id).status == Guess.Status.CORRECT
    assert judged_events(team) == Counter({guess_id: 1})
    assert Solve.objects.filter(team=team).count() == 1


def test_without_the_sweeper_a_guess_made_during_an_outage_is_never_checked(
    stack, redis_server, team_with_tokens
):
    stack.ensure("web1", "judge")
    stack.ensure_stopped("clock", "beat")
    hunt, team, ann, _ = team_with_tokens

    guess_id, _ = guess_during_outage(stack, redis_server, ann, hunt)
    time.sleep(SWEEPER_DEADLINE)

    assert pending_count([guess_id]) == 1


# --- the clock ------------------------------------------------------------------------------


def test_the_clocks_worker_and_beat_run_at_a_lower_priority_than_the_judge_as_in_the_procfile(stack):
    stack.ensure("judge", "clock", "beat")

    def niceness(name: str) -> set[int]:
        """Of the role's process and its children (a worker's prefork pool)."""
        root = stack[name].popen.pid
        found = subprocess.run(["pgrep", "-P", str(root)], capture_output=True, text=True).stdout.split()
        return {os.getpriority(os.PRIO_PROCESS, pid) for pid in [root, *map(int, found)]}

    assert niceness("clock") == niceness("beat") == {os.getpriority(os.PRIO_PROCESS, 0) + CLOCK_NICE}
    assert niceness("judge") == {os.getpriority(os.PRIO_PROCESS, 0)}


def test_beat_runs_the_scheduler_that_sleeps_until_an_entry_is_due(stack):
    # treasurehunt.beat.Scheduler, Celery's default for this app: no flag in deploy/Procfile or the stacks.
    stack.ensure("beat")
    assert "scheduler -> treasurehunt.beat.Scheduler" in stack["beat"].log()


def test_the_clocks_leaderboard_push_reaches_each_socket_of_a_large_group_once_and_they_go_on(stack):
    # More sockets than a group message is handed to at once: the push goes out in slices, straight to
    # each socket that has had its hello (treasurehunt/layers.py, `direct`), not through its consumer. From
    # outside daphne both ways look alike, so this checks what a client sees (each socket gets it once and
    # goes on); tests/test_layers.py and hunts/tests/test_direct_push.py tell the direct way from the queue.
    stack.ensure("web1", "clock", "beat")
    hunt = make_hunt()
    factories.AnswerFactory(
        puzzle=factories.PuzzleFactory(hunt=hunt, slug="gate"), parameters={"value": "OPEN"}
    )
    team = factories.TeamFactory(hunt=hunt)
    token = make_member(team, "ann")

    def scored(frame: dict) -> bool:
        return frame["type"] == "leaderboard.updated" and bool(frame["top"]) and frame["top"][0]["score"] > 0

    with ExitStack() as sockets:
        opened = [
            sockets.enter_context(open_socket(stack, "web1", token, hunt)) for _ in range(FANOUT_INLINE + 20)
        ]
        with api(stack, "web1", token) as client:
            assert post_guess(client, hunt, "gate", "open").status_code == 201
        # The clock pushes the new top within a tick or two (at most once per 5 s).
        pushed = [next_frame(ws, scored, timeout=20) for ws in opened]
        assert {json.dumps(frame, sort_keys=True) for frame in pushed} == {
            json.dumps(pushed[0], sort_keys=True)
        }
        assert pushed[0]["top"][0]["team"]["slug"] == team.slug
        # Each got it once, and answers a ping after it.
        for ws in opened:
            ws.send(json.dumps({"type": "ping"}))
        after = [
            next_frame(ws, lambda f: f["type"] in ("pong", "leaderboard.updated"), timeout=10)
            for ws in opened
        ]
        assert [frame["type"] for frame in after] == ["pong"] * len(opened)


def test_timed_unlock_reaches_an_open_socket_within_5_s(stack):
    stack.ensure("web1", "clock", "beat")
    lead = 4
    due = timezone.now() + timedelta(seconds=lead)
    hunt = make_hunt(starts_at=due - timedelta(minutes=10))
    make_geo_puzzle(hunt)
    factories.PuzzleFactory(hunt=hunt, slug="cellar", has_rules=True, unlock_after_minutes=10)
    team = factories.TeamFactory(hunt=hunt)
    token = make_member(team, "ann")

    with open_socket(stack, "web1", token, hunt) as ws:
        unlocked = next_frame(
            ws,
            lambda f: f["type"] == "puzzle.unlocked" and f["data"]["puzzle"]["slug"] == "cellar",
            timeout=lead + 10,
        )
        arrived = timezone.now()

    assert unlocked["stream"] == "team"
    print(f"puzzle.unlocked arrived {(arrived - due).total_seconds():.1f} s after the due time")
    assert (arrived - due).total_seconds() <= 5


# --- the same task run twice ----------------------------------------------------------------


def one_effect(team: Team, guess: Guess, treasure: Treasure) -> None:
    team.refresh_from_db()
    assert judged_events(team) == Counter({guess.pk: 1})
    assert Solve.objects.filter(team=team).count() == 1
    assert TreasureFind.objects.filter(treasure=treasure, team=team).count() == 1
    assert team.score == 20 + 50


@pytest.fixture
def pending_with_treasure(team_with_tokens):
    hunt, team, _, _ = team_with_tokens
    treasure = factories.TreasureFactory(hunt=hunt, supply=3, bonus=[50])
    treasure.requires.set(hunt.puzzles.all())
    return team, make_pending_guess(team), treasure


def test_the_same_task_run_twice_by_the_workers_has_one_effect(stack, redis_server, pending_with_treasure):
    stack.ensure("judge", "treasure")
    team, guess, treasure = pending_with_treasure

    sent = []
    with celery_app.connection_for_write(redis_server.url(0)) as broker:
        for task, arg in ((tasks.judge_guess_task, guess.pk), (tasks.claim_treasures_task, team.pk)):
            for _ in range(2):
                sent.append(task.apply_async(args=[arg], connection=broker).id)
                time.sleep(0.3)  # in order: the claim is due only once the guess is judged

    logs = lambda: stack["judge"].log() + stack["treasure"].log()  # noqa: E731
    wait_until(
        lambda: all(f"[{task_id}] succeeded" in logs() for task_id in sent), timeout=30, what="4 tasks"
    )
    one_effect(team, guess, treasure)


def test_a_judge_that_forgot_the_verdict_would_count_a_second_run_again(monkeypatch, pending_with_treasure):
    team, guess, treasure = pending_with_treasure
    get = QuerySet.get

    def forgetful_get(self, *args, **kwargs):
        found = get(self, *args, **kwargs)
        if isinstance(found, Guess):
            found.status = Guess.Status.PENDING
        return found

    monkeypatch.setattr(QuerySet, "get", forgetful_get)
    for _ in range(2):
        tasks.judge_guess_task.apply(args=[guess.pk])
        tasks.claim_treasures_task.apply(args=[team.pk])

    with pytest.raises(AssertionError):
        one_effect(team, guess, treasure)
