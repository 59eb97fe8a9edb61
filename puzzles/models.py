"""Play: rounds, puzzles, answers, hints, guesses, solves, unlocks and treasures."""

from django.conf import settings
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.urls import reverse
from django.utils import timezone

from hunts.models import Hunt, Team


class Round(models.Model):
    hunt = models.ForeignKey(Hunt, on_delete=models.CASCADE, related_name="rounds")
    title = models.CharField(max_length=200)
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["hunt", "order", "id"]
        constraints = [models.UniqueConstraint(fields=["hunt", "title"], name="round_title_unique_in_hunt")]

    def __str__(self):
        return self.title


class PuzzleQuerySet(models.QuerySet):
    def with_rules(self):
        return self.filter(has_rules=True)

    def unlocked_for(self, team: Team, *, now=None):
        """Puzzles with an Unlock row for the team, plus rule-free puzzles once the hunt has started.

        A row that staff re-locked (`Unlock.locked`) hides the puzzle, rule-free ones included.
        """
        now = now or timezone.now()
        rows = Unlock.objects.filter(team=team, puzzle=OuterRef("pk"))
        condition = Q(Exists(rows.filter(locked=False)))
        if team.hunt.starts_at <= now:
            condition |= Q(has_rules=False) & ~Exists(rows.filter(locked=True))
        return self.filter(hunt_id=team.hunt_id).filter(condition)


class Puzzle(models.Model):
    hunt = models.ForeignKey(Hunt, on_delete=models.CASCADE, related_name="puzzles")
    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="puzzles")
    slug = models.SlugField(max_length=60)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True, default="", help_text="Markdown.")
    solution = models.TextField(blank=True, default="", help_text="Markdown, published after the hunt.")
    points = models.PositiveIntegerField(default=10)
    order = models.PositiveIntegerField(default=0)
    meta = models.BooleanField(default=False)
    # Unlock rules: every condition present must hold; none present = open at hunt start.
    unlock_after_minutes = models.PositiveIntegerField(null=True, blank=True)
    unlock_solves = models.PositiveIntegerField(null=True, blank=True)
    unlock_round_solves = models.PositiveIntegerField(null=True, blank=True)
    prerequisites = models.ManyToManyField(
        "self", symmetrical=False, blank=True, related_name="unlocks_puzzles"
    )
    unlock_needed = models.PositiveIntegerField(
        null=True, blank=True, help_text="How many prerequisites must be solved (default: all)."
    )
    # Kept in step with the rule fields by the authoring services (admin, hunt files).
    has_rules = models.BooleanField(default=False, editable=False)
    # Every answer is `exact`: guesses are judged inline and deduplicated by exact_key.
    all_exact = models.BooleanField(default=True, editable=False)

    objects = PuzzleQuerySet.as_manager()

    class Meta:
        ordering = ["round__order", "order", "id"]
        constraints = [models.UniqueConstraint(fields=["hunt", "slug"], name="puzzle_slug_unique_in_hunt")]

    def __str__(self):
        return self.title

    def get_absolute_url(self):
        return reverse("puzzles:detail", kwargs={"hunt": self.hunt.slug, "puzzle": self.slug})


class Answer(models.Model):
    class Kind(models.TextChoices):
        EXACT = "exact"
        REGEX = "regex"
        NUMERIC = "numeric"
        SET = "set"
        GEO = "geo"

    puzzle = models.ForeignKey(Puzzle, on_delete=models.CASCADE, related_name="answers")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.EXACT)
    parameters = models.JSONField(default=dict)
    final = models.BooleanField(default=True, help_text="A final answer solves; a partial one only responds.")
    response = models.CharField(max_length=500, blank=True, default="")
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["puzzle", "order", "id"]

    def __str__(self):
        return f"{self.kind} {self.parameters}"

    @property
    def display(self) -> str:
        """The answer as a player would write it."""
        p = self.parameters
        if self.kind == self.Kind.EXACT:
            return p.get("value", "")
        if self.kind == self.Kind.NUMERIC:
            return str(p.get("value", ""))
        if self.kind == self.Kind.SET:
            return ", ".join(p.get("values", []))
        if self.kind == self.Kind.GEO:
            return f"{p.get('lat')}, {p.get('lng')}"
        return p.get("pattern", "")


class Hint(models.Model):
    puzzle = models.ForeignKey(Puzzle, on_delete=models.CASCADE, related_name="hints")
    order = models.PositiveIntegerField(default=0)
    text = models.TextField()
    after_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Free this many minutes after the team unlocked the puzzle."
    )
    cost = models.PositiveIntegerField(null=True, blank=True, help_text="Points to buy it before it is free.")

    class Meta:
        ordering = ["puzzle", "order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["puzzle", "order"], name="hint_order_unique_in_puzzle")
        ]

    def __str__(self):
        return f"Hint {self.order} for {self.puzzle}"

    @property
    def always_visible(self) -> bool:
        return self.after_minutes is None and self.cost is None


class HintUnlock(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="hint_unlocks")
    hint = models.ForeignKey(Hint, on_delete=models.CASCADE, related_name="unlocks")
    cost = models.PositiveIntegerField(default=0)
    unlocked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "hint"], name="hint_unlocked_once")]

    def __str__(self):
        return f"{self.hint} for {self.team}"


class HintRequest(models.Model):
    class Status(models.TextChoices):
        OPEN = "open"
        ANSWERED = "answered"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="hint_requests")
    puzzle = models.ForeignKey(Puzzle, on_delete=models.CASCADE, related_name="hint_requests")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    question = models.TextField(max_length=2000)
    answer = models.TextField(blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    staff = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.team}: {self.question[:40]}"


class Guess(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        CORRECT = "correct"
        PARTIAL = "partial"
        INCORRECT = "incorrect"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="guesses")
    puzzle = models.ForeignKey(Puzzle, on_delete=models.CASCADE, related_name="guesses")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    text = models.CharField(max_length=500)
    key = models.CharField(max_length=500)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    response = models.CharField(max_length=500, blank=True, default="")
    # NULL, not "": the partial unique constraint must ignore guesses sent without an id.
    client_id = models.CharField(max_length=100, null=True, blank=True)  # noqa: DJ001
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    judged_at = models.DateTimeField(null=True, blank=True)
    # When the judge task was last enqueued: the sweeper re-enqueues at most once per 15 s.
    enqueued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "guesses"
        constraints = [
            models.UniqueConstraint(fields=["team", "puzzle", "key"], name="guess_key_unique"),
            models.UniqueConstraint(
                fields=["team", "client_id"],
                condition=Q(client_id__isnull=False),
                name="guess_client_id_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="guess_status_created"),
            models.Index(fields=["team", "puzzle", "created_at"], name="guess_team_puzzle_created"),
        ]

    def __str__(self):
        return f"{self.team}: {self.text}"


class Solve(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="solves")
    puzzle = models.ForeignKey(Puzzle, on_delete=models.CASCADE, related_name="solves")
    solved_at = models.DateTimeField(default=timezone.now)
    points = models.IntegerField(default=0)
    # Solved with a guess sent after the hunt ended: recorded (unlocks follow) but worth 0 and not counted.
    post_hunt = models.BooleanField(default=False)

    class Meta:
        ordering = ["solved_at", "id"]
        constraints = [models.UniqueConstraint(fields=["team", "puzzle"], name="solve_once")]

    def __str__(self):
        return f"{self.team} solved {self.puzzle}"


class Unlock(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="unlocks")
    puzzle = models.ForeignKey(Puzzle, on_delete=models.CASCADE, related_name="unlocks")
    unlocked_at = models.DateTimeField(default=timezone.now)
    # Re-locked by staff: hidden from the team whatever the rules say, until staff unlock it again. The
    # row stays, so the rules (which skip puzzles with a row) never reopen it on their own.
    locked = models.BooleanField(default=False)

    class Meta:
        ordering = ["unlocked_at", "id"]
        constraints = [models.UniqueConstraint(fields=["team", "puzzle"], name="unlock_once")]

    def __str__(self):
        return f"{self.puzzle} for {self.team}"


class Treasure(models.Model):
    hunt = models.ForeignKey(Hunt, on_delete=models.CASCADE, related_name="treasures")
    slug = models.SlugField(max_length=60)
    name = models.CharField(max_length=200)
    teaser = models.TextField(blank=True, default="", help_text="Public.")
    reveal = models.TextField(blank=True, default="", help_text="Secret until the team finds it.")
    requires = models.ManyToManyField(Puzzle, blank=True, related_name="treasures")
    code = models.CharField(
        max_length=200, blank=True, default="", help_text="Compared like an exact answer."
    )
    code_key = models.CharField(max_length=200, blank=True, default="", editable=False, db_index=True)
    supply = models.PositiveIntegerField(null=True, blank=True, help_text="Empty = unlimited.")
    bonus = models.JSONField(default=list, blank=True, help_text="Points by finder rank, e.g. [50, 30, 10].")
    clue = models.TextField(blank=True, default="")
    clue_at = models.DateTimeField(null=True, blank=True)
    clue_released = models.BooleanField(default=False, editable=False)
    found_count = models.PositiveIntegerField(default=0, editable=False)
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["hunt", "order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["hunt", "slug"], name="treasure_slug_unique_in_hunt"),
            models.CheckConstraint(
                condition=Q(supply__isnull=True) | Q(found_count__lte=models.F("supply")),
                name="treasure_supply_never_exceeded",
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def remaining(self) -> int | None:
        return None if self.supply is None else max(self.supply - self.found_count, 0)

    def bonus_for(self, rank: int) -> int:
        return self.bonus[rank - 1] if 0 < rank <= len(self.bonus) else 0


class TreasureFind(models.Model):
    treasure = models.ForeignKey(Treasure, on_delete=models.CASCADE, related_name="finds")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="treasure_finds")
    rank = models.PositiveIntegerField()
    found_at = models.DateTimeField(default=timezone.now)
    points = models.IntegerField(default=0)

    class Meta:
        ordering = ["treasure", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["treasure", "team"], name="treasure_found_once_per_team"),
            models.UniqueConstraint(fields=["treasure", "rank"], name="treasure_rank_unique"),
        ]

    def __str__(self):
        return f"{self.team} found {self.treasure} (#{self.rank})"


class Erratum(models.Model):
    """A correction to a puzzle, shown to the teams that have the puzzle."""

    puzzle = models.ForeignKey(Puzzle, on_delete=models.CASCADE, related_name="errata")
    text = models.TextField(max_length=2000)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "errata"

    def __str__(self):
        return f"{self.puzzle}: {self.text[:60]}"


class ScoreAdjustment(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="score_adjustments")
    points = models.IntegerField()
    reason = models.CharField(max_length=500)
    staff = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.points:+d} {self.team}: {self.reason}"
