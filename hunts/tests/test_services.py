"""Teams and membership: create, join by code, leave, rotate the code; and announcements."""

import re
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from hunts import events as hunt_events
from hunts import services
from hunts.errors import NotFound
from hunts.models import Event, Membership, Team
from hunts.services import (
    create_team,
    join_team,
    leave_team,
    normalize_join_code,
    post_announcement,
    require_team,
    rotate_join_code,
    team_of,
)
from puzzles.leaderboard import leaderboard

pytestmark = pytest.mark.django_db

CROCKFORD_CODE = re.compile(r"[0-9A-HJKMNP-TV-Z]{8}")


@pytest.fixture
def hunt(factories):
    return factories.HuntFactory(max_team_size=2)


@pytest.fixture
def ann(factories):
    return factories.UserFactory(username="ann")


@pytest.fixture
def bob(factories):
    return factories.UserFactory(username="bob")


def team_events(team):
    return [(e.seq, e.kind, e.data) for e in Event.objects.filter(team=team).order_by("seq")]


# --- create -------------------------------------------------------------------------------


def test_creator_joins_the_new_team(hunt, ann):
    team = create_team(hunt=hunt, user=ann, name="  The   Lighthouse Keepers ")

    assert team.name == "The Lighthouse Keepers"
    assert team.slug == "the-lighthouse-keepers"
    assert CROCKFORD_CODE.fullmatch(team.join_code)
    assert list(team.memberships.values_list("user__username", flat=True)) == ["ann"]
    assert team_of(hunt=hunt, user=ann) == team
    assert team_events(team) == [(1, "member.joined", {"user": "ann"})]


def test_teams_whose_names_slugify_alike_get_distinct_slugs(factories, hunt, ann, bob):
    first = create_team(hunt=hunt, user=ann, name="Sea Dogs")
    second = create_team(hunt=hunt, user=bob, name="Sea-Dogs!")

    assert (first.slug, second.slug) == ("sea-dogs", "sea-dogs-2")


def test_a_name_without_latin_letters_is_a_valid_team_name(hunt, ann, bob):
    first = create_team(hunt=hunt, user=ann, name="灯台守")
    second = create_team(hunt=hunt, user=bob, name="Маяк")

    assert first.name == "灯台守" and first.slug
    assert second.slug and second.slug != first.slug


@pytest.mark.parametrize("name", ["", "   ", "x" * 41, "!!!"])
def test_team_name_must_be_present_and_short(hunt, ann, name):
    with pytest.raises(ValidationError):
        create_team(hunt=hunt, user=ann, name=name)
    assert not Team.objects.exists()


def test_team_name_of_40_characters_is_fine(hunt, ann):
    assert create_team(hunt=hunt, user=ann, name="x" * 40).name == "x" * 40


def test_team_names_are_unique_in_a_hunt_ignoring_case(factories, hunt, ann, bob):
    create_team(hunt=hunt, user=ann, name="Sea Dogs")

    with pytest.raises(ValidationError) as exc:
        create_team(hunt=hunt, user=bob, name="SEA DOGS")

    assert "name" in exc.value.message_dict
    assert create_team(hunt=factories.HuntFactory(), user=bob, name="sea dogs").name == "sea dogs"


def test_a_member_cannot_create_a_second_team(hunt, ann):
    create_team(hunt=hunt, user=ann, name="First")

    with pytest.raises(ValidationError):
        create_team(hunt=hunt, user=ann, name="Second")
    assert Team.objects.count() == 1


def test_no_team_can_be_created_once_the_hunt_ended(factories, ann):
    hunt = factories.HuntFactory(starts_at=timezone.now() - timedelta(days=3))

    with pytest.raises(PermissionDenied):
        create_team(hunt=hunt, user=ann, name="Late")


def test_a_new_team_appears_on_the_cached_board_after_commit(django_capture_on_commit_callbacks, hunt, ann):
    assert leaderboard(hunt) == []

    with django_capture_on_commit_callbacks(execute=True):
        create_team(hunt=hunt, user=ann, name="Sea Dogs")

    assert [row["team"]["name"] for row in leaderboard(hunt)] == ["Sea Dogs"]


# --- join ---------------------------------------------------------------------------------


def test_join_code_is_read_leniently():
    assert normalize_join_code(" oi-lz ab-cd ") == "011ZABCD"


def test_join_by_code_adds_the_member(factories, hunt, ann, bob):
    team = factories.TeamFactory(hunt=hunt, join_code="01ABCD1Z")
    factories.MembershipFactory(team=team, user=ann)

    joined = join_team(hunt=hunt, user=bob, join_code="oi-abcd-lz")

    assert joined == team
    assert sorted(team.memberships.values_list("user__username", flat=True)) == ["ann", "bob"]
    assert team_events(team) == [(1, "member.joined", {"user": "bob"})]


def test_joining_twice_changes_nothing(factories, hunt, ann):
    team = factories.TeamFactory(hunt=hunt)
    factories.MembershipFactory(team=team, user=ann)

    assert join_team(hunt=hunt, user=ann, join_code=team.join_code) == team
    assert Membership.objects.count() == 1 and team_events(team) == []


def test_full_team_is_refused(factories, hunt, ann, bob):
    team = factories.TeamFactory(hunt=hunt)
    factories.MembershipFactory.create_batch(2, team=team)

    with pytest.raises(ValidationError, match="full"):
        join_team(hunt=hunt, user=bob, join_code=team.join_code)
    assert team.memberships.count() == 2


