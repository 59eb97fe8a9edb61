"""Use cases of the event and its people: teams, membership, announcements."""

import functools
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.text import slugify
from rest_framework.authtoken.models import Token

from treasurehunt import hotsql

from .errors import NotFound
from .events import EventLog, after_commit, mark_leaderboard_dirty, send_ephemeral, user_group
from .models import Announcement, Hunt, Membership, Team

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
JOIN_CODE_LENGTH = 8
TEAM_NAME_MAX = 40
ANNOUNCEMENT_MAX = 2000


def lock_hunt(hunt_id: int) -> Hunt:
    """Lock the hunt row (first in the lock order) and return it fresh."""
    return Hunt.objects.select_for_update(no_key=True).get(pk=hunt_id)


def lock_teams(team_ids) -> dict[int, Team]:
    """Lock team rows by ascending id (last in the lock order) and return them fresh."""
    teams = Team.objects.select_for_update(no_key=True).filter(pk__in=sorted(set(team_ids))).order_by("pk")
    return {t.pk: t for t in teams}


def lock_team(team_id: int) -> Team:
    team = lock_teams([team_id]).get(team_id)
    if team is None:
        raise NotFound("That team no longer exists.")
    return team


def get_hunt(*, slug: str, user) -> Hunt:
    """The hunt with this slug if the user may see it (unpublished hunts are staff-only)."""
    hunt = Hunt.objects.filter(slug=slug).first()
    if hunt is None or not hunt.is_visible_to(user):
        raise no_such_hunt(slug)
    return hunt


def no_such_hunt(slug: str) -> NotFound:
    return NotFound(f"No hunt '{slug}'.")


NOT_ON_A_TEAM = "You are not on a team in this hunt."


def hunt_and_team(*, slug: str, user, read: tuple | None = None) -> tuple[Hunt, Team | None]:
    """get_hunt and team_of: one statement for a signed-in user (stream_access), as a request reads them.

    `read`: (slug, hunt, team) as token_access read them along with the caller, for this request.
    """
    if read is not None and read[0] == slug:
        _, hunt, team = read
    elif not getattr(user, "is_authenticated", False):
        return get_hunt(slug=slug, user=user), None
    else:
        _, hunt, team = stream_access(hunt_slug=slug, user=user)
    if hunt is None:
        raise no_such_hunt(slug)
    return hunt, team


@functools.cache
def _stream_access_sql(vendor: str, by: str) -> str:
    User = get_user_model()
    t, c = hotsql.table, hotsql.col
    who = (
        f"(SELECT k.{c(Token, 'user')} FROM {t(Token)} k WHERE k.{c(Token, 'key')} = %s)"
        if by == "token"
        else "%s"
    )
    return (
        f"SELECT {hotsql.columns(User, 'u')}, {hotsql.columns(Hunt, 'h')}, {hotsql.columns(Team, 't')} "
        f"FROM {t(User)} u LEFT JOIN {t(Hunt)} h ON h.{c(Hunt, 'slug')} = %s "
        f"LEFT JOIN {t(Membership)} m ON m.{c(Membership, 'hunt')} = h.{c(Hunt, 'id')} "
        f"AND m.{c(Membership, 'user')} = u.{c(User, 'id')} "
        f"LEFT JOIN {t(Team)} t ON t.{c(Team, 'id')} = m.{c(Membership, 'team')} "
        f"WHERE u.{c(User, 'id')} = {who}"
    )


def stream_access(*, hunt_slug: str, token_key: str | None = None, user=None):
    """Who opens a live stream, to which hunt, on which team: (user, hunt, team), in one statement.

    What hunts.middleware.user_for_token (by `token_key`; else the given user, by id), get_hunt and team_of
    read, for a socket's connect: user None for no active user behind the token, hunt None for a hunt the
    user may not see (as get_hunt), team None without one.
    """
    from django.db import connection

    if token_key is not None:
        row = hotsql.fetch_one(_stream_access_sql(connection.vendor, "token"), [hunt_slug, token_key])
    elif getattr(user, "is_authenticated", False):
        row = hotsql.fetch_one(_stream_access_sql(connection.vendor, "user"), [hunt_slug, user.pk])
    else:
        row = None
    found, hunt, team = _access(row)
    if found is None or not found.is_active:
        return None, None, None
    return found, hunt, team


def token_access(*, key: str, hunt_slug: str | None):
    """The user behind an API token, with the hunt of this slug and the user's team on it, in one statement:
    (user, hunt, team) as stream_access reads them, except that the user may be inactive (None: no such
    token). For hunts.authentication: a hunt-scoped API request knows its caller, hunt and team at once.
    """
    from django.db import connection

    row = hotsql.fetch_one(_stream_access_sql(connection.vendor, "token"), [hunt_slug or "", key])
    return _access(row)


def _access(row: tuple | None):
    if row is None:
        return None, None, None
    User = get_user_model()
    found = hotsql.from_row(User, row)
    start = hotsql.width(User)
    hunt = hotsql.from_row(Hunt, row, start=start)
    if hunt.pk is None or not hunt.is_visible_to(found):
        return found, None, None
    team = hotsql.from_row(Team, row, start=start + hotsql.width(Hunt))
    if team.pk is None:
        return found, hunt, None
    team.hunt = hunt
    return found, hunt, team


def team_of(*, hunt: Hunt, user) -> Team | None:
    if not getattr(user, "is_authenticated", False):
        return None
    return Team.objects.filter(hunt=hunt, memberships__user=user).select_related("hunt").first()


def require_team(*, hunt: Hunt, user) -> Team:
    return team_required(team_of(hunt=hunt, user=user))


def team_required(team: Team | None) -> Team:
    """The team read for a caller; NotFound when they have none."""
    if team is None:
        raise NotFound(NOT_ON_A_TEAM)
    return team


def may_follow(team: Team | None, user) -> bool:
    """Whether a caller may follow a hunt's play (its API views, its live stream): on a team, or staff."""
    return team is not None or getattr(user, "is_staff", False)


def team_or_staff_required(team: Team | None, user) -> Team | None:
    """The team read for a caller; staff may go without one (None); anyone else without one is NotFound."""
    if not may_follow(team, user):
        raise NotFound(NOT_ON_A_TEAM)
    return team


def normalize_join_code(code: str) -> str:
    """Crockford base32 read leniently: case, I/L as 1, O as 0, hyphens and spaces ignored."""
    code = (code or "").upper().translate(str.maketrans("ILO", "110"))
    return "".join(ch for ch in code if ch not in "- ")


def new_join_code() -> str:
    return "".join(secrets.choice(CROCKFORD) for _ in range(JOIN_CODE_LENGTH))


def clean_team_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise ValidationError({"name": ["Enter a team name."]})
    if len(name) > TEAM_NAME_MAX:
        raise ValidationError({"name": [f"Team names have at most {TEAM_NAME_MAX} characters."]})
    if not any(ch.isalnum() for ch in name):
        raise ValidationError({"name": ["Use at least one letter or digit in the team name."]})
    return name


def _unique_slug(hunt: Hunt, name: str) -> str:
    # Slugs stay ASCII; a name in another script ("灯台守") gets "team", "team-2", ...
    base = slugify(name)[:50] or "team"
    taken = set(Team.objects.filter(hunt=hunt, slug__startswith=base).values_list("slug", flat=True))
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    return slug


def _check_can_join(hunt: Hunt, user: AbstractBaseUser) -> None:
    if hunt.state == Hunt.State.ENDED:
        raise PermissionDenied(f"The hunt ended at {hunt.ends_at:%Y-%m-%d %H:%M} UTC; teams are closed.")
    existing = Membership.objects.filter(hunt=hunt, user=user).select_related("team").first()
    if existing:
        raise ValidationError(f"You are already on team {existing.team.name} in this hunt; leave it first.")


@transaction.atomic
def create_team(*, hunt: Hunt, user: AbstractBaseUser, name: str) -> Team:
    """Create a team and make its creator the first member; a team created by staff is hidden."""
    name = clean_team_name(name)
    _check_can_join(hunt, user)
    if Team.objects.annotate(lname=Lower("name")).filter(hunt=hunt, lname=name.lower()).exists():
        raise ValidationError({"name": [f"A team named {name} already exists in this hunt."]})
    for _ in range(5):
        try:
            with transaction.atomic():
                team = Team.objects.create(
                    hunt=hunt,
                    name=name,
                    slug=_unique_slug(hunt, name),
                    join_code=new_join_code(),
                    hidden=bool(getattr(user, "is_staff", False)),
                )
                Membership.objects.create(hunt=hunt, team=team, user=user)
            break
        except IntegrityError as exc:
            # A concurrent request took the name, the slug, the code or the membership.
            if Membership.objects.filter(hunt=hunt, user=user).exists():
                raise ValidationError("You are already on a team in this hunt.") from exc
            if Team.objects.annotate(lname=Lower("name")).filter(hunt=hunt, lname=name.lower()).exists():
                raise ValidationError(
                    {"name": [f"A team named {name} already exists in this hunt."]}
                ) from exc
    else:
        raise ValidationError("Could not create the team; please try again.")
    team = lock_team(team.pk)
    log = EventLog(hunt)
    log.team(team, "member.joined", {"user": user.get_username()})
    log.flush()
    # The team enters the leaderboard (teams with members): drop the cached board.
    mark_leaderboard_dirty(hunt.pk)
    return team


