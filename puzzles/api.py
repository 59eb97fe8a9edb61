"""REST API of play (DESIGN section 8): puzzles, guesses, hints, hint requests, leaderboard, treasures.

Views parse input, call one service, shape the output; services raise, hunts/api_errors.py maps.
Every queryset is narrowed to the caller's team, so another team's objects are 404.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from hunts.api import HuntScoped, parse
from hunts.errors import NotFound
from hunts.serializers import RETRY_AFTER_HEADER, error_responses

from . import selectors, services
from .leaderboard import leaderboard, public_rows
from .models import Guess, HintRequest, Puzzle, Treasure
from .rendering import render_markdown
from .serializers import (
    ClaimResultSerializer,
    GuessCreateSerializer,
    GuessQuerySerializer,
    GuessSerializer,
    HintRequestCreateSerializer,
    HintRequestSerializer,
    LeaderboardRowSerializer,
    PuzzleDetailSerializer,
    PuzzleSerializer,
    TreasureClaimSerializer,
    TreasureSerializer,
    UnlockedHintSerializer,
)


def id_parameter(name: str, what: str) -> OpenApiParameter:
    return OpenApiParameter(name, OpenApiTypes.INT, OpenApiParameter.PATH, description=f"The {what}'s id.")


# --- Puzzles ------------------------------------------------------------------------------


class PuzzleListView(HuntScoped, ListAPIView):
    serializer_class = PuzzleSerializer

    def get_queryset(self):
        if self.is_schema_view():
            return Puzzle.objects.none()
        return selectors.puzzles_for(self.team)

    @extend_schema(
        operation_id="puzzles_list",
        summary="The puzzles open for your team, in hunt order",
        responses={200: PuzzleSerializer, **error_responses(401, 404)},
        tags=["puzzles"],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class PuzzleDetailView(HuntScoped, APIView):
    @extend_schema(
        operation_id="puzzles_retrieve",
        summary="One open puzzle: body (sanitized HTML), hints, and the answer once solved",
        description="A locked puzzle is 404, like an unknown one.",
        responses={200: PuzzleDetailSerializer, **error_responses(401, 404)},
        tags=["puzzles"],
    )
    def get(self, request, hunt, puzzle):
        team = self.team
        found = selectors.puzzle_for(team, puzzle)
        found.body_html = render_markdown(found.body)
        found.hint_rows = selectors.hints_for(team=team, puzzle=found, unlocked_at=found.unlocked_at)
        found.final_answer = selectors.final_answer(found) if found.solved_at is not None else None
        return Response(PuzzleDetailSerializer(found).data)


# --- Guesses --------------------------------------------------------------------------------


class GuessCreateView(HuntScoped, APIView):
    @extend_schema(
        operation_id="guesses_create",
        summary="Submit a guess",
        description="201 when judged by the time of the response, 202 while pending (watch for "
        "guess.judged), 200 with the original guess when it repeats an earlier answer or client_id.",
        request=GuessCreateSerializer,
        responses={
            200: GuessSerializer,
            201: GuessSerializer,
            202: GuessSerializer,
            **error_responses(400, 401, 403, 404, 409, 429),
        },
        parameters=[RETRY_AFTER_HEADER],
        tags=["guesses"],
    )
    def post(self, request, hunt, puzzle):
        data = parse(GuessCreateSerializer, request.data)
        guess, created = services.submit_guess(
            team=self.team,
            user=request.user,
            puzzle_slug=puzzle,
            text=data["answer"],
            client_id=data.get("client_id"),
        )
        # Read it again: in the embedded default the judge task has run on commit by now.
        guess = Guess.objects.select_related("puzzle", "user").get(pk=guess.pk)
        if not created:
            code = status.HTTP_200_OK
        elif guess.status == Guess.Status.PENDING:
            code = status.HTTP_202_ACCEPTED
        else:
            code = status.HTTP_201_CREATED
        return Response(GuessSerializer(guess).data, status=code)


class GuessListView(HuntScoped, ListAPIView):
    serializer_class = GuessSerializer

    def get_queryset(self):
        if self.is_schema_view():
            return Guess.objects.none()
        given = {k: v for k, v in self.request.query_params.items() if k == "puzzle" and v != ""}
        return selectors.guesses_of(self.team, puzzle_slug=parse(GuessQuerySerializer, given).get("puzzle"))

    @extend_schema(
        operation_id="guesses_list",
        summary="Your team's guesses, newest first",
        parameters=[GuessQuerySerializer],
        responses={200: GuessSerializer, **error_responses(400, 401, 404)},
        tags=["guesses"],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class GuessDetailView(HuntScoped, APIView):
    @extend_schema(
        operation_id="guesses_retrieve",
        summary="One of your team's guesses",
        parameters=[id_parameter("guess_id", "guess")],
        responses={200: GuessSerializer, **error_responses(401, 404)},
        tags=["guesses"],
    )
    def get(self, request, hunt, guess_id):
        guess = selectors.guesses_of(self.team).filter(pk=guess_id).first()
        if guess is None:
            raise NotFound("Your team has no such guess.")
        return Response(GuessSerializer(guess).data)


# --- Hints and hint requests -----------------------------------------------------------------


class HintUnlockView(HuntScoped, APIView):
    @extend_schema(
        operation_id="hints_unlock",
        summary="Buy a hint (or take it once free); idempotent",
        description="201 when this call unlocked it, 200 when it was already unlocked. "
        "400 when your score is below its cost, or when it is timed and cannot be bought.",
        request=None,
        parameters=[id_parameter("hint_id", "hint")],
        responses={
            200: UnlockedHintSerializer,
            201: UnlockedHintSerializer,
            **error_responses(400, 401, 404),
        },
        tags=["hints"],
    )
    def post(self, request, hunt, puzzle, hint_id):
        team = self.team
        hint, newly = services.unlock_hint(team=team, puzzle_slug=puzzle, hint_id=hint_id)
        found = selectors.puzzle_for(team, puzzle)
        rows = selectors.hints_for(team=team, puzzle=found, unlocked_at=found.unlocked_at)
        row = next(r for r in rows if r["id"] == hint.pk)
        return Response(
            UnlockedHintSerializer(row).data, status=status.HTTP_201_CREATED if newly else status.HTTP_200_OK
        )


class HintRequestListView(HuntScoped, ListAPIView):
    serializer_class = HintRequestSerializer

    def get_queryset(self):
        if self.is_schema_view():
            return HintRequest.objects.none()
        return selectors.hint_requests_of(self.team, selectors.puzzle_for(self.team, self.kwargs["puzzle"]))

    @extend_schema(
        operation_id="hint_requests_list",
        summary="Your team's questions to staff about this puzzle, newest first",
        responses={200: HintRequestSerializer, **error_responses(401, 404)},
        tags=["hints"],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="hint_requests_create",
        summary="Ask staff a question about this puzzle",
        request=HintRequestCreateSerializer,
        responses={201: HintRequestSerializer, **error_responses(400, 401, 403, 404)},
        tags=["hints"],
    )
    def post(self, request, hunt, puzzle):
        data = parse(HintRequestCreateSerializer, request.data)
        hint_request = services.request_hint(
            team=self.team, user=request.user, puzzle_slug=puzzle, question=data["question"]
        )
        return Response(HintRequestSerializer(hint_request).data, status=status.HTTP_201_CREATED)


# --- Leaderboard and treasures ---------------------------------------------------------------


class LeaderboardView(HuntScoped, ListAPIView):
    permission_classes = [AllowAny]
    serializer_class = LeaderboardRowSerializer

    def get_queryset(self):
        if self.is_schema_view():
            return []
        return public_rows(leaderboard(self.hunt))

    @extend_schema(
        operation_id="leaderboard_list",
        summary="The leaderboard (public): competition ranks by score, then earlier last score",
        description="Public: no credentials needed (a bad token is still 401).",
        responses={200: LeaderboardRowSerializer, **error_responses(401, 404)},
        tags=["leaderboard"],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class TreasureListView(HuntScoped, ListAPIView):
    serializer_class = TreasureSerializer

    def get_queryset(self):
        if self.is_schema_view():
            return Treasure.objects.none()
        self.viewer_team = self.team_or_staff()
        return selectors.treasures_of(self.hunt)

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "team": getattr(self, "viewer_team", None)}

    @extend_schema(
        operation_id="treasures_list",
        summary="The hunt's treasures, their finders, and your finds (team members and staff)",
        responses={200: TreasureSerializer, **error_responses(401, 404)},
        tags=["treasures"],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class TreasureClaimView(HuntScoped, APIView):
    @extend_schema(
        operation_id="treasures_claim",
        summary="Claim a treasure by its code",
        description="201 for a new find, 200 when your team had found it already. A wrong code is 400, "
        "unsolved required puzzles (or a hunt not running) 403, none left 409.",
        request=TreasureClaimSerializer,
        responses={
            200: ClaimResultSerializer,
            201: ClaimResultSerializer,
            **error_responses(400, 401, 403, 404, 409),
        },
        tags=["treasures"],
    )
    def post(self, request, hunt):
        data = parse(TreasureClaimSerializer, request.data)
        find, created = services.claim_treasure_by_code(team=self.team, code=data["code"])
        treasure = find.treasure
        body = {
            "treasure": {"slug": treasure.slug, "name": treasure.name},
            "rank": find.rank,
            "points": find.points,
            "reveal": treasure.reveal,
        }
        return Response(
            ClaimResultSerializer(body).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )
