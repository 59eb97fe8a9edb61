"""API shapes of hunts, teams, announcements, events and errors (DESIGN section 8). Explicit fields only."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema_field
from rest_framework import serializers

from .events import frame_of
from .models import Announcement, Hunt, Team

# --- Errors (the shapes hunts/api_errors.py produces) -------------------------------------


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


class RateLimitedSerializer(serializers.Serializer):
    detail = serializers.CharField()
    retry_after = serializers.IntegerField(min_value=1, help_text="Seconds to wait; also in Retry-After.")


VALIDATION_ERROR_SCHEMA = {
    "type": "object",
    "description": 'A form-wide error as {"detail": "..."}, field errors as {"field": ["message", ...]}.',
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
}

ERROR_RESPONSES = {
    400: OpenApiResponse(VALIDATION_ERROR_SCHEMA, description="Invalid input."),
    401: OpenApiResponse(
        ErrorSerializer, description="Not authenticated (send `Authorization: Token <key>`)."
    ),
    403: OpenApiResponse(ErrorSerializer, description="Not allowed."),
    404: OpenApiResponse(ErrorSerializer, description="Not found, or not visible to you."),
    409: OpenApiResponse(ErrorSerializer, description="Conflicts with the current state."),
    429: OpenApiResponse(
        RateLimitedSerializer, description="Too many attempts; retry after `retry_after` seconds."
    ),
}

RETRY_AFTER_HEADER = OpenApiParameter(
    "Retry-After",
    OpenApiTypes.INT,
    OpenApiParameter.HEADER,
    response=[429],
    description="Seconds to wait before trying again.",
)


def error_responses(*codes: int) -> dict:
    """The documented error responses for these status codes."""
    return {code: ERROR_RESPONSES[code] for code in codes}


# --- Auth ---------------------------------------------------------------------------------


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, write_only=True)


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()


# --- Hunts and teams -----------------------------------------------------------------------


class TeamRefSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()


class GuessLimitSerializer(serializers.Serializer):
    guesses = serializers.IntegerField()
    minutes = serializers.IntegerField()


class HuntSerializer(serializers.ModelSerializer):
    """A hunt with the caller's team; the instance comes from hunts.selectors.hunts_for."""

    state = serializers.ChoiceField(choices=Hunt.State.choices, read_only=True)
    guess_limit = GuessLimitSerializer(read_only=True, allow_null=True)
    freeze_at = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="When the public leaderboard freezes until the end (null: no freeze).",
    )
    team = serializers.SerializerMethodField()

    class Meta:
        model = Hunt
        fields = [
            "slug",
            "title",
            "starts_at",
            "ends_at",
            "freeze_at",
            "state",
            "max_team_size",
            "guess_limit",
            "team",
        ]
        read_only_fields = fields

    @extend_schema_field(TeamRefSerializer(allow_null=True))
    def get_team(self, hunt: Hunt) -> dict | None:
        if getattr(hunt, "team_slug", None) is None:
            return None
        return {"slug": hunt.team_slug, "name": hunt.team_name}


class MemberSerializer(serializers.Serializer):
    username = serializers.CharField()


class TeamSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    join_code = serializers.CharField()
    members = MemberSerializer(many=True)
    score = serializers.IntegerField()
    rank = serializers.IntegerField(
        allow_null=True, help_text="Null while the team is not on the leaderboard."
    )


class TeamDetailSerializer(TeamSerializer):
    solves = serializers.IntegerField()


class TeamCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, allow_blank=True)


class TeamJoinSerializer(serializers.Serializer):
    join_code = serializers.CharField(max_length=64, allow_blank=True)


# --- Announcements and events --------------------------------------------------------------


class AnnouncementSerializer(serializers.ModelSerializer):
    class Meta:
        model = Announcement
        fields = ["id", "text", "created_at"]
        read_only_fields = fields


class AnnouncementCreateSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=10_000, allow_blank=True, trim_whitespace=False)


class EventQuerySerializer(serializers.Serializer):
    team_seq = serializers.IntegerField(min_value=0, max_value=2**62, required=False)
    hunt_seq = serializers.IntegerField(min_value=0, max_value=2**62, required=False)


class EventFrameSerializer(serializers.Serializer):
    """A logged frame, exactly as the WebSocket sends it (hunts.events.frame_of)."""

    type = serializers.CharField()
    stream = serializers.ChoiceField(choices=["team", "hunt"])
    seq = serializers.IntegerField()
    at = serializers.DateTimeField()
    data = serializers.DictField()

    def to_representation(self, event):
        return frame_of(event)


# --- Staff controls (hunts/staff_api.py) -----------------------------------------------------------


class StaffTeamSerializer(serializers.ModelSerializer):
    class Meta:
        model = Team
        fields = ["slug", "name", "hidden", "join_code", "score"]
        read_only_fields = fields


class TeamHiddenSerializer(serializers.Serializer):
    hidden = serializers.BooleanField(help_text="true: left off the rankings; false: shown again.")


class HuntEndSerializer(serializers.Serializer):
    ends_at = serializers.DateTimeField(required=False, help_text="The new end.")
    extend_minutes = serializers.IntegerField(
        required=False, help_text="Or: move the end by this many minutes (negative: earlier)."
    )


class HuntScheduleSerializer(serializers.ModelSerializer):
    state = serializers.ChoiceField(choices=Hunt.State.choices, read_only=True)
    freeze_at = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta:
        model = Hunt
        fields = ["slug", "starts_at", "ends_at", "freeze_at", "state"]
        read_only_fields = fields
