"""Spectators: the hunt followed without logging in (public events, the leaderboard and its chart, a page)."""

import pytest
from rest_framework.test import APIClient

from hunts.models import Hunt
from hunts.services import post_announcement
from puzzles import operations
from puzzles.services import claim_treasure, submit_guess

pytestmark = pytest.mark.django_db


@pytest.fixture
def hunt(factories, django_capture_on_commit_callbacks):
    """Announcement, erratum, treasure claim and clue on the hunt stream: only some of them are public."""
    hunt = factories.HuntFactory(slug="harbour", title="The Harbour")
    staff = factories.UserFactory(is_staff=True)
    puzzle = factories.PuzzleFactory(hunt=hunt, slug="lighthouse", title="The Lighthouse")
    factories.AnswerFactory(puzzle=puzzle, parameters={"value": "BRIGHT BEAM"})
    chest = factories.TreasureFactory(hunt=hunt, name="The Chest", reveal="SECRET-REVEAL", bonus=[5])
    gulls = factories.MembershipFactory(team__hunt=hunt, team__name="Gulls", user__username="ann")
    with django_capture_on_commit_callbacks(execute=True):
        post_announcement(hunt=hunt, text="Welcome aboard.", user=staff)
        operations.post_erratum(puzzle=puzzle, text="ERRATUM-TEXT", staff=staff)
        submit_guess(team=gulls.team, user=gulls.user, puzzle_slug="lighthouse", text="bright beam")
        claim_treasure(team=gulls.team, treasure=chest)
    hunt.refresh_from_db()
    return hunt


def test_anyone_reads_the_public_events_in_order_without_errata(hunt):
    response = APIClient().get("/api/hunts/harbour/public-events/")

    assert response.status_code == 200
    frames = response.json()["results"]
    assert [(f["seq"], f["type"]) for f in frames] == [(1, "announcement.posted"), (3, "treasure.claimed")]
    assert frames[1]["data"]["team"] == {"slug": "gulls", "name": "Gulls"}
    assert "ERRATUM-TEXT" not in response.content.decode()
    after = APIClient().get("/api/hunts/harbour/public-events/?hunt_seq=1").json()["results"]
    assert [f["seq"] for f in after] == [3]


def test_public_events_refuse_a_seq_above_the_head_and_unpublished_hunts(hunt, factories):
    factories.HuntFactory(slug="draft", published=False)

    assert APIClient().get("/api/hunts/harbour/public-events/?hunt_seq=99").status_code == 400
    assert APIClient().get("/api/hunts/harbour/public-events/?hunt_seq=-1").status_code == 400
    assert APIClient().get("/api/hunts/draft/public-events/").status_code == 404


def test_the_leaderboard_and_its_chart_are_public(hunt):
    board = APIClient().get("/api/hunts/harbour/leaderboard/").json()["results"]
    chart = APIClient().get("/api/hunts/harbour/leaderboard/chart/").json()

    assert [(r["team"]["name"], r["score"]) for r in board] == [("Gulls", 15)]
    assert chart["frozen_at"] is None
    assert [(s["team"]["name"], [step["score"] for step in s["steps"]]) for s in chart["series"]] == [
        ("Gulls", [10, 15])
    ]


def test_the_spectator_and_leaderboard_pages_work_without_logging_in(hunt, client):
    page = client.get("/hunts/harbour/spectate/")
    board = client.get("/hunts/harbour/leaderboard/")

    html = page.content.decode()
    assert page.status_code == 200 and board.status_code == 200
    assert "Welcome aboard." in html and "Gulls found <strong>The Chest</strong>" in html
    assert 'http-equiv="refresh"' in html
    assert "ERRATUM-TEXT" not in html and "SECRET-REVEAL" not in html
    assert "<svg" in board.content.decode()
    Hunt.objects.filter(pk=hunt.pk).update(published=False)
    assert client.get("/hunts/harbour/spectate/").status_code == 404
