"""The leaderboard: one query over denormalized team scores, cached until a score changes."""

from django.conf import settings
from django.core.cache import cache

from hunts.events import iso, leaderboard_key
from hunts.models import Hunt, Team


def compute(hunt: Hunt) -> list[dict]:
    """Competition ranks ("1224") by score, then earlier last_scored_at; ties listed by earlier creation."""
    rows = Team.objects.filter(hunt=hunt).ranked().values_list(
        "pk", "slug", "name", "score", "solve_count", "last_scored_at"
    )
    board, previous, rank = [], None, 0
    for position, (pk, slug, name, score, solves, last) in enumerate(rows, start=1):
        if (score, last) != previous:
            rank, previous = position, (score, last)
        board.append(
            {
                "rank": rank,
                "team": {"slug": slug, "name": name},
                "score": score,
                "solves": solves,
                "last_scored_at": iso(last),
                "team_id": pk,
            }
        )
    return board


def leaderboard(hunt: Hunt) -> list[dict]:
    """The cached board (rows keep `team_id` for lookups; interfaces drop it)."""
    key = leaderboard_key(hunt.pk)
    board = cache.get(key)
    if board is None:
        board = compute(hunt)
        cache.set(key, board, settings.LEADERBOARD_CACHE_SECONDS)
    return board


def public_rows(board: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "team_id"} for row in board]


def rank_of(hunt: Hunt, team: Team) -> int | None:
    """The team's rank, or None when it is not on the board (hidden or without members)."""
    return next((row["rank"] for row in leaderboard(hunt) if row["team_id"] == team.pk), None)
