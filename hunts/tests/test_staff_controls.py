"""Where the live controls are reachable: the staff live view, the staff API and the admin actions.

The rules are tested at the service level (hunts/tests/test_operations.py, puzzles/tests/test_operations.py);
here each interface is wired to its service, staff-only, and shows what happened.
"""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from hunts.admin import HuntAdmin
from hunts.models import Event, Hunt, Membership, Team
from puzzles.admin import TreasureAdmin
from puzzles.models import Answer, Erratum, Puzzle, ScoreAdjustment, Solve, Treasure, Unlock
from puzzles.services import release_due, submit_guess

pytestmark = pytest.mark.django_db


@pytest.fixture
def game(factories):
    hunt = factories.HuntFactory(slug="harbour", guess_limit_guesses=None)
    lighthouse = factories.PuzzleFactory(hunt=hunt, slug="lighthouse", title="The Lighthouse")
    factories.AnswerFactory(puzzle=lighthouse, parameters={"value": "BRIGHT BEAM"})
    vault = factories.PuzzleFactory(
        hunt=hunt, slug="vault", title="The Vault", has_rules=True, unlock_solves=9
    )
    gulls = factories.MembershipFactory(team__hunt=hunt, team__name="Gulls", user__username="ann")
    staff = factories.UserFactory(username="sam", is_staff=True, is_superuser=True)
    return SimpleNamespace(
        hunt=hunt, lighthouse=lighthouse, vault=vault, team=gulls.team, ann=gulls.user, staff=staff
    )


def kinds(team) -> list[str]:
    return list(Event.objects.filter(team=team).order_by("seq").values_list("kind", flat=True))


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- The staff live view ------------------------------------------------------------------------------


@pytest.fixture
def staff_page(client, game):
    client.force_login(game.staff)
    return client


def control(client, name: str, data: dict):
    return client.post(
        reverse("hunts:staff_control", kwargs={"hunt": "harbour", "control": name}), data, follow=True
    )


def test_the_live_view_shows_the_controls(staff_page):
    html = staff_page.get("/staff/hunts/harbour/").content.decode()
    for form in ("control-puzzle", "control-score", "control-team", "control-member", "control-end"):
        assert f'id="{form}"' in html
    assert "/staff/hunts/harbour/puzzles/vault/rejudge/" in html
    assert "/api/hunts/harbour/staff/exports/results/?as=csv" in html


def test_each_control_of_the_live_view_calls_its_service(staff_page, game, factories):
    bob = factories.MembershipFactory(team=game.team, user__username="bob").user
    old_code, old_end = game.team.join_code, game.hunt.ends_at

    steps = [
        (
            "unlock",
            {"puzzle": "vault", "team": "gulls"},
            "The Vault unlocked for Gulls: 1 team(s) newly see it.",
        ),
        ("lock", {"puzzle": "lighthouse", "team": ""}, "The Lighthouse re-locked for every team"),
        (
            "adjust-score",
            {"team": "gulls", "points": "-4", "reason": "Spoilers"},
            "-4 points for Gulls (now -4).",
        ),
        ("hide", {"team": "gulls"}, "Gulls is hidden from the rankings."),
        ("rotate-join-code", {"team": "gulls"}, "New join code for Gulls"),
        ("remove-member", {"username": "bob"}, "bob was removed from Gulls."),
        ("move-end", {"extend_minutes": "30"}, "The hunt now ends"),
        ("erratum", {"puzzle": "vault", "text": "Nine, not six."}, "Erratum posted on The Vault."),
    ]
    for name, data, message in steps:
        response = control(staff_page, name, data)
        assert response.redirect_chain[-1][0].endswith("/staff/hunts/harbour/#controls")
        assert any(m.startswith(message) for m in messages_of(response)), (name, messages_of(response))

    team = Team.objects.get(pk=game.team.pk)
    assert Unlock.objects.filter(team=team, puzzle=game.vault, locked=False).exists()
    assert Unlock.objects.filter(team=team, puzzle=game.lighthouse, locked=True).exists()
    assert (team.score, team.hidden) == (-4, True) and team.join_code != old_code
    assert not Membership.objects.filter(user=bob).exists()
    assert Hunt.objects.get(pk=game.hunt.pk).ends_at == old_end + timedelta(minutes=30)
    assert Erratum.objects.get().text == "Nine, not six."
    for kind in ("puzzle.unlocked", "puzzle.locked", "score.adjusted", "team.hidden", "join_code.rotated"):
        assert kind in kinds(team)


