"""API shapes of play: puzzles, hints, guesses, hint requests, leaderboard, treasures; explicit fields."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from hunts.serializers import TeamRefSerializer

from .models import Erratum, Guess, HintRequest, Puzzle
from .services import GUESS_MAX, guess_data

# --- Puzzles and hints ----------------------------------------------------------------------


class PuzzleSerializer(serializers.ModelSerializer):
    """A puzzle from puzzles.selectors.puzzles_for (annotated with solved_at and unlocked_at)."""

    round = serializers.CharField(source="round.title", read_only=True)
    solved = serializers.SerializerMethodField()
    solved_at = serializers.DateTimeField(read_only=True, allow_null=True)
    unlocked_at = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta:
        model = Puzzle
        fields = ["slug", "title", "round", "points", "meta", "solved", "solved_at", "unlocked_at"]
        read_only_fields = fields

    def get_solved(self, puzzle: Puzzle) -> bool:
        return puzzle.solved_at is not None


class HintSerializer(serializers.Serializer):
    """A hint row from puzzles.selectors.hints_for; `text` only once the hint is unlocked."""

    id = serializers.IntegerField()
    order = serializers.IntegerField()
    cost = serializers.IntegerField(allow_null=True)
    available_at = serializers.DateTimeField(allow_null=True)
    unlocked = serializers.BooleanField()
    text = serializers.CharField(required=False, help_text="Present only when the hint is unlocked.")


class UnlockedHintSerializer(HintSerializer):
    text = serializers.CharField()


class ErratumSerializer(serializers.ModelSerializer):
    puzzle = serializers.CharField(source="puzzle.slug", read_only=True, help_text="The puzzle's slug.")

    class Meta:
        model = Erratum
        fields = ["id", "puzzle", "text", "created_at", "updated_at"]
        read_only_fields = fields


class PuzzleDetailSerializer(PuzzleSerializer):
    """The puzzle with its body, hints and errata; its answer once solved; its solution after the end.

    The view sets body_html, hint_rows, errata_rows, final_answer and solution_html (None: left out).
    """

    body = serializers.CharField(source="body_html", read_only=True, help_text="Sanitized HTML.")
    hints = HintSerializer(source="hint_rows", many=True, read_only=True)
    errata = ErratumSerializer(source="errata_rows", many=True, read_only=True)
    # Not read-only, so the schema lists them as optional: they are left out until they are published.
    answer = serializers.CharField(
        source="final_answer",
        required=False,
        help_text="Present once solved, and for everyone after the end. For a puzzle whose answer is a "
        "pattern, the text the team solved with (the pattern for a team that did not solve it).",
    )
    solution = serializers.CharField(
        source="solution_html",
        required=False,
        help_text="Sanitized HTML of the solution; present only after the hunt ended.",
    )

    class Meta(PuzzleSerializer.Meta):
        fields = [*PuzzleSerializer.Meta.fields, "body", "hints", "errata", "answer", "solution"]

    def to_representation(self, puzzle):
        data = super().to_representation(puzzle)
        for optional in ("answer", "solution"):
            if data.get(optional) is None:
                data.pop(optional, None)
        return data


# --- Guesses ----------------------------------------------------------------------------------


class GuessSerializer(serializers.Serializer):
    """The GuessObject (DESIGN section 7), the same on REST and WebSocket: puzzles.services.guess_data."""

    id = serializers.IntegerField()
    puzzle = serializers.CharField(help_text="The puzzle's slug.")
    answer = serializers.CharField()
    status = serializers.ChoiceField(choices=Guess.Status.choices)
    response = serializers.CharField(allow_blank=True)
    user = serializers.CharField(allow_null=True)
    client_id = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    judged_at = serializers.DateTimeField(allow_null=True)

    def to_representation(self, guess: Guess) -> dict:
        username = guess.user.get_username() if guess.user_id else None
        return guess_data(guess, puzzle_slug=guess.puzzle.slug, username=username)


class GuessCreateSerializer(serializers.Serializer):
    # Generous caps: the service gives the precise rule and message (1..500 characters once trimmed).
    answer = serializers.CharField(max_length=4 * GUESS_MAX, allow_blank=True, trim_whitespace=False)
    client_id = serializers.CharField(
        max_length=200,
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="Makes retries idempotent.",
    )


class GuessQuerySerializer(serializers.Serializer):
    puzzle = serializers.SlugField(max_length=60, required=False, help_text="Only guesses on this puzzle.")


# --- Hint requests ------------------------------------------------------------------------------


class HintRequestSerializer(serializers.ModelSerializer):
    puzzle = serializers.CharField(source="puzzle.slug", read_only=True)

    class Meta:
        model = HintRequest
        fields = ["id", "puzzle", "question", "answer", "status", "created_at", "answered_at"]
        read_only_fields = fields


class HintRequestCreateSerializer(serializers.Serializer):
    question = serializers.CharField(max_length=10_000, allow_blank=True)


# --- Leaderboard --------------------------------------------------------------------------------


class LeaderboardRowSerializer(serializers.Serializer):
    """A row of puzzles.leaderboard.public_rows."""

    rank = serializers.IntegerField()
    team = TeamRefSerializer()
    score = serializers.IntegerField()
    solves = serializers.IntegerField()
    last_scored_at = serializers.DateTimeField(allow_null=True)


# --- Treasures ----------------------------------------------------------------------------------


class FinderSerializer(serializers.Serializer):
    team = TeamRefSerializer()
    rank = serializers.IntegerField()
    found_at = serializers.DateTimeField()


class TreasureSerializer(serializers.Serializer):
    """A treasure as the caller's team sees it (context["team"]); never its code or requirements."""

    slug = serializers.CharField()
    name = serializers.CharField()
    teaser = serializers.CharField(allow_blank=True)
    supply = serializers.IntegerField(allow_null=True, help_text="Null = unlimited.")
    remaining = serializers.IntegerField(allow_null=True, help_text="Null = unlimited.")
    finders = FinderSerializer(many=True)
    found = serializers.BooleanField()
    rank = serializers.IntegerField(required=False, help_text="Only once your team found it.")
    points = serializers.IntegerField(required=False, help_text="Only once your team found it.")
    reveal = serializers.CharField(required=False, help_text="Only once your team found it.")

    def to_representation(self, treasure) -> dict:
        team = self.context.get("team")
        finds = list(treasure.finds.all())  # prefetched by puzzles.selectors.treasures_of
        mine = next((f for f in finds if team is not None and f.team_id == team.pk), None)
        row = {
            "slug": treasure.slug,
            "name": treasure.name,
            "teaser": treasure.teaser,
            "supply": treasure.supply,
            "remaining": treasure.remaining,
            "finders": [
                {"team": {"slug": f.team.slug, "name": f.team.name}, "rank": f.rank, "found_at": f.found_at}
                for f in finds
            ],
            "found": mine is not None,
        }
        if mine is not None:
            row.update(rank=mine.rank, points=mine.points, reveal=treasure.reveal)
        return super().to_representation(row)


