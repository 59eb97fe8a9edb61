"""REST API of play (DESIGN section 8): puzzles, guesses, hints, hint requests, leaderboard, treasures.

Views parse input, call one service, shape the output; services raise, hunts/api_errors.py maps.
Every queryset is narrowed to the caller's team, so another team's objects are 404.
"""

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from hunts.api import HuntScoped, parse
from hunts.errors import NotFound
from hunts.models import Hunt
from hunts.serializers import RETRY_AFTER_HEADER, error_responses

from . import selectors, services
from .charts import CHART_TEAMS, top_series
from .leaderboard import board_for, public_rows
from .models import Guess, HintRequest, Puzzle, Treasure
from .rendering import render_markdown
from .serializers import (
    ClaimResultSerializer,
    GuessCreateSerializer,
    GuessQuerySerializer,
    GuessSerializer,
    HintRequestCreateSerializer,
    HintRequestSerializer,
    LeaderboardChartSerializer,
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
        summary="One open puzzle: body (sanitized HTML), hints, errata, and the answer once solved",
        description="A locked puzzle is 404, like an unknown one. After the hunt ended, `answer` and "
        "`solution` are published to every team that has the puzzle.",
        responses={200: PuzzleDetailSerializer, **error_responses(401, 404)},
        tags=["puzzles"],
    )
    def get(self, request, hunt, puzzle):
        team = self.team
        found = selectors.puzzle_for(team, puzzle)
        # After the end the answer and the solution are published to every team that has the puzzle.
        published = self.hunt.state == Hunt.State.ENDED
        found.body_html = render_markdown(found.body)
        found.hint_rows = selectors.hints_for(team=team, puzzle=found, unlocked_at=found.unlocked_at)
        found.errata_rows = list(selectors.errata_of([found.pk]))
        found.final_answer = (
            selectors.final_answer(found, team) if found.solved_at is not None or published else None
        )
        found.solution_html = render_markdown(found.solution) if published and found.solution else None
        return Response(PuzzleDetailSerializer(found).data)


# --- Guesses --------------------------------------------------------------------------------


class GuessCreateView(HuntScoped, APIView):
    @extend_schema(
        operation_id="guesses_create",
        summary="Submit a guess",
        description="201 when judged by the time of the response, 202 while pending (watch for "
        "guess.judged), 200 with the original guess when it repeats an earlier answer or client_id. "
        "Before the start 403; after the end guesses are still judged but score nothing.",
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
        if created and guess.status == Guess.Status.PENDING:
            # Read it again: in the embedded default the judge task has run on commit by now. A guess
            # judged inline is final as it is, and a repeat comes with its puzzle and user.
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
        return public_rows(board_for(self.hunt, self.request.user))

    @extend_schema(
        operation_id="leaderboard_list",
        summary="The leaderboard (public): competition ranks by score, then earlier last score",
        description="Public: no credentials needed (a bad token is still 401). During the freeze (the "
        "hunt's `freeze_at` until its end) it is the board as of `freeze_at`; staff get the live one.",
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


class LeaderboardChartView(HuntScoped, APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="leaderboard_chart",
        summary="Score over time of the top 10 teams (public), as on the leaderboard page",
        description="Public: no credentials needed. During the freeze it stops at `frozen_at` (staff see "
        "it live). Before the start the series are empty.",
        responses={200: LeaderboardChartSerializer, **error_responses(401, 404)},
        auth=[],
        tags=["leaderboard"],
    )
    def get(self, request, hunt):
        now = timezone.now()
        hunt = self.hunt
        frozen_at = hunt.frozen_at(now)
        cutoff = None if request.user.is_staff else frozen_at
        top = board_for(hunt, request.user, now=now)[:CHART_TEAMS]
        series = top_series(hunt.pk, top, before=cutoff) if top and now >= hunt.starts_at else []
        by_id = {row["team_id"]: row["team"] for row in top}
        body = {
            "start": hunt.starts_at,
            "end": min(now, hunt.ends_at, cutoff or now),
            "frozen_at": frozen_at,
            "series": [
                {
                    "team": by_id[s.team_id],
                    "score": s.final,
                    "steps": [{"at": at, "score": score} for at, score in s.steps],
                }
                for s in series
            ],
        }
        return Response(LeaderboardChartSerializer(body).data)
