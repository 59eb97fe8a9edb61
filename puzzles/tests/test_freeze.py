"""The leaderboard freeze and post-hunt mode, through the API and the pages."""

from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from hunts.models import Hunt, Team
from puzzles import operations
from puzzles.leaderboard import public_top
from puzzles.models import Solve
from puzzles.services import submit_guess

pytestmark = pytest.mark.django_db


@pytest.fixture
def game(factories, django_capture_on_commit_callbacks):
    """A hunt that ends in 30 minutes with a 60-minute freeze (frozen since 30 minutes ago). Gulls solved the
    lighthouse two hours ago, before the freeze."""
    now = timezone.now()
    hunt = factories.HuntFactory(
        slug="harbour",
        starts_at=now - timedelta(hours=3),
        ends_at=now + timedelta(minutes=30),
        freeze_minutes=60,
        guess_limit_guesses=None,
    )
    lighthouse = factories.PuzzleFactory(
        hunt=hunt, slug="lighthouse", title="The Lighthouse", solution="Count the **flashes**."
    )
    factories.AnswerFactory(puzzle=lighthouse, parameters={"value": "BRIGHT BEAM"})
    gulls = factories.MembershipFactory(team__hunt=hunt, team__name="Gulls", user__username="ann")
    terns = factories.MembershipFactory(team__hunt=hunt, team__name="Terns", user__username="bob")
    with django_capture_on_commit_callbacks(execute=True):
        submit_guess(team=gulls.team, user=gulls.user, puzzle_slug="lighthouse", text="bright beam")
    before = now - timedelta(hours=2)
    Solve.objects.filter(team=gulls.team).update(solved_at=before)
    Team.objects.filter(pk=gulls.team.pk).update(last_scored_at=before)
    staff = factories.UserFactory(username="sam", is_staff=True)
    return SimpleNamespace(hunt=hunt, gulls=gulls, terns=terns, staff=staff, before=before)