def test_a_refused_control_is_a_message_and_changes_nothing(staff_page, game):
    unknown = control(staff_page, "adjust-score", {"team": "nobody", "points": "5", "reason": "x"})
    no_reason = control(staff_page, "adjust-score", {"team": "gulls", "points": "5", "reason": ""})
    bad_number = control(staff_page, "adjust-score", {"team": "gulls", "points": "many", "reason": "x"})

    assert messages_of(unknown) == ["No team 'nobody' in this hunt."]
    assert messages_of(no_reason) == ["Give the reason; the team sees it."]
    assert messages_of(bad_number)[0].startswith("points:")
    assert not ScoreAdjustment.objects.exists()
    assert staff_page.post("/staff/hunts/harbour/controls/nothing/").status_code == 404


def test_players_cannot_use_the_controls(client, game):
    client.force_login(game.ann)
    response = client.post("/staff/hunts/harbour/controls/adjust-score/", {"team": "gulls", "points": "99"})
    assert response.status_code == 403
    assert client.get("/staff/hunts/harbour/puzzles/lighthouse/rejudge/").status_code == 403
    assert Team.objects.get(pk=game.team.pk).score == 0


def test_the_rejudge_page_previews_then_applies(staff_page, game):
    submit_guess(team=game.team, user=game.ann, puzzle_slug="lighthouse", text="beam light")
    Answer.objects.filter(puzzle=game.lighthouse).update(parameters={"value": "BEAM LIGHT"})

    preview = staff_page.get("/staff/hunts/harbour/puzzles/lighthouse/rejudge/")
    assert preview.status_code == 200
    assert 'data-gain="gulls"' in preview.content.decode()
    assert not Solve.objects.exists()

    applied = staff_page.post("/staff/hunts/harbour/puzzles/lighthouse/rejudge/", follow=True)
    assert "1 solve(s) gained, 0 lost." in messages_of(applied)[0]
    assert Team.objects.get(pk=game.team.pk).score == 10
    assert staff_page.get("/staff/hunts/harbour/puzzles/nothing/rejudge/").status_code == 404


# --- The staff API -------------------------------------------------------------------------------------


@pytest.fixture
def api(game):
    client = APIClient()
    client.force_authenticate(game.staff)
    return client


def test_the_staff_api_runs_each_control(api, game, factories):
    factories.MembershipFactory(team=game.team, user__username="bob")
    base = "/api/hunts/harbour/staff"

    assert api.post(f"{base}/puzzles/vault/unlock/", {"team": "gulls"}, format="json").json() == {"teams": 1}
    assert api.post(f"{base}/puzzles/vault/lock/", {}, format="json").json() == {"teams": 1}
    adjusted = api.post(
        f"{base}/teams/gulls/score-adjustments/", {"points": 3, "reason": "Bonus"}, format="json"
    )
    assert adjusted.status_code == 201 and adjusted.json()["score"] == 3
    hidden = api.post(f"{base}/teams/gulls/hidden/", {"hidden": True}, format="json").json()
    assert hidden["hidden"] is True
    code = api.post(f"{base}/teams/gulls/join-code/").json()["join_code"]
    assert code == Team.objects.get(pk=game.team.pk).join_code
    assert api.delete(f"{base}/teams/gulls/members/bob/").status_code == 204
    assert api.delete(f"{base}/teams/gulls/members/bob/").status_code == 404
    moved = api.post(f"{base}/end/", {"extend_minutes": 15}, format="json").json()
    assert moved["ends_at"] and moved["state"] == "running"
    erratum = api.post(f"{base}/puzzles/lighthouse/errata/", {"text": "Typo."}, format="json")
    assert erratum.status_code == 201 and erratum.json()["puzzle"] == "lighthouse"
    edited = api.patch(f"{base}/errata/{erratum.json()['id']}/", {"text": "Typo fixed."}, format="json")
    assert edited.json()["text"] == "Typo fixed."
    assert api.get(f"{base}/puzzles/lighthouse/rejudge/").json() == {
        "puzzle": "lighthouse",
        "guesses": [],
        "gains": [],
        "losses": [],
    }
    assert api.post(f"{base}/puzzles/lighthouse/rejudge/").status_code == 200
    expected = ["puzzle.unlocked", "puzzle.locked", "score.adjusted", "team.hidden", "join_code.rotated"]
    assert [k for k in kinds(game.team) if k in expected] == expected


