"""Staff API of a live hunt's puzzles and scores, under /api/hunts/<hunt>/staff/ (staff only).

Unlock or re-lock a puzzle, post and edit errata, re-judge a puzzle (GET previews, POST applies), adjust a
team's score, read the live leaderboard, export results. Each view parses, calls one service of
puzzles.operations (or a read), and shapes the output. Anonymous callers get 401, players 403.
"""

from functools import cached_property

from django.http import HttpResponse
from django.utils.http import content_disposition_header
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from hunts.api import parse
from hunts.errors import NotFound
from hunts.models import Team
from hunts.selectors import team_in
from hunts.serializers import error_responses
from hunts.staff_api import STAFF_ERRORS
from hunts.staff_api import StaffScoped as HuntStaffScoped

from . import exports, operations
from .leaderboard import leaderboard, public_rows
from .models import Erratum, Puzzle
from .serializers import (
    ControlResultSerializer,
    ErratumSerializer,
    ErratumTextSerializer,
    LeaderboardRowSerializer,
    RejudgePlanSerializer,
    ScoreAdjustmentCreateSerializer,
    ScoreAdjustmentSerializer,
    TeamTargetSerializer,
)


class StaffScoped(HuntStaffScoped):
    """Staff only (IsAdminUser: 401 anonymous, 403 players); the puzzle of the URL when it has one."""

    @cached_property
    def puzzle(self) -> Puzzle:
        puzzle = (
            Puzzle.objects.filter(hunt=self.hunt, slug=self.kwargs["puzzle"]).select_related("round").first()
        )
        if puzzle is None:
            raise NotFound(f"No puzzle '{self.kwargs['puzzle']}' in this hunt.")
        puzzle.hunt = self.hunt
        return puzzle

    def target_team(self) -> Team | None:
        """The team named by the body's `team`, or None for every team."""
        slug = parse(TeamTargetSerializer, self.request.data).get("team")
        return team_in(self.hunt, slug) if slug else None


class PuzzleUnlockView(StaffScoped, APIView):
    @extend_schema(
        operation_id="staff_puzzle_unlock",
        summary="Open a puzzle for one team, or every team, whatever its rules (staff)",
        description="Undoes a re-lock. Each team that newly sees it gets puzzle.unlocked.",
        request=TeamTargetSerializer,
        responses={200: ControlResultSerializer, **STAFF_ERRORS},
        tags=["staff"],
    )
    def post(self, request, hunt, puzzle):
        count = operations.unlock_puzzle(puzzle=self.puzzle, staff=request.user, team=self.target_team())
        return Response({"teams": count})


class PuzzleLockView(StaffScoped, APIView):
    @extend_schema(
        operation_id="staff_puzzle_lock",
        summary="Re-lock a puzzle for one team, or every team that has not solved it (staff)",
        description="Hidden until staff unlock it again; the rules never reopen it. Each team that loses "
        "sight of it gets puzzle.locked. A single team that solved it is 400.",
        request=TeamTargetSerializer,
        responses={200: ControlResultSerializer, **STAFF_ERRORS},
        tags=["staff"],
    )
    def post(self, request, hunt, puzzle):
        count = operations.lock_puzzle(puzzle=self.puzzle, staff=request.user, team=self.target_team())
        return Response({"teams": count})


class RejudgeView(StaffScoped, APIView):
    @extend_schema(
        operation_id="staff_rejudge_preview",
        summary="Preview re-judging a puzzle's guesses against its current answers (staff)",
        responses={200: RejudgePlanSerializer, **error_responses(401, 403, 404)},
        tags=["staff"],
    )
    def get(self, request, hunt, puzzle):
        return Response(RejudgePlanSerializer(operations.rejudge_preview(puzzle=self.puzzle)).data)

    @extend_schema(
        operation_id="staff_rejudge_apply",
        summary="Re-judge a puzzle's guesses and apply the consequences (staff)",
        description="Returns what was applied (computed again under the locks, so it may differ from an "
        "earlier preview). Gained solves log puzzle.solved, lost ones score.adjusted.",
        request=None,
        responses={200: RejudgePlanSerializer, **error_responses(401, 403, 404)},
        tags=["staff"],
    )
    def post(self, request, hunt, puzzle):
        plan = operations.rejudge_apply(puzzle=self.puzzle, staff=request.user)
        return Response(RejudgePlanSerializer(plan).data)


