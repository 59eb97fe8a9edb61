"""Unlock rules (DESIGN section 6): time, solves, round solves, prerequisites, and mixes of them."""

from datetime import timedelta

import pytest
from django.utils import timezone

from hunts.models import Event
from puzzles.models import Puzzle, Unlock
from puzzles.services import release_due, submit_guess

pytestmark = pytest.mark.django_db


@pytest.fixture
def hunt(factories):
    return factories.HuntFactory(guess_limit_guesses=None)


@pytest.fixture
def make_puzzle(factories, hunt):
    """A puzzle answered by its own slug; rule fields given make it rule-based."""

    def make(slug, *, prerequisites=(), **rules):
        puzzle = factories.PuzzleFactory(
            hunt=hunt, slug=slug, title=slug.title(), has_rules=bool(rules or prerequisites), **rules
        )
        puzzle.prerequisites.set(prerequisites)
        factories.AnswerFactory(puzzle=puzzle, parameters={"value": slug})
        return puzzle

    return make


def solve(team, puzzle):
    guess, _ = submit_guess(team=team, user=None, puzzle_slug=puzzle.slug, text=puzzle.slug)
    assert guess.status == "correct"
    return guess


def unlocked(team, **kwargs):
    return set(Puzzle.objects.unlocked_for(team, **kwargs).values_list("slug", flat=True))


def unlock_events(team):
    return [e.data["puzzle"]["slug"] for e in Event.objects.filter(team=team, kind="puzzle.unlocked")]


def test_after_minutes_puzzle_opens_when_release_due_reaches_its_time(hunt, team, make_puzzle):
    puzzle = make_puzzle("later", unlock_after_minutes=90)
    due = hunt.starts_at + timedelta(minutes=90)

    release_due(hunt=hunt, now=due - timedelta(seconds=1))
    assert "later" not in unlocked(team)

    release_due(hunt=hunt, now=due)
    assert "later" in unlocked(team)
    assert Unlock.objects.get(team=team, puzzle=puzzle).unlocked_at == due
    event = Event.objects.get(team=team, kind="puzzle.unlocked")
    assert event.data == {
        "puzzle": {"slug": "later", "title": "Later", "round": puzzle.round.title, "points": 10}
    }


def test_solves_rule_opens_after_that_many_solves(team, make_puzzle):
    first, second = make_puzzle("first"), make_puzzle("second")
    make_puzzle("third", unlock_solves=2)

    solve(team, first)
    assert "third" not in unlocked(team)

    solve(team, second)
    assert "third" in unlocked(team)
    assert unlock_events(team) == ["third"]


def test_round_solves_count_only_solves_in_the_puzzles_round(factories, hunt, team, make_puzzle):
    harbour = factories.RoundFactory(hunt=hunt)
    elsewhere = make_puzzle("elsewhere")
    inside = make_puzzle("inside", round=harbour)
    make_puzzle("gate", round=harbour, unlock_round_solves=1)

    solve(team, elsewhere)
    assert "gate" not in unlocked(team)

    solve(team, inside)
    assert "gate" in unlocked(team)


def test_prerequisites_need_all_of_them_by_default(team, make_puzzle):
    a, b = make_puzzle("a"), make_puzzle("b")
    make_puzzle("meta", prerequisites=[a, b])

    solve(team, a)
    assert "meta" not in unlocked(team)

    solve(team, b)
    assert "meta" in unlocked(team)


def test_prerequisites_with_needed_open_after_that_many(team, make_puzzle):
    a, b, c = make_puzzle("a"), make_puzzle("b"), make_puzzle("c")
    make_puzzle("meta", prerequisites=[a, b, c], unlock_needed=2)

    solve(team, c)
    assert "meta" not in unlocked(team)

    solve(team, a)
    assert "meta" in unlocked(team)


def test_mixed_rule_opens_at_the_time_when_the_solves_came_first(hunt, team, make_puzzle):
    a = make_puzzle("a")
    mixed = make_puzzle("mixed", unlock_after_minutes=120, unlock_solves=1)
    due = hunt.starts_at + timedelta(minutes=120)

    solve(team, a)
    assert "mixed" not in unlocked(team)

    release_due(hunt=hunt, now=due)
    assert Unlock.objects.get(team=team, puzzle=mixed).unlocked_at == due


def test_mixed_rule_opens_at_the_solve_when_the_time_came_first(hunt, team, make_puzzle):
    a = make_puzzle("a")
    mixed = make_puzzle("mixed", unlock_after_minutes=30, unlock_solves=1)

    release_due(hunt=hunt, now=timezone.now())
    assert "mixed" not in unlocked(team)

    guess = solve(team, a)
    assert Unlock.objects.get(team=team, puzzle=mixed).unlocked_at == guess.created_at
    assert unlock_events(team) == ["mixed"]


def test_once_unlocked_a_puzzle_stays_unlocked(hunt, team, make_puzzle):
    later = make_puzzle("later", unlock_after_minutes=30)
    release_due(hunt=hunt, now=timezone.now())
    assert "later" in unlocked(team)

    later.unlock_after_minutes = 600
    later.unlock_solves = 3
    later.save()
    release_due(hunt=hunt, now=timezone.now())

    assert "later" in unlocked(team)
    assert unlock_events(team) == ["later"]


def test_team_created_after_the_due_time_gets_the_puzzle_on_the_next_release(
    factories, hunt, team, make_puzzle
):
    make_puzzle("later", unlock_after_minutes=30)
    release_due(hunt=hunt, now=timezone.now())
    latecomer = factories.MembershipFactory(team__hunt=hunt).team
    assert "later" not in unlocked(latecomer)

    release_due(hunt=hunt, now=timezone.now())

    assert "later" in unlocked(latecomer)
    assert unlock_events(latecomer) == ["later"]
    assert unlock_events(team) == ["later"]


def test_rule_free_puzzles_open_only_once_the_hunt_has_started(factories, make_puzzle):
    hunt = factories.HuntFactory(starts_at=timezone.now() + timedelta(hours=1))
    team = factories.MembershipFactory(team__hunt=hunt).team
    factories.PuzzleFactory(hunt=hunt, slug="opener")

    assert unlocked(team) == set()
    assert unlocked(team, now=hunt.starts_at) == {"opener"}


def test_unlocked_for_holds_the_teams_unlocks_and_open_puzzles_of_its_hunt(
    factories, hunt, team, make_puzzle
):
    other_team = factories.MembershipFactory(team__hunt=hunt).team
    make_puzzle("open")
    mine = make_puzzle("mine", unlock_solves=9)
    theirs = make_puzzle("theirs", unlock_solves=9)
    make_puzzle("locked", unlock_solves=9)
    factories.PuzzleFactory(slug="other-hunt")
    Unlock.objects.create(team=team, puzzle=mine)
    Unlock.objects.create(team=other_team, puzzle=theirs)

    assert unlocked(team) == {"open", "mine"}
    assert unlocked(other_team) == {"open", "theirs"}


def test_each_unlock_appends_exactly_one_event(hunt, team, make_puzzle):
    a, b = make_puzzle("a"), make_puzzle("b")
    make_puzzle("one", unlock_solves=1)
    make_puzzle("timed", unlock_after_minutes=30)

    solve(team, a)
    release_due(hunt=hunt, now=timezone.now())
    release_due(hunt=hunt, now=timezone.now())
    solve(team, b)

    assert sorted(unlock_events(team)) == ["one", "timed"]
    assert Unlock.objects.filter(team=team).count() == 2