def client_of(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def board(client) -> list[tuple[str, int, int]]:
    rows = client.get("/api/hunts/harbour/leaderboard/").json()["results"]
    return [(row["team"]["name"], row["score"], row["rank"]) for row in rows]


def test_during_the_freeze_the_public_board_stops_changing_and_staff_see_the_live_one(
    game, django_capture_on_commit_callbacks
):
    frozen = board(client_of())
    assert frozen == [("Gulls", 10, 1), ("Terns", 0, 2)]

    with django_capture_on_commit_callbacks(execute=True):
        response = client_of(game.terns.user).post(
            "/api/hunts/harbour/puzzles/lighthouse/guesses/", {"answer": "bright beam"}, format="json"
        )
        operations.adjust_score(team=game.terns.team, points=5, reason="Costume", staff=game.staff)
    assert response.status_code == 201 and response.json()["status"] == "correct"

    assert board(client_of()) == frozen
    assert board(client_of(game.gulls.user)) == frozen
    assert board(client_of(game.staff)) == [("Terns", 15, 1), ("Gulls", 10, 2)]
    staff_live = client_of(game.staff).get("/api/hunts/harbour/staff/leaderboard/").json()["results"]
    assert [row["score"] for row in staff_live] == [15, 10]
    # A team sees its own live score, and its rank on the frozen board.
    team = client_of(game.terns.user).get("/api/hunts/harbour/team/").json()
    assert (team["score"], team["rank"]) == (15, 2)
    hunt = client_of(game.terns.user).get("/api/hunts/harbour/").json()
    freeze_at = datetime.fromisoformat(hunt["freeze_at"].replace("Z", "+00:00"))
    assert freeze_at == game.hunt.ends_at - timedelta(minutes=60)


def test_the_clocks_top_of_the_board_is_the_frozen_one_during_the_freeze(
    game, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        submit_guess(team=game.terns.team, user=game.terns.user, puzzle_slug="lighthouse", text="bright beam")

    top = [(row["team"]["name"], row["score"], row["rank"]) for row in public_top(game.hunt, 10)]

    assert top == [("Gulls", 10, 1), ("Terns", 0, 2)]


def test_the_chart_stops_at_the_freeze_for_everyone_but_staff(game, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        submit_guess(team=game.terns.team, user=game.terns.user, puzzle_slug="lighthouse", text="bright beam")

    public = client_of().get("/api/hunts/harbour/leaderboard/chart/").json()
    live = client_of(game.staff).get("/api/hunts/harbour/leaderboard/chart/").json()

    steps = {s["team"]["name"]: [step["score"] for step in s["steps"]] for s in public["series"]}
    assert steps == {"Gulls": [10], "Terns": []}
    assert public["frozen_at"] is not None and public["end"] == public["frozen_at"]
    assert {s["team"]["name"]: s["score"] for s in live["series"]} == {"Gulls": 10, "Terns": 10}


def test_the_board_thaws_at_the_end_and_then_stays_final(game, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        submit_guess(team=game.terns.team, user=game.terns.user, puzzle_slug="lighthouse", text="bright beam")
        Hunt.objects.filter(pk=game.hunt.pk).update(ends_at=timezone.now() - timedelta(seconds=1))
    final = board(client_of())
    assert final == [("Gulls", 10, 1), ("Terns", 10, 2)]  # tied on score: the earlier last score ranks first

    # After the end guesses are judged, and score nothing.
    with django_capture_on_commit_callbacks(execute=True):
        response = client_of(game.gulls.user).post(
            "/api/hunts/harbour/puzzles/lighthouse/guesses/", {"answer": "whatever"}, format="json"
        )
    assert response.status_code == 400  # Gulls solved it already
    assert board(client_of()) == final


def test_after_the_end_guesses_are_judged_unscored_and_the_solution_is_published(game, factories):
    Hunt.objects.filter(pk=game.hunt.pk).update(ends_at=timezone.now() - timedelta(minutes=1))
    terns = client_of(game.terns.user)
    detail = terns.get("/api/hunts/harbour/puzzles/lighthouse/").json()
    assert detail["answer"] == "BRIGHT BEAM"
    assert "<strong>flashes</strong>" in detail["solution"]

    wrong = terns.post("/api/hunts/harbour/puzzles/lighthouse/guesses/", {"answer": "dim"}, format="json")
    right = terns.post(
        "/api/hunts/harbour/puzzles/lighthouse/guesses/", {"answer": "bright beam"}, format="json"
    )

    assert (wrong.status_code, wrong.json()["status"]) == (201, "incorrect")
    assert (right.status_code, right.json()["status"]) == (201, "correct")
    team = terns.get("/api/hunts/harbour/team/").json()
    assert (team["score"], team["solves"]) == (0, 0)
    assert Solve.objects.get(team=game.terns.team).post_hunt


def test_before_the_end_neither_the_answer_nor_the_solution_is_published(game):
    detail = client_of(game.terns.user).get("/api/hunts/harbour/puzzles/lighthouse/").json()
    assert "answer" not in detail and "solution" not in detail
    page = client_of(game.terns.user)
    page.force_login(game.terns.user)
    html = page.get("/hunts/harbour/puzzles/lighthouse/").content.decode()
    assert "flashes" not in html


def test_the_puzzle_page_after_the_end_shows_the_solution_and_still_takes_guesses(game, client):
    Hunt.objects.filter(pk=game.hunt.pk).update(ends_at=timezone.now() - timedelta(minutes=1))
    client.force_login(game.terns.user)

    html = client.get("/hunts/harbour/puzzles/lighthouse/").content.decode()
    assert 'id="published-solution"' in html and "<strong>flashes</strong>" in html
    assert 'id="guess-form"' in html and "no longer score" in html

    response = client.post("/hunts/harbour/puzzles/lighthouse/guess/", {"answer": "bright beam"})
    assert response.status_code == 302
    assert Solve.objects.get(team=game.terns.team).points == 0


def test_the_leaderboard_page_is_public_and_says_it_is_frozen(game, client):
    response = client.get("/hunts/harbour/leaderboard/")

    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="leaderboard-frozen"' in html and "<svg" in html
    assert [row["team"]["name"] for row in response.context["rows"]] == ["Gulls", "Terns"]
