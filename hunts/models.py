"""The event and its people: hunts, teams, members, announcements and the event log."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils import timezone


class HuntQuerySet(models.QuerySet):
    def published(self):
        return self.filter(published=True)

    def visible_to(self, user):
        """Published hunts, plus every hunt for staff (the rule of Hunt.is_visible_to)."""
        if getattr(user, "is_staff", False):
            return self
        return self.published()


class Hunt(models.Model):
    class State(models.TextChoices):
        UPCOMING = "upcoming"
        RUNNING = "running"
        ENDED = "ended"

    slug = models.SlugField(max_length=60, unique=True)
    title = models.CharField(max_length=200)
    intro = models.TextField(blank=True, default="")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    published = models.BooleanField(default=True)
    max_team_size = models.PositiveSmallIntegerField(default=4)
    guess_limit_guesses = models.PositiveIntegerField(null=True, blank=True, default=20)
    guess_limit_minutes = models.PositiveIntegerField(null=True, blank=True, default=10)
    freeze_minutes = models.PositiveIntegerField(
        default=0,
        help_text="Freeze the public leaderboard for the last N minutes of the hunt (0 = never).",
    )
    max_open_hint_requests = models.PositiveSmallIntegerField(
        default=3, help_text="Unanswered questions a team may have open on one puzzle."
    )
    event_seq = models.PositiveBigIntegerField(default=0, editable=False)
    # The last state the clock announced (hunt.started / hunt.ended), so it does so once.
    announced_state = models.CharField(
        max_length=10, choices=State.choices, default=State.UPCOMING, editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = HuntQuerySet.as_manager()

    class Meta:
        ordering = ["starts_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")), name="hunt_ends_after_start"
            ),
        ]

    def __str__(self):
        return self.title

    def get_absolute_url(self):
        return reverse("hunts:detail", kwargs={"hunt": self.slug})

    def is_visible_to(self, user) -> bool:
        """Whether HuntQuerySet.visible_to(user) holds this hunt: published, or any hunt for staff."""
        return self.published or getattr(user, "is_staff", False)

    def state_at(self, now) -> str:
        if now < self.starts_at:
            return self.State.UPCOMING
        if now < self.ends_at:
            return self.State.RUNNING
        return self.State.ENDED

    @property
    def state(self) -> str:
        return self.state_at(timezone.now())

    @property
    def freeze_at(self):
        """When the public leaderboard freezes (None without a freeze); it thaws at the end."""
        if not self.freeze_minutes:
            return None
        return max(self.ends_at - timedelta(minutes=self.freeze_minutes), self.starts_at)

    def frozen_at(self, now: datetime) -> datetime | None:
        """The freeze instant while the public board is frozen at `now`, else None."""
        freeze_at = self.freeze_at
        if freeze_at is not None and freeze_at <= now < self.ends_at:
            return freeze_at
        return None

    @property
    def guess_limit(self) -> dict | None:
        if self.guess_limit_guesses is None or self.guess_limit_minutes is None:
            return None
        return {"guesses": self.guess_limit_guesses, "minutes": self.guess_limit_minutes}


class TeamQuerySet(models.QuerySet):
    def with_members(self):
        """Teams with at least one member: an empty team leaves the leaderboard."""
        return self.filter(Exists(Membership.objects.filter(team=OuterRef("pk"))))

    def ranked(self):
        """Teams that appear on the leaderboard, best first (ties listed by earlier creation)."""
        return (
            self.with_members()
            .filter(hidden=False)
            .order_by("-score", models.F("last_scored_at").asc(nulls_last=True), "created_at", "id")
        )


class Team(models.Model):
    hunt = models.ForeignKey(Hunt, on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(max_length=40)
    slug = models.SlugField(max_length=60)
    join_code = models.CharField(max_length=8, unique=True)
    event_seq = models.PositiveBigIntegerField(default=0, editable=False)
    hidden = models.BooleanField(
        default=False, help_text="Hidden teams (staff, testsolvers) are left off rankings."
    )
    # Denormalized under the team's row lock, so the leaderboard is one query.
    score = models.IntegerField(default=0, editable=False)
    solve_count = models.PositiveIntegerField(default=0, editable=False)
    last_scored_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    objects = TeamQuerySet.as_manager()

    class Meta:
        ordering = ["hunt", "created_at", "id"]
        constraints = [
            models.UniqueConstraint(Lower("name"), "hunt", name="team_name_unique_in_hunt_ci"),
            models.UniqueConstraint(fields=["hunt", "slug"], name="team_slug_unique_in_hunt"),
        ]

    def __str__(self):
        return self.name


class Membership(models.Model):
    hunt = models.ForeignKey(Hunt, on_delete=models.CASCADE, related_name="memberships")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    joined_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["joined_at", "id"]
        constraints = [models.UniqueConstraint(fields=["hunt", "user"], name="one_team_per_user_per_hunt")]

    def __str__(self):
        return f"{self.user} in {self.team}"


class Announcement(models.Model):
    hunt = models.ForeignKey(Hunt, on_delete=models.CASCADE, related_name="announcements")
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return self.text[:60]


class Event(models.Model):
    """The log of everything a client must not miss; seq numbers have no gaps per stream."""

    hunt = models.ForeignKey(Hunt, on_delete=models.CASCADE, related_name="events")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, null=True, blank=True, related_name="events")
    seq = models.PositiveBigIntegerField()
    kind = models.CharField(max_length=40)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "seq"], condition=Q(team__isnull=False), name="event_team_seq_unique"
            ),
            models.UniqueConstraint(
                fields=["hunt", "seq"], condition=Q(team__isnull=True), name="event_hunt_seq_unique"
            ),
        ]

    def __str__(self):
        return f"{self.kind} #{self.seq}"

    @property
    def stream(self) -> str:
        return "team" if self.team_id else "hunt"
