"""Staff controls of puzzles and scores (puzzles.operations), with the events each logs and pushes; re-judging
previewed then applied; guesses after the end."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from hunts import events as hunt_events
from hunts.errors import NotFound
from hunts.models import Event, Hunt, Team
from puzzles import operations
from puzzles.leaderboard import leaderboard, totals
from puzzles.models import (
    Answer,
    Erratum,
    Guess,
    HintUnlock,
    Puzzle,
    ScoreAdjustment,
    Solve,
    TreasureFind,
    Unlock,
)
from puzzles.services import judge_guess, release_due, request_hint, submit_guess, unlocked_puzzle
from testing.pushes import Pushed

pytestmark = pytest.mark.django_db


@pytest.fixture
def pushed(monkeypatch, django_capture_on_commit_callbacks):
    frames = Pushed(django_capture_on_commit_callbacks)
    monkeypatch.setattr(hunt_events, "send_frames", frames.extend)
    return frames


@pytest.fixture
def game(factories):
    """A running hunt: an open puzzle (lighthouse), one its solve unlocks (wreck), one opening in 2 h (tower),
    two teams (Gulls, Terns) with a player each, and a staff user."""
    hunt = factories.HuntFactory(slug="harbour", guess_limit_guesses=None)
    docks = factories.RoundFactory(hunt=hunt, title="The Docks")
    lighthouse = factories.PuzzleFactory(hunt=hunt, round=docks, slug="lighthouse", title="The Lighthouse")
    factories.AnswerFactory(puzzle=lighthouse, parameters={"value": "BRIGHT BEAM"})
    wreck = factories.PuzzleFactory(hunt=hunt, round=docks, slug="wreck", title="The Wreck", has_rules=True)
    wreck.prerequisites.add(lighthouse)
    factories.AnswerFactory(puzzle=wreck, parameters={"value": "ANCHOR"})
    tower = factories.PuzzleFactory(
        hunt=hunt, round=docks, slug="tower", title="The Tower", has_rules=True, unlock_after_minutes=120
    )
    factories.AnswerFactory(puzzle=tower, parameters={"value": "BELL"})
    gulls = factories.MembershipFactory(team__hunt=hunt, team__name="Gulls", user__username="ann")
    terns = factories.MembershipFactory(team__hunt=hunt, team__name="Terns", user__username="bob")
    return SimpleNamespace(
        hunt=hunt,
        lighthouse=lighthouse,
        wreck=wreck,
        tower=tower,
        gulls=gulls.team,
        ann=gulls.user,
        terns=terns.team,
        bob=terns.user,
        staff=factories.UserFactory(username="sam", is_staff=True),
    )


def kinds(team) -> list[str]:
    return list(Event.objects.filter(team=team).order_by("seq").values_list("kind", flat=True))


def open_slugs(team) -> set[str]:
    team = Team.objects.select_related("hunt").get(pk=team.pk)
    return set(Puzzle.objects.unlocked_for(team).values_list("slug", flat=True))


def fresh(team) -> Team:
    return Team.objects.get(pk=team.pk)


# --- Unlock and re-lock --------------------------------------------------------------------------------


def test_unlocking_for_one_team_opens_the_puzzle_for_it_alone_whatever_its_rules(game, pushed):
    with pushed.commit():
        count = operations.unlock_puzzle(puzzle=game.tower, staff=game.staff, team=game.gulls)

    assert count == 1
    assert "tower" in open_slugs(game.gulls) and "tower" not in open_slugs(game.terns)
    event = Event.objects.get(team=game.gulls, kind="puzzle.unlocked")
    assert event.data == {
        "puzzle": {"slug": "tower", "title": "The Tower", "round": "The Docks", "points": 10}
    }
    assert (f"team.{game.gulls.pk}", "puzzle.unlocked") in pushed.groups()
    assert (f"staff.{game.hunt.pk}", "puzzle.unlocked") in pushed.groups()


def test_unlocking_for_every_team_tells_only_the_teams_that_newly_see_it(game):
    operations.unlock_puzzle(puzzle=game.tower, staff=game.staff, team=game.gulls)

    count = operations.unlock_puzzle(puzzle=game.tower, staff=game.staff)

    assert count == 1
    assert kinds(game.gulls).count("puzzle.unlocked") == 1
    assert kinds(game.terns).count("puzzle.unlocked") == 1
    assert operations.unlock_puzzle(puzzle=game.lighthouse, staff=game.staff) == 0  # open for all already


def test_a_relocked_puzzle_is_hidden_and_refuses_guesses(game, pushed):
    with pushed.commit():
        count = operations.lock_puzzle(puzzle=game.lighthouse, staff=game.staff, team=game.gulls)

    assert count == 1
    assert "lighthouse" not in open_slugs(game.gulls) and "lighthouse" in open_slugs(game.terns)
    assert Event.objects.get(team=game.gulls, kind="puzzle.locked").data == {
        "puzzle": {"slug": "lighthouse", "title": "The Lighthouse"}
    }
    assert (f"team.{game.gulls.pk}", "puzzle.locked") in pushed.groups()
    with pytest.raises(NotFound):
        submit_guess(team=game.gulls, user=game.ann, puzzle_slug="lighthouse", text="bright beam")


def test_neither_solves_nor_the_clock_reopen_a_relocked_puzzle(game):
    operations.lock_puzzle(puzzle=game.wreck, staff=game.staff)
    operations.lock_puzzle(puzzle=game.tower, staff=game.staff)

    submit_guess(team=game.gulls, user=game.ann, puzzle_slug="lighthouse", text="bright beam")
    release_due(hunt=game.hunt, now=timezone.now() + timedelta(hours=3))

    assert open_slugs(game.gulls) == {"lighthouse"}
    assert "puzzle.unlocked" not in kinds(game.gulls)
    assert "puzzle.locked" not in kinds(game.gulls)  # never seen: nothing to tell


def test_unlocking_again_reopens_a_relocked_puzzle_from_now(game):
    operations.lock_puzzle(puzzle=game.lighthouse, staff=game.staff, team=game.gulls)

    assert operations.unlock_puzzle(puzzle=game.lighthouse, staff=game.staff, team=game.gulls) == 1

    assert "lighthouse" in open_slugs(game.gulls)
    row = Unlock.objects.get(team=game.gulls, puzzle=game.lighthouse)
    assert not row.locked and row.unlocked_at > game.hunt.starts_at
    assert kinds(game.gulls)[-2:] == ["puzzle.locked", "puzzle.unlocked"]


def test_timed_hints_wait_while_a_puzzle_is_relocked(game, factories):
    factories.HintFactory(puzzle=game.lighthouse, text="Count.", after_minutes=1)
    operations.lock_puzzle(puzzle=game.lighthouse, staff=game.staff, team=game.gulls)

    release_due(hunt=game.hunt, now=timezone.now() + timedelta(minutes=5))

    assert list(HintUnlock.objects.values_list("team__name", flat=True)) == ["Terns"]


def test_a_team_that_solved_the_puzzle_keeps_it(game):
    submit_guess(team=game.gulls, user=game.ann, puzzle_slug="lighthouse", text="bright beam")

    with pytest.raises(ValidationError):
        operations.lock_puzzle(puzzle=game.lighthouse, staff=game.staff, team=game.gulls)
    assert operations.lock_puzzle(puzzle=game.lighthouse, staff=game.staff) == 1

    assert "lighthouse" in open_slugs(game.gulls) and "lighthouse" not in open_slugs(game.terns)


def test_a_team_of_another_hunt_is_not_found(game, factories):
    stranger = factories.TeamFactory()
    with pytest.raises(NotFound):
        operations.unlock_puzzle(puzzle=game.tower, staff=game.staff, team=stranger)


# --- Score adjustments ------------------------------------------------------------------------------------


def test_a_bonus_raises_the_score_and_the_tie_break_time_and_tells_the_team(game, pushed):
    with pushed.commit():
        adjustment = operations.adjust_score(
            team=game.gulls, points=15, reason="  Best costume ", staff=game.staff
        )

    team = fresh(game.gulls)
    assert (team.score, adjustment.reason, adjustment.staff) == (15, "Best costume", game.staff)
    assert team.last_scored_at == adjustment.created_at
    assert Event.objects.get(team=team, kind="score.adjusted").data == {
        "points": 15,
        "reason": "Best costume",
    }
    assert (f"team.{team.pk}", "score.adjusted") in pushed.groups()
    assert leaderboard(game.hunt)[0]["team"]["name"] == "Gulls"


def test_a_penalty_lowers_the_score_and_keeps_the_tie_break_time(game):
    submit_guess(team=game.gulls, user=game.ann, puzzle_slug="lighthouse", text="bright beam")
    before = fresh(game.gulls).last_scored_at

    operations.adjust_score(team=game.gulls, points=-25, reason="Shared answers", staff=game.staff)

    team = fresh(game.gulls)
    assert (team.score, team.last_scored_at) == (-15, before)
    assert totals(team_ids=[team.pk])[team.pk]["score"] == -15


@pytest.mark.parametrize(("points", "reason"), [(0, "why"), (5, "   "), (10**7, "big")])
def test_an_adjustment_needs_points_and_a_reason(game, points, reason):
    with pytest.raises(ValidationError):
        operations.adjust_score(team=game.gulls, points=points, reason=reason, staff=game.staff)
    with pytest.raises(PermissionDenied):
        operations.adjust_score(team=game.gulls, points=5, reason="ok", staff=game.ann)
    assert not ScoreAdjustment.objects.exists()


# --- Errata -----------------------------------------------------------------------------------------------


def test_an_erratum_is_a_hunt_wide_event_with_its_puzzle(game, pushed):
    with pushed.commit():
        erratum = operations.post_erratum(
            puzzle=game.lighthouse, text=" Read east for west. ", staff=game.staff
        )

    event = Event.objects.get(hunt=game.hunt, team__isnull=True)
    assert (event.kind, event.data) == (
        "erratum.posted",
        {"id": erratum.pk, "puzzle": "lighthouse", "text": "Read east for west."},
    )
    assert (f"hunt.{game.hunt.pk}", "erratum.posted") in pushed.groups()


def test_editing_an_erratum_pushes_it_again_with_the_same_id(game):
    erratum = operations.post_erratum(puzzle=game.lighthouse, text="Read east.", staff=game.staff)

    operations.edit_erratum(erratum=erratum, text="Read east for west.", staff=game.staff)
    operations.edit_erratum(erratum=erratum, text="Read east for west.", staff=game.staff)  # unchanged

    events = list(Event.objects.filter(kind="erratum.posted").order_by("seq").values_list("data", flat=True))
    assert [e["text"] for e in events] == ["Read east.", "Read east for west."]
    assert {e["id"] for e in events} == {erratum.pk}
    erratum.refresh_from_db()
    assert erratum.updated_at > erratum.created_at


def test_an_empty_erratum_is_refused(game):
    with pytest.raises(ValidationError):
        operations.post_erratum(puzzle=game.lighthouse, text="  ", staff=game.staff)
    assert not Erratum.objects.exists()


def test_errata_show_on_the_pages_of_teams_that_have_the_puzzle_only(game, client):
    operations.post_erratum(puzzle=game.lighthouse, text="LIGHTHOUSE-ERRATUM", staff=game.staff)
    operations.post_erratum(puzzle=game.tower, text="TOWER-ERRATUM", staff=game.staff)
    client.force_login(game.ann)

    home = client.get("/hunts/harbour/").content.decode()
    page = client.get("/hunts/harbour/puzzles/lighthouse/").content.decode()
    api = client.get("/api/hunts/harbour/puzzles/lighthouse/").json()

    assert "LIGHTHOUSE-ERRATUM" in home and "TOWER-ERRATUM" not in home
    assert "LIGHTHOUSE-ERRATUM" in page and "TOWER-ERRATUM" not in page
    assert [e["text"] for e in api["errata"]] == ["LIGHTHOUSE-ERRATUM"]


# --- Re-judging -------------------------------------------------------------------------------------------


def guess_at(game, team, user, text, *, minutes_ago, slug="lighthouse"):
    guess, _ = submit_guess(team=team, user=user, puzzle_slug=slug, text=text)
    Guess.objects.filter(pk=guess.pk).update(created_at=timezone.now() - timedelta(minutes=minutes_ago))
    return Guess.objects.get(pk=guess.pk)


def test_rejudging_previews_then_applies_gained_and_lost_solves(game, pushed):
    gulls_guess = guess_at(game, game.gulls, game.ann, "beam light", minutes_ago=30)
    terns_guess = guess_at(game, game.terns, game.bob, "bright beam", minutes_ago=20)
    Solve.objects.filter(team=game.terns).update(solved_at=terns_guess.created_at)
    assert "wreck" in open_slugs(game.terns)
    # The answer was wrong: it is "BEAM LIGHT".
    Answer.objects.filter(puzzle=game.lighthouse).update(parameters={"value": "BEAM LIGHT"})

    plan = operations.rejudge_preview(puzzle=game.lighthouse)

    assert [(c.team_name, c.old_status, c.new_status) for c in plan.guesses] == [
        ("Gulls", "incorrect", "correct"),
        ("Terns", "correct", "incorrect"),
    ]
    assert [(c.team_name, c.at, c.points) for c in plan.gains] == [("Gulls", gulls_guess.created_at, 10)]
    assert [(c.team_name, c.points) for c in plan.losses] == [("Terns", 10)]
    assert (fresh(game.gulls).score, fresh(game.terns).score) == (0, 10)  # a preview changes nothing

    with pushed.commit():
        applied = operations.rejudge_apply(puzzle=game.lighthouse, staff=game.staff)

    assert [c.guess_id for c in applied.guesses] == [gulls_guess.pk, terns_guess.pk]
    gulls, terns = fresh(game.gulls), fresh(game.terns)
    assert (gulls.score, gulls.solve_count, gulls.last_scored_at) == (10, 1, gulls_guess.created_at)
    assert (terns.score, terns.solve_count, terns.last_scored_at) == (0, 0, None)
    assert Guess.objects.get(pk=gulls_guess.pk).status == Guess.Status.CORRECT
    assert Guess.objects.get(pk=terns_guess.pk).status == Guess.Status.INCORRECT
    assert list(Solve.objects.values_list("team__name", "solved_at")) == [("Gulls", gulls_guess.created_at)]
    # Gulls' gained solve opens the wreck; the Terns keep the wreck they opened with the lost solve.
    assert "wreck" in open_slugs(game.gulls) and "wreck" in open_slugs(game.terns)
    assert kinds(game.gulls)[-2:] == ["puzzle.solved", "puzzle.unlocked"]
    lost = Event.objects.filter(team=game.terns).latest("seq")
    assert (lost.kind, lost.data["points"]) == ("score.adjusted", -10)
    assert "guess.judged" not in kinds(game.gulls)[1:]  # one guess.judged per guess, from submitting it
    assert [row["team"]["name"] for row in leaderboard(game.hunt)] == ["Gulls", "Terns"]
    assert operations.rejudge_preview(puzzle=game.lighthouse).empty


def test_a_solve_gained_by_a_guess_sent_after_the_end_is_worth_nothing(game):
    guess = guess_at(game, game.gulls, game.ann, "beam light", minutes_ago=10)
    Hunt.objects.filter(pk=game.hunt.pk).update(ends_at=guess.created_at - timedelta(minutes=1))
    Answer.objects.filter(puzzle=game.lighthouse).update(parameters={"value": "BEAM LIGHT"})

    plan = operations.rejudge_apply(puzzle=game.lighthouse, staff=game.staff)

    assert [(c.points, c.post_hunt) for c in plan.gains] == [(0, True)]
    assert list(Solve.objects.values_list("points", "post_hunt")) == [(0, True)]
    assert (fresh(game.gulls).score, fresh(game.gulls).solve_count) == (0, 0)


def test_only_staff_rejudge(game):
    with pytest.raises(PermissionDenied):
        operations.rejudge_apply(puzzle=game.lighthouse, staff=game.ann)


# --- After the end ----------------------------------------------------------------------------------------


def end_hunt(game):
    Hunt.objects.filter(pk=game.hunt.pk).update(ends_at=timezone.now() - timedelta(minutes=1))
    game.hunt.refresh_from_db()
    for team in (game.gulls, game.terns):
        team.hunt = game.hunt


def test_after_the_end_a_correct_guess_records_an_unscored_solve_that_still_unlocks(game, factories):
    treasure = factories.TreasureFactory(hunt=game.hunt, bonus=[50])
    treasure.requires.add(game.lighthouse)
    end_hunt(game)

    guess, created = submit_guess(
        team=game.gulls, user=game.ann, puzzle_slug="lighthouse", text="bright beam"
    )

    team = fresh(game.gulls)
    assert created and guess.status == Guess.Status.CORRECT
    assert list(Solve.objects.values_list("points", "post_hunt")) == [(0, True)]
    assert (team.score, team.solve_count, team.last_scored_at) == (0, 0, None)
    assert Event.objects.get(team=team, kind="puzzle.solved").data["points"] == 0
    assert "wreck" in open_slugs(team)
    assert not TreasureFind.objects.exists()
    assert unlocked_puzzle(team=Team.objects.select_related("hunt").get(pk=team.pk), slug="lighthouse").solved


def test_a_guess_sent_before_the_end_and_judged_after_it_still_scores(game, factories):
    geo = factories.PuzzleFactory(hunt=game.hunt, slug="geo", points=20, all_exact=False)
    factories.AnswerFactory(
        puzzle=geo, kind=Answer.Kind.GEO, parameters={"lat": 1.0, "lng": 2.0, "radius_m": 100}
    )
    sent = timezone.now() - timedelta(minutes=5)
    guess = Guess.objects.create(
        team=game.gulls, puzzle=geo, user=game.ann, text="1, 2", key="1, 2", created_at=sent
    )
    end_hunt(game)

    judge_guess(guess_id=guess.pk)

    assert list(Solve.objects.values_list("points", "post_hunt")) == [(20, False)]
    assert fresh(game.gulls).score == 20


def test_at_most_the_hunts_number_of_open_questions_per_puzzle(game):
    Hunt.objects.filter(pk=game.hunt.pk).update(max_open_hint_requests=1)
    team = Team.objects.select_related("hunt").get(pk=game.gulls.pk)
    request_hint(team=team, user=game.ann, puzzle_slug="lighthouse", question="One?")

    with pytest.raises(ValidationError):
        request_hint(team=team, user=game.ann, puzzle_slug="lighthouse", question="Two?")
