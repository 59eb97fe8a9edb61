"""The spectator page: a hunt followed without logging in (the top of the public board and public events).

Spectators have no socket (the live stream is for teams and staff); the page refreshes itself every 30 s.
The same data is public in the API: /api/hunts/<hunt>/leaderboard/ and /api/hunts/<hunt>/public-events/.
"""

from django.shortcuts import render
from django.utils import timezone

from puzzles.leaderboard import public_board

from .selectors import public_events_after
from .web import hunt_page

TOP_SHOWN = 10
EVENTS_SHOWN = 50
REFRESH_SECONDS = 30


@hunt_page()
def spectate(request, hunt, team):
    now = timezone.now()
    events = list(public_events_after(hunt=hunt).order_by("-seq")[:EVENTS_SHOWN])
    context = {
        "hunt": hunt,
        "team": team,
        "nav": "spectate",
        "now": now,
        "top": public_board(hunt, now=now)[:TOP_SHOWN],
        "frozen_at": hunt.frozen_at(now),
        "events": events,
        "refresh": REFRESH_SECONDS,
    }
    return render(request, "hunts/hunt_spectate.html", context)