class ErratumCreateView(StaffScoped, APIView):
    @extend_schema(
        operation_id="staff_errata_create",
        summary="Post an erratum on a puzzle (staff); pushed as erratum.posted",
        request=ErratumTextSerializer,
        responses={201: ErratumSerializer, **STAFF_ERRORS},
        tags=["staff"],
    )
    def post(self, request, hunt, puzzle):
        text = parse(ErratumTextSerializer, request.data)["text"]
        erratum = operations.post_erratum(puzzle=self.puzzle, text=text, staff=request.user)
        return Response(ErratumSerializer(erratum).data, status=status.HTTP_201_CREATED)


class ErratumView(StaffScoped, APIView):
    @extend_schema(
        operation_id="staff_errata_update",
        summary="Correct an erratum's text (staff); pushed again as erratum.posted with the same id",
        parameters=[OpenApiParameter("erratum_id", OpenApiTypes.INT, OpenApiParameter.PATH)],
        request=ErratumTextSerializer,
        responses={200: ErratumSerializer, **STAFF_ERRORS},
        tags=["staff"],
    )
    def patch(self, request, hunt, erratum_id):
        erratum = (
            Erratum.objects.filter(pk=erratum_id, puzzle__hunt=self.hunt).select_related("puzzle").first()
        )
        if erratum is None:
            raise NotFound("No such erratum in this hunt.")
        text = parse(ErratumTextSerializer, request.data)["text"]
        erratum = operations.edit_erratum(erratum=erratum, text=text, staff=request.user)
        return Response(ErratumSerializer(erratum).data)


class ScoreAdjustmentCreateView(StaffScoped, APIView):
    @extend_schema(
        operation_id="staff_score_adjust",
        summary="Adjust a team's score with a reason (staff); logs score.adjusted",
        request=ScoreAdjustmentCreateSerializer,
        responses={201: ScoreAdjustmentSerializer, **STAFF_ERRORS},
        tags=["staff"],
    )
    def post(self, request, hunt, team):
        data = parse(ScoreAdjustmentCreateSerializer, request.data)
        adjustment = operations.adjust_score(
            team=team_in(self.hunt, team), points=data["points"], reason=data["reason"], staff=request.user
        )
        adjusted = adjustment.team
        body = {
            "id": adjustment.pk,
            "team": {"slug": adjusted.slug, "name": adjusted.name},
            "points": adjustment.points,
            "reason": adjustment.reason,
            "created_at": adjustment.created_at,
            "score": adjusted.score,
        }
        return Response(ScoreAdjustmentSerializer(body).data, status=status.HTTP_201_CREATED)


class LiveLeaderboardView(StaffScoped, ListAPIView):
    serializer_class = LeaderboardRowSerializer

    def get_queryset(self):
        if self.is_schema_view():
            return []
        return public_rows(leaderboard(self.hunt))

    @extend_schema(
        operation_id="staff_leaderboard_list",
        summary="The live leaderboard, also during the freeze (staff)",
        responses={200: LeaderboardRowSerializer, **error_responses(401, 403, 404)},
        tags=["staff"],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class ExportView(StaffScoped, APIView):
    @extend_schema(
        operation_id="staff_export",
        summary="Export results, solves, finds or guesses as CSV or JSON (staff)",
        description="The whole table in one response; for very large hunts use `manage.py export_results`.",
        parameters=[
            OpenApiParameter("what", OpenApiTypes.STR, OpenApiParameter.PATH, enum=list(exports.WHATS)),
            OpenApiParameter(
                "as",
                OpenApiTypes.STR,
                OpenApiParameter.QUERY,
                enum=list(exports.FORMATS),
                description="Default: csv.",
            ),
        ],
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="A header row, then rows."),
            (200, "application/json"): OpenApiResponse(
                {"type": "array", "items": {"type": "object"}}, description="An array of row objects."
            ),
            **error_responses(401, 403, 404),
        },
        tags=["staff"],
    )
    def get(self, request, hunt, what):
        # Not `format`: DRF reads that one to pick a renderer.
        fmt = request.query_params.get("as", "csv")
        if what not in exports.WHATS or fmt not in exports.FORMATS:
            raise NotFound(f"Export {what}.{fmt} does not exist.")
        response = HttpResponse(exports.render(self.hunt, what, fmt), content_type=exports.CONTENT_TYPES[fmt])
        name = exports.filename(self.hunt, what, fmt)
        response["Content-Disposition"] = content_disposition_header(True, name)
        return response