def test_staff_api_errors_have_the_usual_shapes(api, game):
    base = "/api/hunts/harbour/staff"
    assert api.post(f"{base}/teams/nobody/hidden/", {"hidden": True}, format="json").status_code == 404
    assert api.post(f"{base}/puzzles/nothing/unlock/", {}, format="json").status_code == 404
    assert api.post(f"{base}/end/", {}, format="json").json() == {
        "detail": "Give either the new end time or the minutes to move the end by."
    }
    refused = api.post(f"{base}/teams/gulls/score-adjustments/", {"points": 0, "reason": ""}, format="json")
    assert set(refused.json()) == {"points", "reason"}


def test_the_staff_api_is_for_staff_only(game):
    player = APIClient()
    player.force_authenticate(game.ann)
    for method, path in [
        ("post", "/api/hunts/harbour/staff/puzzles/vault/unlock/"),
        ("post", "/api/hunts/harbour/staff/teams/gulls/score-adjustments/"),
        ("get", "/api/hunts/harbour/staff/leaderboard/"),
        ("post", "/api/hunts/harbour/staff/end/"),
    ]:
        assert getattr(player, method)(path, {}, format="json").status_code == 403
        assert getattr(APIClient(), method)(path, {}, format="json").status_code == 401
    assert not Unlock.objects.exists()


# --- Admin actions -------------------------------------------------------------------------------------


def action(admin_client, model, name: str, objects, **data):
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    return admin_client.post(
        url, {"action": name, ACTION_CHECKBOX_NAME: [o.pk for o in objects], **data}, follow=True
    )


def test_team_actions_adjust_hide_and_unlock(admin_client, game):
    page = action(admin_client, Team, "adjust_score", [game.team])
    assert page.status_code == 200 and b"Adjust score" in page.content

    action(admin_client, Team, "adjust_score", [game.team], apply="yes", points="6", reason="Good sport")
    action(admin_client, Team, "hide_teams", [game.team])
    action(admin_client, Team, "unlock_puzzle", [game.team], apply="yes", puzzle=str(game.vault.pk))

    team = Team.objects.get(pk=game.team.pk)
    assert (team.score, team.hidden) == (6, True)
    assert Unlock.objects.filter(team=team, puzzle=game.vault, locked=False).exists()
    assert ScoreAdjustment.objects.get().reason == "Good sport"


def test_a_refused_admin_action_shows_the_error_on_its_page(admin_client, game):
    response = action(admin_client, Team, "adjust_score", [game.team], apply="yes", points="0", reason="x")
    assert response.status_code == 200
    assert "Give a number of points other than 0" in response.content.decode()
    assert not ScoreAdjustment.objects.exists()


