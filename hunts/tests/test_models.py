"""Constraints that make "only once" rules hold in the database itself."""

import pytest
from django.db import IntegrityError, transaction

from hunts.models import Event, Membership, Team

pytestmark = pytest.mark.django_db


@pytest.fixture
def hunt(factories):
    return factories.HuntFactory()


@pytest.fixture
def team(factories, hunt):
    return factories.TeamFactory(hunt=hunt)


def refused(**fields):
    with pytest.raises(IntegrityError), transaction.atomic():
        Event.objects.create(kind="x", **fields)


def test_a_team_stream_refuses_a_duplicate_seq(hunt, team):
    Event.objects.create(hunt=hunt, team=team, seq=1, kind="x")

    refused(hunt=hunt, team=team, seq=1)


def test_a_hunt_stream_refuses_a_duplicate_seq(hunt):
    Event.objects.create(hunt=hunt, team=None, seq=1, kind="x")

    refused(hunt=hunt, team=None, seq=1)


def test_the_same_seq_is_fine_in_a_team_stream_and_the_hunt_stream(factories, hunt, team):
    other_team = factories.TeamFactory(hunt=hunt)
    other_hunt = factories.HuntFactory()

    Event.objects.create(hunt=hunt, team=None, seq=1, kind="x")
    Event.objects.create(hunt=hunt, team=team, seq=1, kind="x")
    Event.objects.create(hunt=hunt, team=other_team, seq=1, kind="x")
    Event.objects.create(hunt=other_hunt, team=None, seq=1, kind="x")

    assert Event.objects.filter(seq=1).count() == 4


def test_team_names_are_unique_in_a_hunt_ignoring_case(factories, hunt, team):
    with pytest.raises(IntegrityError), transaction.atomic():
        factories.TeamFactory(hunt=hunt, name=team.name.upper())

    factories.TeamFactory(name=team.name)


def test_a_user_is_on_one_team_per_hunt(factories, hunt, team):
    membership = factories.MembershipFactory(team=team)

    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.create(hunt=hunt, team=factories.TeamFactory(hunt=hunt), user=membership.user)


def test_join_codes_are_unique(factories, team):
    with pytest.raises(IntegrityError), transaction.atomic():
        factories.TeamFactory(join_code=team.join_code)
    assert Team.objects.count() == 1


def test_hunts_end_after_they_start(factories, hunt):
    with pytest.raises(IntegrityError), transaction.atomic():
        factories.HuntFactory(starts_at=hunt.starts_at, ends_at=hunt.starts_at)
