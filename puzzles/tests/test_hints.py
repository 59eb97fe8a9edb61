"""Hints: always visible, timed (released by the clock), bought; and questions to staff."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from hunts import events as hunt_events
from hunts.errors import NotFound
from hunts.models import Event, Team
from puzzles.models import HintRequest, HintUnlock, Unlock
from puzzles.services import answer_hint_request, release_due, request_hint, unlock_hint

pytestmark = pytest.mark.django_db


@pytest.fixture
def hunt(factories):
    return factories.HuntFactory()


@pytest.fixture
def player(factories):
    return factories.UserFactory(username="ann")


@pytest.fixture
def team(factories, hunt, player):
    """A team formed before the hunt started: timed hints of open puzzles count from the start."""
    return factories.MembershipFactory(team__hunt=hunt, team__created_at=hunt.starts_at, user=player).team


@pytest.fixture
def puzzle(factories, hunt):
    return factories.PuzzleFactory(hunt=hunt, slug="lighthouse")


def with_score(team, score):
    Team.objects.filter(pk=team.pk).update(score=score)
    team.refresh_from_db()
    return team


def hint_events(team):
    return [e.data for e in Event.objects.filter(team=team, kind="hint.unlocked").order_by("seq")]


def test_always_visible_hint_needs_no_unlock_and_costs_nothing(factories, puzzle, team):
    hint = factories.HintFactory(puzzle=puzzle)
    with_score(team, 10)

    assert hint.always_visible
    assert unlock_hint(team=team, puzzle_slug="lighthouse", hint_id=hint.pk) == (hint, False)
    release_due(hunt=puzzle.hunt, now=timezone.now())

    assert not HintUnlock.objects.exists()
    assert Team.objects.get(pk=team.pk).score == 10


def test_timed_hint_is_released_by_the_clock_for_free(factories, hunt, puzzle, team):
    hint = factories.HintFactory(puzzle=puzzle, text="Count the flashes.", after_minutes=90)
    due = hunt.starts_at + timedelta(minutes=90)

    release_due(hunt=hunt, now=due - timedelta(seconds=1))
    assert not HintUnlock.objects.exists()

    release_due(hunt=hunt, now=due)
    release_due(hunt=hunt, now=due + timedelta(minutes=5))

    unlock = HintUnlock.objects.get()
    assert (unlock.team, unlock.hint, unlock.cost, unlock.unlocked_at) == (team, hint, 0, due)
    assert hint_events(team) == [
        {"puzzle": "lighthouse", "hint": {"id": hint.pk, "text": "Count the flashes.", "cost": 0}}
    ]


def test_timed_hint_counts_from_when_the_team_unlocked_the_puzzle(factories, hunt, team):
    puzzle = factories.PuzzleFactory(hunt=hunt, slug="later", has_rules=True, unlock_after_minutes=120)
    factories.HintFactory(puzzle=puzzle, after_minutes=30)
    opened = hunt.starts_at + timedelta(minutes=120)

    release_due(hunt=hunt, now=opened)
    assert Unlock.objects.filter(team=team, puzzle=puzzle).exists()
    assert not HintUnlock.objects.exists()

    release_due(hunt=hunt, now=opened + timedelta(minutes=30))
    assert HintUnlock.objects.filter(team=team).count() == 1


def test_timed_hint_counts_from_the_creation_of_a_late_team(factories, hunt, puzzle):
    created = hunt.starts_at + timedelta(hours=2)
    late = factories.TeamFactory(hunt=hunt, created_at=created)
    factories.MembershipFactory(team=late)
    factories.HintFactory(puzzle=puzzle, after_minutes=30)

    release_due(hunt=hunt, now=created + timedelta(minutes=29))
    assert not HintUnlock.objects.exists()

    release_due(hunt=hunt, now=created + timedelta(minutes=30))
    assert HintUnlock.objects.filter(team=late).count() == 1


def test_buying_a_hint_lowers_the_score_by_its_cost(factories, puzzle, team):
    hint = factories.HintFactory(puzzle=puzzle, text="Morse.", cost=5)
    with_score(team, 12)

    assert unlock_hint(team=team, puzzle_slug="lighthouse", hint_id=hint.pk) == (hint, True)

    team.refresh_from_db()
    assert team.score == 7 and team.last_scored_at is None
    assert HintUnlock.objects.get().cost == 5
    assert hint_events(team) == [
        {"puzzle": "lighthouse", "hint": {"id": hint.pk, "text": "Morse.", "cost": 5}}
    ]


def test_buying_a_hint_twice_charges_once(factories, puzzle, team):
    hint = factories.HintFactory(puzzle=puzzle, cost=5)
    with_score(team, 12)

    unlock_hint(team=team, puzzle_slug="lighthouse", hint_id=hint.pk)
    assert unlock_hint(team=team, puzzle_slug="lighthouse", hint_id=hint.pk) == (hint, False)

    assert Team.objects.get(pk=team.pk).score == 7
    assert len(hint_events(team)) == 1


def test_score_must_cover_the_hint(factories, puzzle, team):
    hint = factories.HintFactory(puzzle=puzzle, cost=5)
    with_score(team, 4)

    with pytest.raises(ValidationError, match="costs 5 points"):
        unlock_hint(team=team, puzzle_slug="lighthouse", hint_id=hint.pk)

    assert Team.objects.get(pk=team.pk).score == 4
    assert not HintUnlock.objects.exists()


def test_buying_with_exactly_the_cost_leaves_a_score_of_zero(factories, puzzle, team):
    hint = factories.HintFactory(puzzle=puzzle, cost=5)
    with_score(team, 5)

    unlock_hint(team=team, puzzle_slug="lighthouse", hint_id=hint.pk)

    assert Team.objects.get(pk=team.pk).score == 0


def test_timed_hint_without_a_cost_cannot_be_bought_early(factories, puzzle, team):
    hint = factories.HintFactory(puzzle=puzzle, after_minutes=600)
    with_score(team, 100)

    with pytest.raises(ValidationError, match="cannot be bought"):
        unlock_hint(team=team, puzzle_slug="lighthouse", hint_id=hint.pk)


def test_timed_hint_with_a_cost_is_free_once_its_time_came(factories, puzzle, team):
    hint = factories.HintFactory(puzzle=puzzle, after_minutes=30, cost=5)

    unlock_hint(team=team, puzzle_slug="lighthouse", hint_id=hint.pk)

    assert HintUnlock.objects.get().cost == 0
    assert Team.objects.get(pk=team.pk).score == 0


def test_hints_of_a_locked_puzzle_cannot_be_bought(factories, hunt, team):
    puzzle = factories.PuzzleFactory(hunt=hunt, slug="locked", has_rules=True, unlock_solves=3)
    hint = factories.HintFactory(puzzle=puzzle, cost=1)
    with_score(team, 10)

    with pytest.raises(NotFound):
        unlock_hint(team=team, puzzle_slug="locked", hint_id=hint.pk)


def test_hint_request_is_open_and_shown_to_staff(
    monkeypatch, django_capture_on_commit_callbacks, puzzle, team, player
):
    pushed = []
    monkeypatch.setattr(hunt_events, "send_frames", pushed.extend)

    with django_capture_on_commit_callbacks(execute=True):
        request = request_hint(team=team, user=player, puzzle_slug="lighthouse", question=" What now? ")

    assert (request.status, request.question, request.user) == (HintRequest.Status.OPEN, "What now?", player)
    assert [(group, frame["type"]) for group, frame in pushed] == [
        (f"staff.{team.hunt_id}", "hint.requested")
    ]


@pytest.mark.parametrize("question", ["", "   ", "x" * 2001])
def test_hint_request_needs_a_question_of_sensible_length(puzzle, team, player, question):
    with pytest.raises(ValidationError):
        request_hint(team=team, user=player, puzzle_slug="lighthouse", question=question)


def test_open_hint_requests_are_limited_per_puzzle(factories, hunt, puzzle, team, player):
    for n in range(3):
        request_hint(team=team, user=player, puzzle_slug="lighthouse", question=f"q{n}")

    with pytest.raises(ValidationError, match="3 open questions"):
        request_hint(team=team, user=player, puzzle_slug="lighthouse", question="q4")

    factories.PuzzleFactory(hunt=hunt, slug="other")
    request_hint(team=team, user=player, puzzle_slug="other", question="elsewhere")


def test_answered_request_makes_room_for_another(factories, puzzle, team, player):
    staff = factories.UserFactory(is_staff=True)
    requests = [
        request_hint(team=team, user=player, puzzle_slug="lighthouse", question=f"q{n}") for n in range(3)
    ]

    answer_hint_request(request_id=requests[0].pk, staff=staff, answer="Look up.")

    request_hint(team=team, user=player, puzzle_slug="lighthouse", question="q4")


def test_hint_request_on_a_locked_puzzle_is_not_found(factories, hunt, team, player):
    factories.PuzzleFactory(hunt=hunt, slug="locked", has_rules=True, unlock_solves=3)

    with pytest.raises(NotFound):
        request_hint(team=team, user=player, puzzle_slug="locked", question="?")


def test_only_staff_answer_hint_requests(factories, puzzle, team, player):
    request = request_hint(team=team, user=player, puzzle_slug="lighthouse", question="Why?")

    with pytest.raises(PermissionDenied):
        answer_hint_request(request_id=request.pk, staff=player, answer="Because.")

    request.refresh_from_db()
    assert request.status == HintRequest.Status.OPEN and request.answer == ""


def test_staff_answer_reaches_the_team_as_hint_answered(factories, puzzle, team, player):
    staff = factories.UserFactory(is_staff=True)
    request = request_hint(team=team, user=player, puzzle_slug="lighthouse", question="Why?")

    answered = answer_hint_request(request_id=request.pk, staff=staff, answer=" Because. ")

    assert (answered.status, answered.answer, answered.staff) == (
        HintRequest.Status.ANSWERED,
        "Because.",
        staff,
    )
    assert answered.answered_at is not None
    event = Event.objects.get(team=team, kind="hint.answered")
    assert event.data == {
        "puzzle": "lighthouse",
        "request": {"id": request.pk, "question": "Why?", "answer": "Because."},
    }


def test_answering_an_unknown_request_is_not_found(factories):
    with pytest.raises(NotFound):
        answer_hint_request(request_id=999, staff=factories.UserFactory(is_staff=True), answer="x")


def test_a_timed_hint_bought_early_is_not_granted_again_by_the_clock(factories, hunt, puzzle, team):
    hint = factories.HintFactory(puzzle=puzzle, after_minutes=600, cost=3)
    with_score(team, 3)
    unlock_hint(team=team, puzzle_slug="lighthouse", hint_id=hint.pk)

    release_due(hunt=hunt, now=hunt.starts_at + timedelta(minutes=601))

    assert HintUnlock.objects.get().cost == 3
    assert len(hint_events(team)) == 1
    assert Team.objects.get(pk=team.pk).score == 0


def test_a_hint_of_another_puzzle_is_not_found(factories, hunt, puzzle, team):
    other = factories.HintFactory(puzzle=factories.PuzzleFactory(hunt=hunt), cost=1)

    with pytest.raises(NotFound):
        unlock_hint(team=team, puzzle_slug="lighthouse", hint_id=other.pk)


def test_hints_cannot_be_bought_once_the_hunt_ended(factories, player):
    hunt = factories.HuntFactory(starts_at=timezone.now() - timedelta(days=3))
    team = factories.MembershipFactory(team__hunt=hunt, user=player).team
    hint = factories.HintFactory(puzzle=factories.PuzzleFactory(hunt=hunt, slug="lighthouse"), cost=5)
    with_score(team, 10)

    with pytest.raises(PermissionDenied, match="ended"):
        unlock_hint(team=team, puzzle_slug="lighthouse", hint_id=hint.pk)
    assert Team.objects.get(pk=team.pk).score == 10