def test_puzzle_actions_relock_for_all_and_rejudge_with_a_preview(admin_client, game):
    action(admin_client, Puzzle, "lock_for_all", [game.lighthouse])
    assert Unlock.objects.get(team=game.team, puzzle=game.lighthouse).locked
    action(admin_client, Puzzle, "unlock_for_all", [game.lighthouse])
    submit_guess(team=game.team, user=game.ann, puzzle_slug="lighthouse", text="beam light")
    Answer.objects.filter(puzzle=game.lighthouse).update(parameters={"value": "BEAM LIGHT"})

    preview = action(admin_client, Puzzle, "rejudge", [game.lighthouse])
    assert "Gulls</strong> gains a solve" in preview.content.decode()
    assert not Solve.objects.exists()
    applied = action(admin_client, Puzzle, "rejudge", [game.lighthouse], apply="yes")
    assert "1 solve(s) gained" in applied.content.decode()
    assert Solve.objects.get().team == game.team


def concurrently(monkeypatch, model_admin, change):
    """Run `change` (another request committing) right after the admin read the object it will save."""
    get_object = model_admin.get_object

    def read_then_changed(self, *args, **kwargs):
        obj = get_object(self, *args, **kwargs)
        change()
        return obj

    monkeypatch.setattr(model_admin, "get_object", read_then_changed)


