"""Staff controls of teams and the clock (hunts.operations): each with the events it logs and pushes."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from hunts import events as hunt_events
from hunts.errors import NotFound
from hunts.events import iso
from hunts.models import Event, Hunt, Membership
from hunts.operations import move_hunt_end, remove_member, set_team_hidden
from hunts.services import create_team, rotate_join_code
from puzzles.leaderboard import leaderboard, rank_of
from puzzles.services import release_due
from testing.pushes import Pushed

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(factories):
    return factories.UserFactory(username="sam", is_staff=True)


@pytest.fixture
def member(factories, hunt):
    return factories.MembershipFactory(team__hunt=hunt, team__name="Gulls", user__username="ann")


@pytest.fixture
def pushed(monkeypatch, django_capture_on_commit_callbacks):
    """Frames pushed after commit, as (group, frame); run the call inside `pushed.commit()`."""
    frames = Pushed(django_capture_on_commit_callbacks)
    monkeypatch.setattr(hunt_events, "send_frames", frames.extend)
    return frames


def team_events(team):
    return [(e.kind, e.data) for e in Event.objects.filter(team=team).order_by("seq")]


def hunt_events_of(hunt):
    return [(e.kind, e.data) for e in Event.objects.filter(hunt=hunt, team__isnull=True).order_by("seq")]


# --- Hide and show -----------------------------------------------------------------------------------


def test_a_hidden_team_leaves_the_rankings_and_its_members_and_staff_are_told(member, staff, pushed):
    team = member.team
    assert rank_of(team.hunt, team) == 1

    with pushed.commit():
        set_team_hidden(team=team, hidden=True, staff=staff)

    assert rank_of(team.hunt, team) is None
    assert team_events(team)[-1] == ("team.hidden", {})
    assert (f"team.{team.pk}", "team.hidden") in pushed.groups()
    assert (f"staff.{team.hunt_id}", "team.hidden") in pushed.groups()

    with pushed.commit():
        set_team_hidden(team=team, hidden=False, staff=staff)

    assert [row["team"]["slug"] for row in leaderboard(team.hunt)] == [team.slug]
    assert team_events(team)[-1] == ("team.unhidden", {})


def test_hiding_a_hidden_team_again_changes_nothing(member, staff):
    set_team_hidden(team=member.team, hidden=True, staff=staff)
    count = Event.objects.count()

    set_team_hidden(team=member.team, hidden=True, staff=staff)

    assert Event.objects.count() == count


def test_only_staff_run_the_controls(member, hunt):
    player = member.user
    with pytest.raises(PermissionDenied):
        set_team_hidden(team=member.team, hidden=True, staff=player)
    with pytest.raises(PermissionDenied):
        remove_member(hunt=hunt, user=player, staff=player)
    with pytest.raises(PermissionDenied):
        move_hunt_end(hunt=hunt, staff=player, extend_minutes=10)
    assert not Event.objects.filter(kind__in=["team.hidden", "member.left", "hunt.rescheduled"]).exists()


def test_a_team_created_by_staff_is_hidden_and_one_created_by_a_player_is_not(hunt, staff, factories):
    testsolvers = create_team(hunt=hunt, user=staff, name="Testsolvers")
    players = create_team(hunt=hunt, user=factories.UserFactory(), name="Players")

    assert (testsolvers.hidden, players.hidden) == (True, False)
    assert [row["team"]["name"] for row in leaderboard(hunt)] == ["Players"]


# --- Join code and members -----------------------------------------------------------------------------


def test_rotating_the_join_code_tells_the_members_the_new_code(member, pushed):
    with pushed.commit():
        rotated = rotate_join_code(team=member.team)

    assert team_events(member.team)[-1] == ("join_code.rotated", {"join_code": rotated.join_code})
    assert (f"team.{member.team_id}", "join_code.rotated") in pushed.groups()


def test_staff_remove_a_member_like_a_leave_and_the_users_sockets_close(hunt, member, staff, pushed):
    with pushed.commit():
        team = remove_member(hunt=hunt, user=member.user, staff=staff)

    assert not Membership.objects.filter(pk=member.pk).exists()
    assert team_events(team)[-1] == ("member.left", {"user": "ann"})
    assert (f"user.{member.user_id}", "membership.ended") in pushed.groups()


def test_staff_can_remove_a_member_after_the_end_when_players_cannot_leave(hunt, member, staff):
    Hunt.objects.filter(pk=hunt.pk).update(
        starts_at=timezone.now() - timedelta(days=2), ends_at=timezone.now() - timedelta(hours=1)
    )
    hunt.refresh_from_db()

    remove_member(hunt=hunt, user=member.user, staff=staff)

    assert not Membership.objects.filter(hunt=hunt).exists()


def test_removing_someone_not_on_a_team_is_not_found(hunt, staff, factories):
    with pytest.raises(NotFound):
        remove_member(hunt=hunt, user=factories.UserFactory(), staff=staff)


# --- The end -----------------------------------------------------------------------------------------


def test_extending_the_end_moves_it_and_the_freeze_and_tells_everyone(hunt, staff, pushed):
    Hunt.objects.filter(pk=hunt.pk).update(freeze_minutes=30)
    hunt.refresh_from_db()
    old_end = hunt.ends_at

    with pushed.commit():
        moved = move_hunt_end(hunt=hunt, staff=staff, extend_minutes=45)

    hunt.refresh_from_db()
    assert hunt.ends_at == moved.ends_at == old_end + timedelta(minutes=45)
    assert hunt.freeze_at == hunt.ends_at - timedelta(minutes=30)
    assert hunt_events_of(hunt) == [
        (
            "hunt.rescheduled",
            {
                "starts_at": iso(hunt.starts_at),
                "ends_at": iso(hunt.ends_at),
                "freeze_at": iso(hunt.freeze_at),
            },
        )
    ]
    assert (f"hunt.{hunt.pk}", "hunt.rescheduled") in pushed.groups()


def test_an_end_moved_into_the_past_is_announced_by_the_next_tick(hunt, staff):
    release_due(hunt=hunt)  # hunt.started
    now = timezone.now()

    move_hunt_end(hunt=hunt, staff=staff, ends_at=now - timedelta(minutes=1))
    hunt.refresh_from_db()
    release_due(hunt=hunt, now=now)

    assert [kind for kind, _ in hunt_events_of(hunt)] == ["hunt.started", "hunt.rescheduled", "hunt.ended"]
    assert hunt.state == Hunt.State.ENDED


def test_reopening_an_ended_hunt_makes_the_clock_announce_the_new_end_again(hunt, staff):
    now = timezone.now()
    Hunt.objects.filter(pk=hunt.pk).update(ends_at=now - timedelta(minutes=5))
    hunt.refresh_from_db()
    release_due(hunt=hunt, now=now)
    assert Hunt.objects.get(pk=hunt.pk).announced_state == Hunt.State.ENDED

    move_hunt_end(hunt=hunt, staff=staff, ends_at=now + timedelta(minutes=30))
    hunt.refresh_from_db()

    assert (hunt.state, hunt.announced_state) == (Hunt.State.RUNNING, Hunt.State.RUNNING)
    release_due(hunt=hunt, now=now + timedelta(minutes=31))
    kinds = [kind for kind, _ in hunt_events_of(hunt)]
    assert kinds == ["hunt.started", "hunt.ended", "hunt.rescheduled", "hunt.ended"]


def test_the_end_must_stay_after_the_start_and_be_given_one_way(hunt, staff):
    with pytest.raises(ValidationError):
        move_hunt_end(hunt=hunt, staff=staff, ends_at=hunt.starts_at)
    with pytest.raises(ValidationError):
        move_hunt_end(hunt=hunt, staff=staff)
    with pytest.raises(ValidationError):
        move_hunt_end(hunt=hunt, staff=staff, ends_at=hunt.ends_at, extend_minutes=5)
    assert not Event.objects.exists()
