"""Races on PostgreSQL: many requests at once for the same team, and each rule still holds exactly once.

Two kinds of racers: HTTP requests against two daphne processes (the production stack of
testing/processes.py on the test database), and threads calling the services directly, each thread with
its own database connection, released together by a barrier. Every race has a twin run with its guard
removed (row locks switched off, in daphne by hunts/tests/integration/unguarded_daphne.py, in threads by
monkeypatching `select_for_update`; and the unique constraint behind it dropped where one would hide the
race) that must then break, proving the race test can fail.
"""

import asyncio
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.db import connection
from django.db.models.query import QuerySet

from hunts import services as hunt_services
from hunts.models import Event, Hunt, Membership, Team
from puzzles import services as play
from puzzles.models import Answer, Hint, HintUnlock, Puzzle, Solve, Unlock
from testing import factories
from testing.live import LiveClient, make_world
from testing.processes import Stack
from treasurehunt import hotsql

from . import base_url, unguarded_daphne

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

TIMEOUT = 60


Reply = tuple[int, dict[str, str], dict]


IN_FLIGHT = 100  # requests open at once, 50 per process: well past each process's pool of 8 connections


async def fire(requests: list[tuple[str, str, str, dict]]) -> list[Reply]:
    """POST every (base URL, token, path, body) as fast as IN_FLIGHT allows; (status, headers, body) in order.

    Unbounded, 1,000 requests at once queue inside daphne for a pool connection longer than the pool's
    timeout on a 2-core machine and are shed as 503s: capacity, not correctness, which this file is about.
    """
    gate = asyncio.Semaphore(IN_FLIGHT)
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    async with httpx.AsyncClient(timeout=TIMEOUT, limits=limits, trust_env=False) as client:

        async def post(base: str, token: str, path: str, body: dict) -> Reply:
            async with gate:
                response = await client.post(
                    base + path, json=body, headers={"Authorization": f"Token {token}"}
                )
            try:
                data = response.json()
            except ValueError:
                data = {"raw": response.text[:200]}
            return response.status_code, dict(response.headers), data

        return await asyncio.gather(*(post(*request) for request in requests))


# --- 1,000 correct guesses from 50 teams over both processes --------------------------------------

ANSWERS = ["BRIGHT BEAM", *(f"BRIGHT BEAM {i}" for i in range(1, 10))]  # ten final answers, all correct


def correct_guess_storm(stack: Stack, webs: tuple[str, ...], teams: int) -> tuple:
    """Each team's two members send 20 correct guesses (10 answers, each twice) at once, over both processes.

    Returns (world, replies by team, puzzle.solved frames by team seen on one socket of each team).
    """
    world = make_world(teams=teams, members=2, hunt_slug="race", answer=ANSWERS[0])
    Answer.objects.bulk_create(
        Answer(puzzle=world.puzzle, kind=Answer.Kind.EXACT, parameters={"value": a}, final=True)
        for a in ANSWERS[1:]
    )
    path = f"/api/hunts/{world.hunt.slug}/puzzles/{world.puzzle.slug}/guesses/"
    urls = [base_url(stack, web) for web in webs]
    requests, owners = [], []
    for t, members in enumerate(world.members):
        for i in range(20):
            token = members[i % 2][1]
            requests.append((urls[(t + i) % len(urls)], token, path, {"answer": ANSWERS[i % 10]}))
            owners.append(t)

    async def scenario():
        sockets = [
            LiveClient(urls[t % len(urls)], world.hunt.slug, members[0][1])
            for t, members in enumerate(world.members)
        ]
        await asyncio.gather(*(s.connect() for s in sockets))
        try:
            started = time.monotonic()
            replies = await fire(requests)
            took = time.monotonic() - started
            await asyncio.gather(*(s.catch_up() for s in sockets))
            # A frame that came live after a gap is replayed too: count distinct seqs.
            solved = [len({f["seq"] for _, f in s.frames if f["type"] == "puzzle.solved"}) for s in sockets]
        finally:
            await asyncio.gather(*(s.close() for s in sockets))
        return replies, solved, took

    replies, solved, took = asyncio.run(scenario())
    by_team: dict[int, list[Reply]] = {t: [] for t in range(teams)}
    for owner, reply in zip(owners, replies, strict=True):
        by_team[owner].append(reply)
    statuses = Counter(r[0] for r in replies)
    print(f"\n{len(requests)} correct guesses from {teams} teams in {took:.1f} s: {statuses}")
    return world, by_team, solved


