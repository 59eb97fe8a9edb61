"""Read-only queries shared by the API and the pages; rules stay in services.py."""

from django.core.exceptions import ValidationError
from django.db.models import Case, IntegerField, OuterRef, Q, QuerySet, Subquery, Value, When

from .errors import NotFound
from .models import Announcement, Event, Hunt, Membership, Team


def hunts_for(user) -> QuerySet[Hunt]:
    """Hunts the user may see, each annotated with the user's team as `team_slug` / `team_name` (or None)."""
    mine = Membership.objects.filter(hunt=OuterRef("pk"), user_id=user.pk)
    return Hunt.objects.visible_to(user).annotate(
        team_slug=Subquery(mine.values("team__slug")[:1]),
        team_name=Subquery(mine.values("team__name")[:1]),
    )


def member_names(team: Team) -> list[str]:
    """Usernames of the team's members, in joining order."""
    return list(
        Membership.objects.filter(team=team)
        .order_by("joined_at", "id")
        .values_list("user__username", flat=True)
    )


def announcements_of(hunt: Hunt) -> QuerySet[Announcement]:
    return Announcement.objects.filter(hunt=hunt).order_by("-created_at", "-id")


def events_after(
    *, hunt: Hunt, team: Team | None, team_seq: int | None, hunt_seq: int | None
) -> QuerySet[Event]:
    """Logged events with seq above the given ones, hunt stream first (the rules of the WebSocket resume).

    Neither seq given: both streams from the start (only the hunt stream without a team). A seq above
    its stream's head is a ValidationError; `hunt` and `team` must be fresh, their event_seq is the head.
    """
    if team_seq is None and hunt_seq is None:
        hunt_seq, team_seq = 0, (0 if team is not None else None)
    errors = {}
    if team_seq is not None:
        if team is None:
            errors["team_seq"] = ["You are not on a team in this hunt, so there is no team stream."]
        elif team_seq > team.event_seq:
            errors["team_seq"] = [
                f"team_seq {team_seq} is above the team stream's head ({team.event_seq}); "
                "resume from a seq you received."
            ]
    if hunt_seq is not None and hunt_seq > hunt.event_seq:
        errors["hunt_seq"] = [
            f"hunt_seq {hunt_seq} is above the hunt stream's head ({hunt.event_seq}); "
            "resume from a seq you received."
        ]
    if errors:
        raise ValidationError(errors)
    wanted = Q(pk__in=[])
    if hunt_seq is not None:
        wanted |= Q(hunt=hunt, team__isnull=True, seq__gt=hunt_seq)
    if team_seq is not None:
        wanted |= Q(team=team, seq__gt=team_seq)
    return (
        Event.objects.filter(wanted)
        .annotate(
            stream_order=Case(
                When(team__isnull=True, then=Value(0)), default=Value(1), output_field=IntegerField()
            )
        )
        .order_by("stream_order", "seq")
    )


def teams_by_score(hunt: Hunt) -> QuerySet[Team]:
    """Every team with members (hidden ones included), best score first: the staff view's rows."""
    return Team.objects.filter(hunt=hunt).with_members().order_by("-score", "created_at", "id")


# Hunt-stream kinds anyone may read without logging in (spectators). Errata and treasure clues are left out:
# they speak about puzzles, which only teams that have them may read.
PUBLIC_EVENT_KINDS = (
    "announcement.posted",
    "treasure.claimed",
    "hunt.started",
    "hunt.ended",
    "hunt.rescheduled",
)


def public_events_after(*, hunt: Hunt, hunt_seq: int = 0) -> QuerySet[Event]:
    """The hunt stream's public events with seq above `hunt_seq`, in order (seqs skip the other kinds).

    `hunt` must be fresh: a seq above its head is a ValidationError, as for events_after.
    """
    if hunt_seq > hunt.event_seq:
        raise ValidationError(
            {
                "hunt_seq": [
                    f"hunt_seq {hunt_seq} is above the hunt stream's head ({hunt.event_seq}); "
                    "resume from a seq you received."
                ]
            }
        )
    return Event.objects.filter(
        hunt=hunt, team__isnull=True, seq__gt=hunt_seq, kind__in=PUBLIC_EVENT_KINDS
    ).order_by("seq")


def team_in(hunt: Hunt, slug: str) -> Team:
    """The hunt's team with this slug (staff tools); NotFound otherwise."""
    team = Team.objects.filter(hunt=hunt, slug=slug).select_related("hunt").first()
    if team is None:
        raise NotFound(f"No team '{slug}' in this hunt.")
    return team