def test_second_team_in_the_same_hunt_is_refused(factories, hunt, ann):
    mine = create_team(hunt=hunt, user=ann, name="Mine")
    other = factories.TeamFactory(hunt=hunt)

    with pytest.raises(ValidationError, match="already on team Mine"):
        join_team(hunt=hunt, user=ann, join_code=other.join_code)
    assert team_of(hunt=hunt, user=ann) == mine


def test_teams_of_other_hunts_are_allowed(factories, hunt, ann):
    create_team(hunt=hunt, user=ann, name="Mine")
    elsewhere = factories.TeamFactory()

    assert join_team(hunt=elsewhere.hunt, user=ann, join_code=elsewhere.join_code) == elsewhere


def test_wrong_code_is_refused(factories, hunt, ann):
    factories.TeamFactory(hunt=hunt, join_code="01ABCD1Z")
    other_hunts_team = factories.TeamFactory()

    with pytest.raises(ValidationError) as exc:
        join_team(hunt=hunt, user=ann, join_code="01ABCD1Y")
    assert "join_code" in exc.value.message_dict
    with pytest.raises(ValidationError):
        join_team(hunt=hunt, user=ann, join_code=other_hunts_team.join_code)


# --- leave and rotate ---------------------------------------------------------------------


def test_leaving_appends_member_left(hunt, ann, bob):
    team = create_team(hunt=hunt, user=ann, name="Sea Dogs")
    join_team(hunt=hunt, user=bob, join_code=team.join_code)

    leave_team(hunt=hunt, user=bob)

    assert team_of(hunt=hunt, user=bob) is None
    assert team_events(team)[-1] == (3, "member.left", {"user": "bob"})


def test_empty_team_stays_in_the_database_but_leaves_the_board(hunt, ann):
    team = create_team(hunt=hunt, user=ann, name="Sea Dogs")

    leave_team(hunt=hunt, user=ann)

    assert Team.objects.filter(pk=team.pk).exists()
    assert leaderboard(hunt) == []


def test_a_concurrent_second_leave_appends_no_second_event(monkeypatch, hunt, ann):
    team = create_team(hunt=hunt, user=ann, name="Sea Dogs")
    lock_team = services.lock_team

    def lock_after_the_other_leave_committed(team_id):
        services.Membership.objects.filter(user=ann).delete()
        return lock_team(team_id)

    monkeypatch.setattr(services, "lock_team", lock_after_the_other_leave_committed)

    with pytest.raises(NotFound):
        leave_team(hunt=hunt, user=ann)
    assert [kind for _, kind, _ in team_events(team)] == ["member.joined"]


def test_leaving_without_a_team_is_not_found(hunt, ann):
    with pytest.raises(NotFound):
        leave_team(hunt=hunt, user=ann)
    with pytest.raises(NotFound):
        require_team(hunt=hunt, user=ann)


def test_leaving_ends_the_users_team_sockets_after_commit(
    monkeypatch, django_capture_on_commit_callbacks, hunt, ann
):
    create_team(hunt=hunt, user=ann, name="Sea Dogs")
    pushed = []
    monkeypatch.setattr(hunt_events, "send_frames", pushed.extend)

    with django_capture_on_commit_callbacks(execute=True):
        team = leave_team(hunt=hunt, user=ann)
        assert pushed == []

    assert (f"team.{team.pk}", "member.left") in [(group, frame["type"]) for group, frame in pushed]
    assert (f"user.{ann.pk}", "membership.ended") in [(group, frame["type"]) for group, frame in pushed]


def test_rotated_join_code_replaces_the_old_one(hunt, ann, bob):
    team = create_team(hunt=hunt, user=ann, name="Sea Dogs")
    old = team.join_code

    rotated = rotate_join_code(team=team)

    assert rotated.join_code != old and CROCKFORD_CODE.fullmatch(rotated.join_code)
    assert Team.objects.get(pk=team.pk).join_code == rotated.join_code
    with pytest.raises(ValidationError):
        join_team(hunt=hunt, user=bob, join_code=old)
    assert join_team(hunt=hunt, user=bob, join_code=rotated.join_code) == team


# --- announcements ------------------------------------------------------------------------


def test_staff_announcement_is_a_hunt_wide_event(factories, hunt):
    staff = factories.UserFactory(is_staff=True)

    announcement = post_announcement(hunt=hunt, text=" Puzzle 3 is fixed. ", user=staff)

    event = Event.objects.get(hunt=hunt, team__isnull=True)
    assert (event.seq, event.kind) == (1, "announcement.posted")
    assert event.data == {"id": announcement.pk, "text": "Puzzle 3 is fixed."}


def test_players_cannot_post_announcements(hunt, ann):
    with pytest.raises(PermissionDenied):
        post_announcement(hunt=hunt, text="Hello", user=ann)
    assert not Event.objects.exists()


def test_teams_are_closed_for_leaving_once_the_hunt_ended(factories, ann):
    hunt = factories.HuntFactory(starts_at=timezone.now() - timedelta(days=3))
    team = factories.MembershipFactory(team__hunt=hunt, user=ann).team

    with pytest.raises(PermissionDenied, match="teams are closed"):
        leave_team(hunt=hunt, user=ann)
    assert team_of(hunt=hunt, user=ann) == team