def assert_one_solve_per_team(world, by_team: dict[int, list[Reply]], solved: list[int]) -> None:
    statuses = Counter(status for replies in by_team.values() for status, _, _ in replies)
    assert not [s for s in statuses if s >= 500], statuses
    for replies in by_team.values():
        # One guess judged correct (201), its twin a repeat (200), every other answer "Already solved" (400).
        assert Counter(status for status, _, _ in replies) == Counter({201: 1, 200: 1, 400: 18}), replies
    assert Solve.objects.filter(puzzle=world.puzzle).count() == len(by_team)
    per_team = Counter(
        Event.objects.filter(hunt=world.hunt, kind="puzzle.solved").values_list("team_id", flat=True)
    )
    assert sorted(per_team.values()) == [1] * len(by_team)
    assert solved == [1] * len(by_team)
    scores = Team.objects.filter(hunt=world.hunt).values_list("score", "solve_count")
    assert set(scores) == {(world.puzzle.points, 1)}


def test_1000_correct_guesses_from_50_teams_over_both_processes_solve_each_team_exactly_once(stack):
    stack.ensure("web1", "web2")

    world, by_team, solved = correct_guess_storm(stack, ("web1", "web2"), teams=50)

    assert_one_solve_per_team(world, by_team, solved)


@pytest.fixture
def unguarded_webs(stack):
    """Starts three daphne processes without row locks, `slow` steps slower (killed after the test)."""
    names = ("bare1", "bare2", "bare3")

    def start(slow: str = "") -> tuple[str, ...]:
        for name in names:
            unguarded_daphne.start(stack, name, unguard="locks", slow=slow)
        return names

    yield start
    for name in names:
        if stack.running(name):
            stack.kill(name)


def test_without_the_team_lock_and_the_unique_solve_the_same_storm_solves_twice(
    stack, unguarded_webs, drop_constraints
):
    drop_constraints(Event, "event_team_seq_unique")
    drop_constraints(Solve, "solve_once")

    world, by_team, solved = correct_guess_storm(stack, unguarded_webs(), teams=20)

    with pytest.raises(AssertionError):
        assert_one_solve_per_team(world, by_team, solved)
    solves = Counter(Solve.objects.filter(puzzle=world.puzzle).values_list("team_id", flat=True))
    print(f"without the lock: {sum(n - 1 for n in solves.values())} extra solves")
    assert max(solves.values()) > 1


# --- 200 distinct wrong guesses against a limit of 20 ------------------------------------------------


def wrong_guess_storm(stack: Stack, webs: tuple[str, ...], *, hunt_slug: str = "limit") -> list[Reply]:
    world = make_world(teams=1, members=4, hunt_slug=hunt_slug)
    Hunt.objects.filter(pk=world.hunt.pk).update(guess_limit_guesses=20, guess_limit_minutes=10)
    path = f"/api/hunts/{world.hunt.slug}/puzzles/{world.puzzle.slug}/guesses/"
    urls = [base_url(stack, web) for web in webs]
    tokens = [token for _, token in world.members[0]]
    requests = [(urls[i % len(urls)], tokens[i % 4], path, {"answer": f"WRONG {i}"}) for i in range(200)]
    replies = asyncio.run(fire(requests))
    print(f"\n200 distinct wrong guesses against a limit of 20: {Counter(r[0] for r in replies)}")
    return replies


def assert_20_accepted_and_180_told_when_to_retry(replies: list[Reply]) -> None:
    assert Counter(status for status, _, _ in replies) == Counter({201: 20, 429: 180})
    for status, headers, body in replies:
        if status == 429:
            assert int(headers["retry-after"]) == body["retry_after"] >= 1
            assert body["retry_after"] <= 600


def test_200_distinct_wrong_guesses_against_a_limit_of_20_accept_exactly_20(stack):
    stack.ensure("web1", "web2")

    replies = wrong_guess_storm(stack, ("web1", "web2"))

    assert_20_accepted_and_180_told_when_to_retry(replies)


def test_without_the_team_lock_the_guess_limit_lets_more_than_20_through(
    stack, unguarded_webs, drop_constraints
):
    drop_constraints(Event, "event_team_seq_unique")

    webs = unguarded_webs(slow="puzzles.services._check_guess_limit")
    # Requests that check the limit in lockstep can land exactly on 20 by chance: the race must show
    # within a few storms, each on a fresh hunt.
    for attempt in range(4):
        replies = wrong_guess_storm(stack, webs, hunt_slug=f"limit-{attempt}")
        if Counter(status for status, _, _ in replies)[201] > 20:
            break
    with pytest.raises(AssertionError):
        assert_20_accepted_and_180_told_when_to_retry(replies)
    assert Counter(status for status, _, _ in replies)[201] > 20


# --- Services called from threads, each with its own connection ------------------------------------


def at_once(calls: list[Callable[[], object]]) -> list[str]:
    """Run every call in its own thread, released together; returns each outcome as a short string."""
    barrier = threading.Barrier(len(calls))

    def run(call) -> str:
        try:
            barrier.wait()
            return str(call())
        except Exception as exc:
            return type(exc).__name__
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


