"""Exports of results, solves, finds and guesses: content, formats, the command, the admin action, the API."""

import csv
import io
import json
from datetime import timedelta

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from hunts.events import iso
from hunts.models import Hunt, Team
from puzzles import exports
from puzzles.models import Guess, Solve, TreasureFind
from puzzles.services import claim_treasure, submit_guess

pytestmark = pytest.mark.django_db


@pytest.fixture
def hunt(factories, django_capture_on_commit_callbacks):
    """Gulls solved the lighthouse and found the chest; Terns guessed a formula; a hidden testsolving team."""
    hunt = factories.HuntFactory(slug="harbour", guess_limit_guesses=None)
    lighthouse = factories.PuzzleFactory(hunt=hunt, slug="lighthouse", title="The Lighthouse", points=10)
    factories.AnswerFactory(puzzle=lighthouse, parameters={"value": "BRIGHT BEAM"})
    chest = factories.TreasureFactory(hunt=hunt, slug="chest", name="The Chest", bonus=[7])
    gulls = factories.MembershipFactory(team__hunt=hunt, team__name="Gulls", user__username="ann")
    factories.MembershipFactory(team=gulls.team, user__username="amy")
    terns = factories.MembershipFactory(team__hunt=hunt, team__name="Terns", user__username="bob")
    testers = factories.MembershipFactory(
        team__hunt=hunt, team__name="Testers", team__hidden=True, user__username="tess"
    )
    with django_capture_on_commit_callbacks(execute=True):
        submit_guess(team=gulls.team, user=gulls.user, puzzle_slug="lighthouse", text="bright beam")
        claim_treasure(team=gulls.team, treasure=chest)
        submit_guess(team=terns.team, user=terns.user, puzzle_slug="lighthouse", text="=HYPERLINK(1)")
        submit_guess(team=terns.team, user=terns.user, puzzle_slug="lighthouse", text="-3")
        submit_guess(team=testers.team, user=testers.user, puzzle_slug="lighthouse", text="bright beam")
    return hunt


def csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_results_list_the_ranked_teams_then_the_hidden_ones(hunt):
    rows = csv_rows(exports.render(hunt, "results", "csv"))

    assert [(r["rank"], r["team"], r["score"], r["solves"], r["hidden"]) for r in rows] == [
        ("1", "Gulls", "17", "1", "false"),
        ("2", "Terns", "0", "0", "false"),
        ("", "Testers", "10", "1", "true"),
    ]
    assert rows[0]["members"] == "ann amy"
    assert rows[0]["last_scored_at"] == iso(Team.objects.get(name="Gulls").last_scored_at)


def test_solves_and_finds_as_json(hunt):
    solves = json.loads(exports.render(hunt, "solves", "json"))
    finds = json.loads(exports.render(hunt, "finds", "json"))

    assert [(s["team"], s["puzzle_slug"], s["points"], s["post_hunt"]) for s in solves] == [
        ("Gulls", "lighthouse", 10, False),
        ("Testers", "lighthouse", 10, False),
    ]
    assert finds == [
        {
            "found_at": iso(TreasureFind.objects.get().found_at),
            "treasure": "The Chest",
            "treasure_slug": "chest",
            "rank": 1,
            "team": "Gulls",
            "team_slug": "gulls",
            "points": 7,
        }
    ]


def test_guesses_keep_every_guess_and_defuse_spreadsheet_formulas(hunt, factories):
    Hunt.objects.filter(pk=hunt.pk).update(ends_at=timezone.now() - timedelta(seconds=1))
    hunt.refresh_from_db()
    late = factories.MembershipFactory(team__hunt=hunt, team__name="Late", user__username="lee")
    submit_guess(team=late.team, user=late.user, puzzle_slug="lighthouse", text="bright beam")

    rows = csv_rows(exports.render(hunt, "guesses", "csv"))

    assert len(rows) == Guess.objects.count() == 5
    terns = [r["answer"] for r in rows if r["team"] == "Terns"]
    assert terns == ["'=HYPERLINK(1)", "-3"]  # a formula is quoted, a number is left alone
    assert [(r["team"], r["status"], r["post_hunt"]) for r in rows][-1] == ("Late", "correct", "true")
    assert json.loads(exports.render(hunt, "guesses", "json"))[1]["answer"] == "=HYPERLINK(1)"


def test_an_empty_export_is_a_header_or_an_empty_array(factories):
    empty = factories.HuntFactory()
    assert (
        exports.render(empty, "solves", "csv")
        == "solved_at,team,team_slug,puzzle,puzzle_slug,points,post_hunt\n"
    )
    assert json.loads(exports.render(empty, "guesses", "json")) == []


def test_the_command_writes_the_export_to_a_file(hunt, tmp_path):
    out = tmp_path / "solves.csv"

    call_command("export_results", "harbour", "--what", "solves", "--format", "csv", "-o", str(out))

    assert [r["team"] for r in csv_rows(out.read_text())] == ["Gulls", "Testers"]
    assert Solve.objects.count() == 2


def test_the_admin_action_downloads_the_chosen_export(hunt, admin_client):
    url = reverse("admin:hunts_hunt_changelist")
    chosen = {"action": "export_results", ACTION_CHECKBOX_NAME: [hunt.pk]}

    page = admin_client.post(url, chosen)
    download = admin_client.post(url, {**chosen, "apply": "yes", "what": "finds", "format": "json"})

    assert page.status_code == 200 and b"Download" in page.content
    assert download["Content-Disposition"] == 'attachment; filename="harbour-finds.json"'
    assert json.loads(download.content)[0]["team"] == "Gulls"


def test_the_staff_api_exports_and_players_cannot(hunt, factories):
    staff, player = APIClient(), APIClient()
    staff.force_authenticate(factories.UserFactory(is_staff=True))
    player.force_authenticate(Team.objects.get(name="Gulls").memberships.first().user)

    response = staff.get("/api/hunts/harbour/staff/exports/results/?as=csv")

    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert csv_rows(response.content.decode())[0]["team"] == "Gulls"
    assert staff.get("/api/hunts/harbour/staff/exports/nothing/").status_code == 404
    assert player.get("/api/hunts/harbour/staff/exports/results/").status_code == 403
    assert APIClient().get("/api/hunts/harbour/staff/exports/results/").status_code == 401