def test_hunt_actions_and_the_change_form_move_the_end_through_the_service(admin_client, game, monkeypatch):
    old_end = game.hunt.ends_at
    action(admin_client, Hunt, "move_end", [game.hunt], apply="yes", extend_minutes="20", ends_at="")
    assert Hunt.objects.get(pk=game.hunt.pk).ends_at == old_end + timedelta(minutes=20)

    change = reverse("admin:hunts_hunt_change", args=[game.hunt.pk])
    form = admin_client.get(change).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if k in form.fields and v is not None}
    new_end = timezone.now() + timedelta(days=3)
    data.update(
        starts_at_0=game.hunt.starts_at.strftime("%Y-%m-%d"),
        starts_at_1=game.hunt.starts_at.strftime("%H:%M:%S"),
        ends_at_0=new_end.strftime("%Y-%m-%d"),
        ends_at_1=new_end.strftime("%H:%M:%S"),
        **{"rounds-TOTAL_FORMS": 1, "rounds-INITIAL_FORMS": 1, "announcements-TOTAL_FORMS": 0},
        **{"announcements-INITIAL_FORMS": 0},
    )
    data.pop("starts_at"), data.pop("ends_at")
    data["rounds-0-id"] = game.lighthouse.round_id
    data["rounds-0-hunt"] = game.hunt.pk
    data["rounds-0-title"] = game.lighthouse.round.title
    data["rounds-0-order"] = 0
    concurrently(monkeypatch, HuntAdmin, lambda: Hunt.objects.filter(pk=game.hunt.pk).update(event_seq=7))

    response = admin_client.post(change, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    hunt = Hunt.objects.get(pk=game.hunt.pk)
    assert hunt.ends_at.replace(microsecond=0) == new_end.replace(microsecond=0)
    assert hunt.event_seq == 8  # not rolled back to the head the admin read: 7, then hunt.rescheduled
    assert Event.objects.filter(hunt=hunt, kind="hunt.rescheduled").count() == 2


def test_saving_a_treasure_in_the_admin_keeps_its_found_count(admin_client, game, factories, monkeypatch):
    treasure = factories.TreasureFactory(hunt=game.hunt, slug="chest", name="Chest", supply=3)
    change = reverse("admin:puzzles_treasure_change", args=[treasure.pk])
    form = admin_client.get(change).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if k in form.fields and v is not None}
    data.update(
        name="The Chest", code="GOLD", bonus="[]", **{"finds-TOTAL_FORMS": 0, "finds-INITIAL_FORMS": 0}
    )
    found = lambda: Treasure.objects.filter(pk=treasure.pk).update(found_count=2)  # noqa: E731
    concurrently(monkeypatch, TreasureAdmin, found)

    response = admin_client.post(change, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    treasure.refresh_from_db()
    assert (treasure.name, treasure.found_count) == ("The Chest", 2)


def test_a_clue_corrected_in_the_admin_after_it_went_out_goes_out_again(admin_client, game, factories):
    at = (timezone.now() - timedelta(minutes=5)).replace(microsecond=0)
    treasure = factories.TreasureFactory(
        hunt=game.hunt, slug="chest", name="Chest", code="GOLD", clue="North.\nThen east.", clue_at=at
    )
    release_due(hunt=game.hunt, now=timezone.now())
    treasure.refresh_from_db()
    assert treasure.clue_released
    change = reverse("admin:puzzles_treasure_change", args=[treasure.pk])

    def save(**fields):
        form = admin_client.get(change).context["adminform"].form
        data = {k: v for k, v in form.initial.items() if k in form.fields and v is not None}
        local = timezone.localtime(data.pop("clue_at"))  # the admin's date and time boxes
        data.update(clue_at_0=local.date().isoformat(), clue_at_1=local.strftime("%H:%M:%S"))
        data.update(bonus="[]", **{"finds-TOTAL_FORMS": 0, "finds-INITIAL_FORMS": 0}, **fields)
        response = admin_client.post(change, data)
        assert response.status_code == 302, response.context["adminform"].form.errors
        treasure.refresh_from_db()
        assert treasure.clue_at == at

    save(name="The Chest")  # not the clue: it stays out
    save(clue="North.\r\nThen east.")  # as a browser sends the same text back
    assert treasure.clue_released
    save(clue="North by north-east.")
    assert not treasure.clue_released
    release_due(hunt=Hunt.objects.get(pk=game.hunt.pk), now=timezone.now())

    clues = Event.objects.filter(kind="treasure.clue").order_by("seq").values_list("data__clue", flat=True)
    assert list(clues) == ["North.\nThen east.", "North by north-east."]


def test_a_clue_corrected_while_the_clock_sends_it_goes_out_corrected(
    admin_client, game, factories, monkeypatch
):
    treasure = factories.TreasureFactory(
        hunt=game.hunt, slug="chest", code="GOLD", clue="Nort.", clue_at=timezone.now() - timedelta(minutes=1)
    )
    change = reverse("admin:puzzles_treasure_change", args=[treasure.pk])
    form = admin_client.get(change).context["adminform"].form  # read before the clue went out
    data = {k: v for k, v in form.initial.items() if k in form.fields and v is not None}
    local = timezone.localtime(data.pop("clue_at"))
    data.update(clue_at_0=local.date().isoformat(), clue_at_1=local.strftime("%H:%M:%S"), clue="North.")
    data.update(bonus="[]", **{"finds-TOTAL_FORMS": 0, "finds-INITIAL_FORMS": 0})
    concurrently(monkeypatch, TreasureAdmin, lambda: release_due(hunt=game.hunt, now=timezone.now()))

    response = admin_client.post(change, data)  # the clock sent "Nort." after the admin read the treasure

    assert response.status_code == 302, response.context["adminform"].form.errors
    release_due(hunt=Hunt.objects.get(pk=game.hunt.pk), now=timezone.now())
    clues = Event.objects.filter(kind="treasure.clue").order_by("seq").values_list("data__clue", flat=True)
    assert list(clues) == ["Nort.", "North."]


def test_errata_are_posted_and_corrected_from_the_admin(admin_client, game):
    add = reverse("admin:puzzles_erratum_add")
    admin_client.post(add, {"puzzle": game.lighthouse.pk, "text": "Read east."})
    erratum = Erratum.objects.get()
    change = reverse("admin:puzzles_erratum_change", args=[erratum.pk])
    admin_client.post(change, {"text": "Read east for west."})

    erratum.refresh_from_db()
    assert erratum.text == "Read east for west."
    events = Event.objects.filter(kind="erratum.posted").order_by("seq")
    assert [e.data["text"] for e in events] == ["Read east.", "Read east for west."]