@pytest.fixture
def without_locks(monkeypatch):
    """Row locks off in this process: every lock helper (and the guess path's own lock) becomes a no-op."""
    monkeypatch.setattr(QuerySet, "select_for_update", lambda self, *args, **kwargs: self)
    monkeypatch.setattr(hotsql, "ROW_LOCKS", False)


@pytest.fixture
def drop_constraints():
    """Drops named constraints in the test database for one test; deletes the rows and restores them after."""
    dropped = []

    def drop(model, name: str) -> None:
        constraint = next(c for c in model._meta.constraints if c.name == name)
        with connection.schema_editor() as editor:
            editor.remove_constraint(model, constraint)
        dropped.append((model, constraint))

    yield drop
    for model, constraint in dropped:
        model.objects.all().delete()
        with connection.schema_editor() as editor:
            editor.add_constraint(model, constraint)


def held_together(monkeypatch, owner, name: str, *, parties: int = 2, when=None, timeout: float = 5.0):
    """Hold a race window open (for the twins only): the first `parties` calls of `owner.name` (those for
    which `when(*args, **kwargs)` holds, if given) return only once all of them have run, or after
    `timeout`; so each has read before any of them writes. Later calls go straight through. Widening the
    window by a sleep left the race to the pool's timing: a slow VM served the callers one at a time."""
    original = getattr(owner, name)
    barrier = threading.Barrier(parties)
    lock = threading.Lock()
    calls = 0

    def held(*args, **kwargs):
        nonlocal calls
        result = original(*args, **kwargs)
        if when is None or when(*args, **kwargs):
            with lock:
                calls += 1
                wait = calls <= parties
            if wait:
                # The others never came (the guard held them back): the race did not happen.
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait(timeout)
        return result

    monkeypatch.setattr(owner, name, held)


# Solves crossing an unlock threshold ----------------------------------------------------------------

TEAMS = 20


@pytest.fixture
def threshold_hunt():
    """Per team two members; puzzles A and B open, C opens after 2 solves."""
    hunt = factories.HuntFactory(guess_limit_guesses=None)
    first = factories.PuzzleFactory(hunt=hunt, slug="a", points=10)
    factories.AnswerFactory(puzzle=first, parameters={"value": "ALPHA"})
    second = factories.PuzzleFactory(hunt=hunt, round=first.round, slug="b", points=10)
    factories.AnswerFactory(puzzle=second, parameters={"value": "BRAVO"})
    third = factories.PuzzleFactory(hunt=hunt, round=first.round, slug="c", has_rules=True, unlock_solves=2)
    teams = []
    for _ in range(TEAMS):
        member = factories.MembershipFactory(team__hunt=hunt)
        other = factories.MembershipFactory(team=member.team, hunt=hunt)
        teams.append((member.team, member.user, other.user))
    return third, teams


def solve_both_at_once(teams) -> list[str]:
    calls = []
    for team, ann, bob in teams:
        calls.append(
            lambda t=team, u=ann: play.submit_guess(team=t, user=u, puzzle_slug="a", text="alpha")[0].status
        )
        calls.append(
            lambda t=team, u=bob: play.submit_guess(team=t, user=u, puzzle_slug="b", text="bravo")[0].status
        )
    return at_once(calls)


def assert_one_unlock_each(third: Puzzle, teams, outcomes: list[str]) -> None:
    assert outcomes == ["correct"] * (2 * len(teams))
    unlocks = Counter(Unlock.objects.filter(puzzle=third).values_list("team_id", flat=True))
    assert unlocks == Counter({team.pk: 1 for team, _, _ in teams})
    frames = Counter(
        e.team_id for e in Event.objects.filter(kind="puzzle.unlocked") if e.data["puzzle"]["slug"] == "c"
    )
    assert frames == unlocks
    assert set(
        Team.objects.filter(pk__in=[t.pk for t, _, _ in teams]).values_list("score", "solve_count")
    ) == {(20, 2)}


def test_concurrent_solves_crossing_an_unlock_threshold_unlock_exactly_once_each(threshold_hunt):
    third, teams = threshold_hunt

    outcomes = solve_both_at_once(teams)

    assert_one_unlock_each(third, teams, outcomes)


def test_without_locks_concurrent_solves_lose_or_double_the_unlock(
    threshold_hunt, without_locks, drop_constraints, monkeypatch
):
    third, teams = threshold_hunt
    drop_constraints(Event, "event_team_seq_unique")
    drop_constraints(Unlock, "unlock_once")
    held_together(monkeypatch, play, "_solved_map")  # both read the team's solves before either commits

    outcomes = solve_both_at_once(teams[:1])

    with pytest.raises(AssertionError):
        assert_one_unlock_each(third, teams[:1], outcomes)


# Concurrent hint purchases ---------------------------------------------------------------------------

BUYERS = 5


