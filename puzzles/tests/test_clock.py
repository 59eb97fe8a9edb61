"""The clock: release_due applies every time-based change once, whatever how often it runs."""

from datetime import timedelta

import pytest
from django.utils import timezone

from hunts.models import Event, Hunt
from puzzles.models import HintUnlock, Unlock
from puzzles.services import release_all_due, release_due

pytestmark = pytest.mark.django_db


def hunt_kinds(hunt):
    return list(
        Event.objects.filter(hunt=hunt, team__isnull=True).order_by("seq").values_list("kind", flat=True)
    )


@pytest.fixture
def upcoming(factories):
    return factories.HuntFactory(starts_at=timezone.now() + timedelta(hours=1))


def test_hunt_started_and_hunt_ended_are_announced_once_each(upcoming):
    start, end = upcoming.starts_at, upcoming.ends_at

    release_due(hunt=upcoming, now=start - timedelta(seconds=1))
    assert hunt_kinds(upcoming) == []

    release_due(hunt=upcoming, now=start)
    release_due(hunt=upcoming, now=start + timedelta(minutes=1))
    assert hunt_kinds(upcoming) == ["hunt.started"]

    release_due(hunt=upcoming, now=end)
    release_due(hunt=upcoming, now=end + timedelta(minutes=1))
    assert hunt_kinds(upcoming) == ["hunt.started", "hunt.ended"]
    assert Hunt.objects.get(pk=upcoming.pk).announced_state == Hunt.State.ENDED


def test_a_clock_that_missed_the_whole_hunt_announces_both_in_order(upcoming):
    release_due(hunt=upcoming, now=upcoming.ends_at + timedelta(hours=1))

    assert hunt_kinds(upcoming) == ["hunt.started", "hunt.ended"]
    assert list(Event.objects.filter(hunt=upcoming).order_by("seq").values_list("seq", flat=True)) == [1, 2]


def test_release_due_twice_at_the_same_moment_changes_nothing(factories, upcoming):
    hunt = upcoming
    team = factories.MembershipFactory(team__hunt=hunt, team__created_at=hunt.starts_at).team
    open_puzzle = factories.PuzzleFactory(hunt=hunt)
    factories.HintFactory(puzzle=open_puzzle, after_minutes=10)
    factories.PuzzleFactory(hunt=hunt, has_rules=True, unlock_after_minutes=20)
    factories.TreasureFactory(hunt=hunt, clue="Look down.", clue_at=hunt.starts_at + timedelta(minutes=5))
    now = hunt.starts_at + timedelta(minutes=30)

    first = release_due(hunt=hunt, now=now)
    events = list(Event.objects.values_list("pk", flat=True))
    second = release_due(hunt=hunt, now=now)

    assert first == {"state": 1, "unlocks": 1, "hints": 1, "clues": 1}
    assert second == {"state": 0, "unlocks": 0, "hints": 0, "clues": 0}
    assert list(Event.objects.values_list("pk", flat=True)) == events
    assert Unlock.objects.filter(team=team).count() == 1
    assert HintUnlock.objects.filter(team=team).count() == 1


def test_nothing_is_released_before_the_start(factories, upcoming):
    team = factories.MembershipFactory(team__hunt=upcoming).team
    factories.PuzzleFactory(hunt=upcoming, has_rules=True, unlock_after_minutes=0)
    factories.TreasureFactory(
        hunt=upcoming, clue="Early.", clue_at=upcoming.starts_at - timedelta(minutes=30)
    )

    release_due(hunt=upcoming, now=upcoming.starts_at - timedelta(minutes=1))

    assert not Unlock.objects.filter(team=team).exists()
    assert not Event.objects.exists()


def test_release_all_due_ticks_every_published_hunt_still_going(factories, upcoming):
    running = factories.HuntFactory()
    factories.HuntFactory(published=False)
    over = factories.HuntFactory(starts_at=timezone.now() - timedelta(days=5))
    release_due(hunt=over, now=timezone.now())

    assert release_all_due(now=upcoming.starts_at) == 2

    assert hunt_kinds(upcoming) == ["hunt.started"]
    assert hunt_kinds(running) == ["hunt.started"]