@transaction.atomic
def join_team(*, hunt: Hunt, user: AbstractBaseUser, join_code: str) -> Team:
    """Join the team with this code; full teams and a second team in the same hunt are refused."""
    code = normalize_join_code(join_code)
    team_id = Team.objects.filter(hunt=hunt, join_code=code).values_list("pk", flat=True).first()
    if team_id is None:
        raise ValidationError({"join_code": ["No team in this hunt has that join code."]})
    team = lock_team(team_id)
    if Membership.objects.filter(team=team, user=user).exists():
        return team
    _check_can_join(hunt, user)
    if Membership.objects.filter(team=team).count() >= hunt.max_team_size:
        raise ValidationError(f"Team {team.name} is full ({hunt.max_team_size} members).")
    try:
        with transaction.atomic():
            Membership.objects.create(hunt=hunt, team=team, user=user)
    except IntegrityError as exc:
        raise ValidationError("You are already on a team in this hunt.") from exc
    log = EventLog(hunt)
    log.team(team, "member.joined", {"user": user.get_username()})
    log.flush()
    # A team that had emptied comes back onto the leaderboard.
    mark_leaderboard_dirty(hunt.pk)
    return team


@transaction.atomic
def leave_team(*, hunt: Hunt, user: AbstractBaseUser) -> Team:
    """Leave the user's team; an empty team stays in the database but leaves the leaderboard."""
    membership = Membership.objects.filter(hunt=hunt, user=user).first()
    if membership is None:
        raise NotFound(NOT_ON_A_TEAM)
    if hunt.state == Hunt.State.ENDED:
        # The last member leaving would take the team off the final standings.
        raise PermissionDenied(f"The hunt ended at {hunt.ends_at:%Y-%m-%d %H:%M} UTC; teams are closed.")
    return end_membership(hunt=hunt, user=user, membership=membership)


def end_membership(*, hunt: Hunt, user: AbstractBaseUser, membership: Membership) -> Team:
    """End a membership: log `member.left`, close the user's team sockets (callers check the rules)."""
    team = lock_team(membership.team_id)
    deleted, _ = Membership.objects.filter(pk=membership.pk).delete()
    if not deleted:  # a concurrent leave (a double click) won while this one waited for the lock
        raise NotFound(NOT_ON_A_TEAM)
    log = EventLog(hunt)
    log.team(team, "member.left", {"user": user.get_username()})
    log.flush()
    user_id, hunt_id = user.pk, hunt.pk
    # The user's open sockets on this hunt lose the team stream: the consumer closes them with 4403.
    after_commit(
        lambda: send_ephemeral(group=user_group(user_id), frame={"type": "membership.ended", "hunt": hunt_id})
    )
    mark_leaderboard_dirty(hunt.pk)
    return team


@transaction.atomic
def rotate_join_code(*, team: Team) -> Team:
    """Give the team a fresh join code; the old one stops working at once."""
    team = lock_team(team.pk)
    for _ in range(5):
        try:
            with transaction.atomic():
                team.join_code = new_join_code()
                team.save(update_fields=["join_code"])
        except IntegrityError:
            continue
        # Members' pages show the code: they get the new one live (the team stream is members-only).
        log = EventLog(team.hunt)
        log.team(team, "join_code.rotated", {"join_code": team.join_code}, staff=True)
        log.flush()
        return team
    raise ValidationError("Could not rotate the join code; please try again.")


@transaction.atomic
def post_announcement(*, hunt: Hunt, text: str, user: AbstractBaseUser | None = None) -> Announcement:
    """Post an announcement to every player of the hunt (staff only)."""
    if user is not None and not user.is_staff:
        raise PermissionDenied("Only staff can post announcements.")
    text = (text or "").strip()
    if not text:
        raise ValidationError({"text": ["Write the announcement text."]})
    if len(text) > ANNOUNCEMENT_MAX:
        raise ValidationError({"text": [f"Announcements have at most {ANNOUNCEMENT_MAX} characters."]})
    hunt = lock_hunt(hunt.pk)
    announcement = Announcement.objects.create(hunt=hunt, text=text, created_at=timezone.now())
    log = EventLog(hunt)
    log.hunt_wide("announcement.posted", {"id": announcement.pk, "text": text})
    log.flush()
    return announcement