@pytest.fixture
def hint_shop():
    """Per team a score of 20 and BUYERS members; one hint costs 5."""
    hunt = factories.HuntFactory(guess_limit_guesses=None)
    puzzle = factories.PuzzleFactory(hunt=hunt, slug="p")
    hint = factories.HintFactory(puzzle=puzzle, cost=5, text="Look up.")
    teams = [factories.TeamFactory(hunt=hunt, score=20) for _ in range(TEAMS)]
    return hint, teams


def buy_at_once(hint: Hint, teams) -> list[str]:
    calls = [
        lambda t=team: play.unlock_hint(team=t, puzzle_slug="p", hint_id=hint.pk)[1]
        for team in teams
        for _ in range(BUYERS)
    ]
    return at_once(calls)


def assert_charged_once(hint: Hint, teams, outcomes: list[str]) -> None:
    assert Counter(outcomes) == Counter({"True": len(teams), "False": len(teams) * (BUYERS - 1)})
    assert Counter(HintUnlock.objects.filter(hint=hint).values_list("team_id", flat=True)) == Counter(
        {team.pk: 1 for team in teams}
    )
    assert set(Team.objects.filter(pk__in=[t.pk for t in teams]).values_list("score", flat=True)) == {15}
    events = Counter(Event.objects.filter(kind="hint.unlocked").values_list("team_id", flat=True))
    assert events == Counter({team.pk: 1 for team in teams})


def test_concurrent_purchases_of_a_hint_charge_once(hint_shop):
    hint, teams = hint_shop

    outcomes = buy_at_once(hint, teams)

    assert_charged_once(hint, teams, outcomes)


def test_without_locks_and_the_unique_unlock_a_hint_is_charged_more_than_once(
    hint_shop, without_locks, drop_constraints, monkeypatch
):
    hint, teams = hint_shop
    drop_constraints(Event, "event_team_seq_unique")
    drop_constraints(HintUnlock, "hint_unlocked_once")
    held_together(monkeypatch, play, "puzzle_unlocked_at")  # two buyers past the "already bought?" read

    outcomes = buy_at_once(hint, teams[:1])

    with pytest.raises(AssertionError):
        assert_charged_once(hint, teams[:1], outcomes)
    assert HintUnlock.objects.filter(hint=hint).count() > 1


# Concurrent joins of a team with one free place -----------------------------------------------------

JOINERS = 5


@pytest.fixture
def nearly_full_teams(django_user_model):
    """Teams of 3 in a hunt of teams of 4, and JOINERS players per team holding its join code."""
    hunt = factories.HuntFactory(max_team_size=4)
    teams = []
    for t in range(TEAMS):
        team = factories.TeamFactory(hunt=hunt)
        for _ in range(3):
            factories.MembershipFactory(team=team, hunt=hunt)
        joiners = [factories.UserFactory(username=f"joiner-{t}-{j}") for j in range(JOINERS)]
        teams.append((team, joiners))
    return hunt, teams


def join_at_once(hunt: Hunt, teams) -> list[str]:
    calls = [
        lambda u=user, t=team: hunt_services.join_team(hunt=hunt, user=u, join_code=t.join_code).slug
        for team, joiners in teams
        for user in joiners
    ]
    return at_once(calls)


def assert_exactly_one_joins_each(hunt: Hunt, teams, outcomes: list[str]) -> None:
    assert Counter(outcomes) == Counter(
        {**{team.slug: 1 for team, _ in teams}, "ValidationError": len(teams) * (JOINERS - 1)}
    )
    sizes = Counter(Membership.objects.filter(hunt=hunt).values_list("team_id", flat=True))
    assert sizes == Counter({team.pk: 4 for team, _ in teams})
    joined = Counter(Event.objects.filter(kind="member.joined").values_list("team_id", flat=True))
    assert joined == Counter({team.pk: 1 for team, _ in teams})


def test_concurrent_joins_of_a_team_with_one_free_place_let_exactly_one_in(nearly_full_teams):
    hunt, teams = nearly_full_teams

    outcomes = join_at_once(hunt, teams)

    assert_exactly_one_joins_each(hunt, teams, outcomes)


def test_without_locks_concurrent_joins_overfill_the_team(
    nearly_full_teams, without_locks, drop_constraints, monkeypatch
):
    hunt, teams = nearly_full_teams
    drop_constraints(Event, "event_team_seq_unique")
    # Two joiners past the team's head count before either adds a member.
    held_together(monkeypatch, QuerySet, "count", when=lambda qs: qs.model is Membership)
    outcomes = join_at_once(hunt, teams[:1])

    assert Counter(outcomes)["ValidationError"] < JOINERS - 1  # more than one got in
    sizes = Counter(Membership.objects.filter(hunt=hunt).values_list("team_id", flat=True))
    assert max(sizes.values()) > hunt.max_team_size
