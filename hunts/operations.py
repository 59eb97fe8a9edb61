"""Staff controls of a live hunt, for its teams and its clock: one use case per function, staff only.

The admin actions, the staff live view and the staff API call these; see .dev/README_running.md.
The puzzle-side controls (unlock, re-lock, scores, errata, re-judging) are in puzzles/operations.py.
"""

from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from .errors import NotFound
from .events import EventLog, iso, mark_leaderboard_dirty
from .models import Hunt, Membership, Team
from .services import end_membership, lock_hunt, lock_team

STATE_ORDER = [Hunt.State.UPCOMING, Hunt.State.RUNNING, Hunt.State.ENDED]
MAX_EXTEND_MINUTES = 60 * 24 * 366


def require_staff(staff) -> None:
    if not getattr(staff, "is_staff", False):
        raise PermissionDenied("Only staff can do that.")


@transaction.atomic
def set_team_hidden(*, team: Team, hidden: bool, staff: AbstractBaseUser) -> Team:
    """Hide the team from the rankings (staff, testsolvers) or show it again; logs team.hidden/unhidden."""
    require_staff(staff)
    team = lock_team(team.pk)
    if team.hidden == hidden:
        return team
    team.hidden = hidden
    log = EventLog(team.hunt)
    log.save_team(team, "hidden")
    log.team(team, "team.hidden" if hidden else "team.unhidden", {}, staff=True)
    log.flush()
    mark_leaderboard_dirty(team.hunt_id)
    return team


@transaction.atomic
def remove_member(*, hunt: Hunt, user: AbstractBaseUser, staff: AbstractBaseUser) -> Team:
    """Take a player off their team, as leave_team does (member.left, sockets closed); also after the end."""
    require_staff(staff)
    membership = Membership.objects.filter(hunt=hunt, user=user).first()
    if membership is None:
        raise NotFound(f"{user.get_username()} is not on a team in this hunt.")
    return end_membership(hunt=hunt, user=user, membership=membership)


@transaction.atomic
def move_hunt_end(
    *,
    hunt: Hunt,
    staff: AbstractBaseUser,
    ends_at: datetime | None = None,
    extend_minutes: int | None = None,
) -> Hunt:
    """Move the end to `ends_at`, or by `extend_minutes` (negative: earlier); logs hunt.rescheduled.

    The clock re-plans from the hunt's times: the freeze moves with the end, and an end moved into the
    past is announced (hunt.ended) on the next tick. Moving the end of an ended hunt into the future
    reopens it: the announced state goes back, so the clock announces hunt.ended again at the new end.
    """
    require_staff(staff)
    if (ends_at is None) == (extend_minutes is None):
        raise ValidationError("Give either the new end time or the minutes to move the end by.")
    if extend_minutes is not None and abs(extend_minutes) > MAX_EXTEND_MINUTES:
        raise ValidationError({"extend_minutes": ["Move the end by at most a year."]})
    now = timezone.now()
    hunt = lock_hunt(hunt.pk)
    new_end = ends_at if ends_at is not None else hunt.ends_at + timedelta(minutes=extend_minutes)
    if new_end <= hunt.starts_at:
        raise ValidationError(
            {"ends_at": [f"The hunt must end after it starts ({hunt.starts_at:%Y-%m-%d %H:%M} UTC)."]}
        )
    if new_end == hunt.ends_at:
        return hunt
    hunt.ends_at = new_end
    state = hunt.state_at(now)
    if STATE_ORDER.index(state) < STATE_ORDER.index(hunt.announced_state):
        hunt.announced_state = state
    Hunt.objects.filter(pk=hunt.pk).update(ends_at=hunt.ends_at, announced_state=hunt.announced_state)
    log = EventLog(hunt)
    log.hunt_wide(
        "hunt.rescheduled",
        {
            "starts_at": iso(hunt.starts_at),
            "ends_at": iso(hunt.ends_at),
            "freeze_at": iso(hunt.freeze_at) if hunt.freeze_at else None,
        },
    )
    log.flush()
    # The public board's freeze moved with the end.
    mark_leaderboard_dirty(hunt.pk)
    return hunt
