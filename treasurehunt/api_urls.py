"""The REST API of DESIGN section 8, in one table."""

from django.http import JsonResponse
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt

from hunts import api as hunts_api
from hunts import staff_api as hunts_staff_api
from puzzles import api as puzzles_api
from puzzles import staff_api as puzzles_staff_api

app_name = "api"

HUNT = "hunts/<slug:hunt>/"
PUZZLE = HUNT + "puzzles/<slug:puzzle>/"
STAFF = HUNT + "staff/"
STAFF_PUZZLE = STAFF + "puzzles/<slug:puzzle>/"
STAFF_TEAM = STAFF + "teams/<slug:team>/"


@csrf_exempt
def not_found(request, *args, **kwargs):
    """Any other path under /api/ is a JSON 404, never an HTML page (nor a CSRF 403 for a POST)."""
    return JsonResponse({"detail": "Not found."}, status=404)


urlpatterns = [
    path("auth/token/", hunts_api.TokenView.as_view(), name="token"),
    path("hunts/", hunts_api.HuntListView.as_view(), name="hunts"),
    path(HUNT, hunts_api.HuntDetailView.as_view(), name="hunt"),
    path(HUNT + "teams/", hunts_api.TeamCreateView.as_view(), name="team-create"),
    path(HUNT + "teams/join/", hunts_api.TeamJoinView.as_view(), name="team-join"),
    path(HUNT + "team/", hunts_api.TeamView.as_view(), name="team"),
    path(HUNT + "team/leave/", hunts_api.TeamLeaveView.as_view(), name="team-leave"),
    path(HUNT + "puzzles/", puzzles_api.PuzzleListView.as_view(), name="puzzles"),
    path(PUZZLE, puzzles_api.PuzzleDetailView.as_view(), name="puzzle"),
    path(PUZZLE + "guesses/", puzzles_api.GuessCreateView.as_view(), name="guess-create"),
    path(PUZZLE + "hints/<int:hint_id>/unlock/", puzzles_api.HintUnlockView.as_view(), name="hint-unlock"),
    path(PUZZLE + "hint-requests/", puzzles_api.HintRequestListView.as_view(), name="hint-requests"),
    path(HUNT + "guesses/", puzzles_api.GuessListView.as_view(), name="guesses"),
    path(HUNT + "guesses/<int:guess_id>/", puzzles_api.GuessDetailView.as_view(), name="guess"),
    path(HUNT + "leaderboard/", puzzles_api.LeaderboardView.as_view(), name="leaderboard"),
    path(HUNT + "treasures/", puzzles_api.TreasureListView.as_view(), name="treasures"),
    path(HUNT + "treasures/claim/", puzzles_api.TreasureClaimView.as_view(), name="treasure-claim"),
    path(HUNT + "announcements/", hunts_api.AnnouncementListView.as_view(), name="announcements"),
    path(HUNT + "events/", hunts_api.EventListView.as_view(), name="events"),
    # Spectators (public)
    path(HUNT + "public-events/", hunts_api.PublicEventListView.as_view(), name="public-events"),
    path(HUNT + "leaderboard/chart/", puzzles_api.LeaderboardChartView.as_view(), name="leaderboard-chart"),
    # Staff controls of a live hunt
    path(STAFF_PUZZLE + "unlock/", puzzles_staff_api.PuzzleUnlockView.as_view(), name="staff-unlock"),
    path(STAFF_PUZZLE + "lock/", puzzles_staff_api.PuzzleLockView.as_view(), name="staff-lock"),
    path(STAFF_PUZZLE + "rejudge/", puzzles_staff_api.RejudgeView.as_view(), name="staff-rejudge"),
    path(STAFF_PUZZLE + "errata/", puzzles_staff_api.ErratumCreateView.as_view(), name="staff-errata"),
    path(STAFF + "errata/<int:erratum_id>/", puzzles_staff_api.ErratumView.as_view(), name="staff-erratum"),
    path(
        STAFF_TEAM + "score-adjustments/",
        puzzles_staff_api.ScoreAdjustmentCreateView.as_view(),
        name="staff-adjust",
    ),
    path(STAFF_TEAM + "hidden/", hunts_staff_api.TeamHiddenView.as_view(), name="staff-team-hidden"),
    path(STAFF_TEAM + "join-code/", hunts_staff_api.TeamJoinCodeView.as_view(), name="staff-join-code"),
    path(
        STAFF_TEAM + "members/<str:username>/",
        hunts_staff_api.TeamMemberView.as_view(),
        name="staff-team-member",
    ),
    path(STAFF + "end/", hunts_staff_api.HuntEndView.as_view(), name="staff-end"),
    path(STAFF + "leaderboard/", puzzles_staff_api.LiveLeaderboardView.as_view(), name="staff-leaderboard"),
    path(STAFF + "exports/<str:what>/", puzzles_staff_api.ExportView.as_view(), name="staff-export"),
    re_path(r"^", not_found),
]