class TreasureClaimSerializer(serializers.Serializer):
    code = serializers.CharField(max_length=500, allow_blank=True)


class TreasureRefSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()


class ClaimResultSerializer(serializers.Serializer):
    treasure = TreasureRefSerializer()
    rank = serializers.IntegerField()
    points = serializers.IntegerField()
    reveal = serializers.CharField(allow_blank=True)


class ChartStepSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    score = serializers.IntegerField()


class ChartSeriesSerializer(serializers.Serializer):
    team = TeamRefSerializer()
    score = serializers.IntegerField(help_text="The score at the chart's end.")
    steps = ChartStepSerializer(many=True, help_text="The score after each change, in time order.")


class LeaderboardChartSerializer(serializers.Serializer):
    """The score-over-time chart of the top teams (puzzles.charts), as data."""

    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    frozen_at = serializers.DateTimeField(
        allow_null=True, help_text="Set during the freeze: the chart stops at this instant."
    )
    series = ChartSeriesSerializer(many=True)


# --- Staff controls (puzzles/staff_api.py) --------------------------------------------------------


class TeamTargetSerializer(serializers.Serializer):
    team = serializers.SlugField(
        max_length=60, required=False, help_text="A team's slug; leave it out for every team of the hunt."
    )


class ControlResultSerializer(serializers.Serializer):
    teams = serializers.IntegerField(help_text="How many teams the change applied to.")


class ErratumTextSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=10_000, allow_blank=True)


class ScoreAdjustmentCreateSerializer(serializers.Serializer):
    points = serializers.IntegerField(help_text="Negative to take points.")
    reason = serializers.CharField(max_length=2000, allow_blank=True, help_text="The team sees it.")


class ScoreAdjustmentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    team = TeamRefSerializer()
    points = serializers.IntegerField()
    reason = serializers.CharField()
    created_at = serializers.DateTimeField()
    score = serializers.IntegerField(help_text="The team's score after the adjustment.")


class ChangeTeamMixin:
    """`team` of a re-judging change (a dataclass with team_slug and team_name)."""

    @extend_schema_field(TeamRefSerializer)
    def get_team(self, change) -> dict:
        return {"slug": change.team_slug, "name": change.team_name}


class RejudgeGuessSerializer(ChangeTeamMixin, serializers.Serializer):
    id = serializers.IntegerField(source="guess_id")
    team = serializers.SerializerMethodField()
    answer = serializers.CharField(source="text")
    created_at = serializers.DateTimeField()
    # Plain strings: a second enum of the guess statuses would collide in the schema's names.
    old_status = serializers.CharField(help_text="correct, partial or incorrect.")
    new_status = serializers.CharField(help_text="correct, partial or incorrect.")
    response = serializers.CharField(source="new_response", allow_blank=True)


class RejudgeSolveSerializer(ChangeTeamMixin, serializers.Serializer):
    team = serializers.SerializerMethodField()
    at = serializers.DateTimeField(help_text="When the team solved it (a gain: the time of its guess).")
    points = serializers.IntegerField()
    post_hunt = serializers.BooleanField()


class RejudgePlanSerializer(serializers.Serializer):
    """A puzzles.operations.RejudgePlan: what re-judging changes (GET) or changed (POST)."""

    puzzle = serializers.CharField(source="puzzle.slug")
    guesses = RejudgeGuessSerializer(many=True, help_text="Guesses whose verdict or response changes.")
    gains = RejudgeSolveSerializer(many=True, help_text="Teams that gain a solve.")
    losses = RejudgeSolveSerializer(many=True, help_text="Teams that lose their solve.")
