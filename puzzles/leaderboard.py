"""The leaderboard: one query over denormalized team scores, cached until a score changes."""

from django.conf import settings
from django.core.cache import cache

from hunts.events import hunt_group, iso, leaderboard_dirty_key, leaderboard_key, send_ephemeral
from hunts.models import Hunt, Team


def compute(hunt: Hunt) -> list[dict]:
    """Competition ranks ("1224") by score, then earlier last_scored_at; ties listed by earlier creation."""
    rows = (
        Team.objects.filter(hunt=hunt)
        .ranked()
        .values_list("pk", "slug", "name", "score", "solve_count", "last_scored_at")
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
                "last_scored_at": iso(last) if last is not None else None,
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


TOP_SIZE = 10
PUSH_EVERY_SECONDS = 5


def push_if_changed(hunt: Hunt) -> bool:
    """The clock's coalesced `leaderboard.updated` to the hunt group; returns whether it sent one.

    Only for a hunt marked dirty, at most once every PUSH_EVERY_SECONDS, and only when the top 10 changed,
    so fan-out stays bounded with thousands of sockets.
    """
    pushed_key, top_key = f"lb:pushed:{hunt.pk}", f"lb:top:{hunt.pk}"
    dirty_key = leaderboard_dirty_key(hunt.pk)
    if cache.get(pushed_key) or not cache.get(dirty_key):
        return False
    # Cleared before reading the board: a score changing from here on marks the hunt dirty again.
    cache.delete(dirty_key)
    top = public_rows(leaderboard(hunt)[:TOP_SIZE])
    if cache.get(top_key) == top:
        return False
    if not cache.add(pushed_key, 1, PUSH_EVERY_SECONDS):
        cache.set(dirty_key, 1, None)  # another clock pushed meanwhile; try again after its window
        return False
    cache.set(top_key, top, None)
    send_ephemeral(group=hunt_group(hunt.pk), frame={"type": "leaderboard.updated", "top": top})
    return True


def rank_of(hunt: Hunt, team: Team) -> int | None:
    """The team's rank, or None when it is not on the board (hidden or without members)."""
    return next((row["rank"] for row in leaderboard(hunt) if row["team_id"] == team.pk), None)
