"""The REST API of DESIGN section 8, in one table."""

from django.http import JsonResponse
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt

from hunts import api as hunts_api
from puzzles import api as puzzles_api

app_name = "api"

HUNT = "hunts/<slug:hunt>/"
PUZZLE = HUNT + "puzzles/<slug:puzzle>/"


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
    re_path(r"^", not_found),
]
