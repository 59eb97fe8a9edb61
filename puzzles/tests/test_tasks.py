"""Celery task bodies and the sweeper (DESIGN section 6): lost enqueues come back, each at most every 15 s."""

from datetime import timedelta

import pytest
from django.utils import timezone

from hunts.models import Event
from puzzles import tasks
from puzzles.models import Answer, Guess, TreasureFind
from puzzles.services import SWEEP_AFTER, SWEEP_EVERY, submit_guess, sweep

pytestmark = pytest.mark.django_db

JUDGE = "puzzles.tasks.judge_guess_task"
CLAIM = "puzzles.tasks.claim_treasures_task"


@pytest.fixture
def enqueued(monkeypatch):
    """Tasks enqueued by services, recorded instead of run: as if the broker had lost them."""
    sent = []
    monkeypatch.setattr("puzzles.services.enqueue", lambda name, *args: sent.append((name, *args)))
    return sent


@pytest.fixture
def hunt(factories):
    return factories.HuntFactory(guess_limit_guesses=None)


@pytest.fixture
def geo_puzzle(factories, hunt):
    puzzle = factories.PuzzleFactory(hunt=hunt, slug="wreck", points=20, all_exact=False)
    factories.AnswerFactory(
        puzzle=puzzle, kind=Answer.Kind.GEO, parameters={"lat": 48.8584, "lng": 2.2945, "radius_m": 150}
    )
    return puzzle


def pending_guess(team, text="48.8584, 2.2945"):
    guess, _ = submit_guess(team=team, user=None, puzzle_slug="wreck", text=text)
    assert guess.status == Guess.Status.PENDING
    return guess


def test_pending_guess_is_enqueued_again_after_5_s_then_at_most_every_15_s(enqueued, geo_puzzle, team):
    guess = pending_guess(team)
    assert enqueued == [(JUDGE, guess.pk)]
    enqueued.clear()
    created = guess.created_at

    assert sweep(created + SWEEP_AFTER - timedelta(milliseconds=1))["guesses"] == 0
    assert sweep(created + SWEEP_AFTER + timedelta(milliseconds=1))["guesses"] == 1
    assert enqueued == [(JUDGE, guess.pk)]
    swept_at = created + SWEEP_AFTER + timedelta(milliseconds=1)

    assert sweep(swept_at + SWEEP_EVERY - timedelta(milliseconds=1))["guesses"] == 0
    assert sweep(swept_at + SWEEP_EVERY + timedelta(milliseconds=1))["guesses"] == 1
    assert enqueued == [(JUDGE, guess.pk)] * 2


def test_judged_guesses_are_never_swept(enqueued, geo_puzzle, team):
    guess = pending_guess(team)
    tasks.judge_guess_task(guess.pk)

    assert sweep(timezone.now() + timedelta(minutes=5))["guesses"] == 0


def test_due_treasure_claim_is_enqueued_again_once_per_15_s(enqueued, factories, hunt, team):
    puzzle = factories.PuzzleFactory(hunt=hunt, slug="lighthouse")
    factories.AnswerFactory(puzzle=puzzle, parameters={"value": "BEAM"})
    treasure = factories.TreasureFactory(hunt=hunt, supply=3, bonus=[50])
    treasure.requires.set([puzzle])
    guess, _ = submit_guess(team=team, user=None, puzzle_slug="lighthouse", text="beam")
    assert enqueued == [(CLAIM, team.pk)]
    enqueued.clear()
    solved_at = guess.judged_at

    assert sweep(solved_at + SWEEP_AFTER - timedelta(milliseconds=1))["claims"] == 0
    assert sweep(solved_at + SWEEP_AFTER + timedelta(milliseconds=1))["claims"] == 1
    assert sweep(solved_at + SWEEP_AFTER + timedelta(seconds=1))["claims"] == 0
    assert enqueued == [(CLAIM, team.pk)]

    tasks.claim_treasures_task(team.pk)
    assert TreasureFind.objects.filter(team=team).count() == 1
    assert sweep(solved_at + timedelta(minutes=5))["claims"] == 0


def test_each_task_run_twice_has_one_effect(enqueued, factories, hunt, geo_puzzle, team):
    treasure = factories.TreasureFactory(hunt=hunt, supply=3, bonus=[50])
    treasure.requires.set([geo_puzzle])
    guess = pending_guess(team)

    for _ in range(2):
        tasks.judge_guess_task(guess.pk)
        tasks.claim_treasures_task(team.pk)
        tasks.tick()
        tasks.sweep()

    team.refresh_from_db()
    assert Event.objects.filter(team=team, kind="guess.judged").count() == 1
    assert Event.objects.filter(team=team, kind="treasure.found").count() == 1
    assert Event.objects.filter(hunt=hunt, team__isnull=True, kind="hunt.started").count() == 1
    assert team.score == 20 + 50
