"""The leaderboard: one query over denormalized team scores, cached until a score changes.

During the freeze (the hunt's last `freeze_minutes`) the public board is the board as of the freeze instant,
computed from the score rows before it; staff keep the live one. At the end the final board shows.
"""

from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Max, Q, Sum
from django.utils import timezone

from hunts.events import hunt_group, iso, leaderboard_dirty_key, leaderboard_key, send_ephemeral
from hunts.models import Hunt, Team

from .models import HintUnlock, ScoreAdjustment, Solve, TreasureFind


def compute(hunt: Hunt, *, limit: int | None = None) -> list[dict]:
    """Competition ranks ("1224") by score, then earlier last_scored_at; ties listed by earlier creation.

    With `limit`, only the first rows: a row's rank depends only on the rows above it, so they are the
    full board's first rows.
    """
    rows = (
        Team.objects.filter(hunt=hunt)
        .ranked()
        .values_list("pk", "slug", "name", "score", "solve_count", "last_scored_at")
    )
    return _ranked(rows if limit is None else rows[:limit])


def _ranked(rows: Iterable[tuple]) -> list[dict]:
    """Board rows from (pk, slug, name, score, solves, last_scored_at) tuples already in board order."""
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
    """The cached live board (rows keep `team_id` for lookups; interfaces drop it). Staff see this one."""
    key = leaderboard_key(hunt.pk)
    board = cache.get(key)
    if board is None:
        board = compute(hunt)
        cache.set(key, board, settings.LEADERBOARD_CACHE_SECONDS)
    return board


def totals(
    *, hunt: Hunt | None = None, team_ids: list[int] | None = None, before: datetime | None = None
) -> dict[int, dict]:
    """Each team's {score, solves, last_scored_at} computed from its rows (4 queries), by team id.

    Score = puzzle points + treasure bonuses + adjustments - hint costs (DESIGN section 4); solves and the
    last score increase count only scored rows. With `before`, only rows from before that instant count.
    Teams without rows are left out.
    """
    scope = Q(team__hunt=hunt) if team_ids is None else Q(team_id__in=team_ids)
    sources = [
        (Solve.objects.filter(scope, post_hunt=False), "solved_at"),
        (TreasureFind.objects.filter(scope), "found_at"),
        (ScoreAdjustment.objects.filter(scope), "created_at"),
    ]
    result: dict[int, dict] = {}

    def entry(team_id: int) -> dict:
        return result.setdefault(team_id, {"score": 0, "solves": 0, "last_scored_at": None})

    for qs, at_field in sources:
        if before is not None:
            qs = qs.filter(**{f"{at_field}__lt": before})
        rows = qs.values("team_id").annotate(
            total=Sum("points"), n=Count("id"), last=Max(at_field, filter=Q(points__gt=0))
        )
        for row in rows:
            t = entry(row["team_id"])
            t["score"] += row["total"] or 0
            if qs.model is Solve:
                t["solves"] = row["n"]
            last = row["last"]
            if last is not None and (t["last_scored_at"] is None or last > t["last_scored_at"]):
                t["last_scored_at"] = last
    hints = HintUnlock.objects.filter(scope, cost__gt=0)
    if before is not None:
        hints = hints.filter(unlocked_at__lt=before)
    for row in hints.values("team_id").annotate(cost=Sum("cost")):
        entry(row["team_id"])["score"] -= row["cost"]
    return result


def compute_as_of(hunt: Hunt, at: datetime) -> list[dict]:
    """The board as it stood at `at`, from the score rows before it (the teams on it are today's)."""
    teams = list(
        Team.objects.filter(hunt=hunt)
        .with_members()
        .filter(hidden=False)
        .values_list("pk", "slug", "name", "created_at")
    )
    scores = totals(hunt=hunt, before=at)
    empty = {"score": 0, "solves": 0, "last_scored_at": None}
    rows = []
    for pk, slug, name, created_at in teams:
        t = scores.get(pk, empty)
        rows.append((pk, slug, name, t["score"], t["solves"], t["last_scored_at"], created_at))
    far = datetime.max.replace(tzinfo=at.tzinfo)
    rows.sort(key=lambda r: (-r[3], r[5] or far, r[6], r[0]))
    return _ranked(r[:6] for r in rows)


def public_board(hunt: Hunt, *, now: datetime | None = None) -> list[dict]:
    """The board players and spectators see: frozen at the freeze instant until the end, else live."""
    frozen_at = hunt.frozen_at(now or timezone.now())
    if frozen_at is None:
        return leaderboard(hunt)
    # Under the live board's version: a re-judge of guesses made before the freeze is reflected.
    key = f"{leaderboard_key(hunt.pk)}:frozen:{int(frozen_at.timestamp())}"
    board = cache.get(key)
    if board is None:
        board = compute_as_of(hunt, frozen_at)
        cache.set(key, board, settings.LEADERBOARD_CACHE_SECONDS)
    return board


def public_top(hunt: Hunt, size: int, *, now: datetime | None = None) -> list[dict]:
    """The public board's first `size` rows. Outside the freeze, one query of `size` rows, whatever the number
    of teams: the clock reads it every tick under a stream of score changes, when the whole board's cache
    is seldom fresh and rebuilding it for a thousand teams took the clock's process 10-30 ms of the core the
    sockets run on (BENCHMARKS.md, fix 35)."""
    if hunt.frozen_at(now or timezone.now()) is not None:
        return public_board(hunt, now=now)[:size]
    return compute(hunt, limit=size)


def board_for(hunt: Hunt, user, *, now: datetime | None = None) -> list[dict]:
    """Staff see the live board, everyone else the public one."""
    if getattr(user, "is_staff", False):
        return leaderboard(hunt)
    return public_board(hunt, now=now)


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
    top = public_rows(public_top(hunt, TOP_SIZE))
    if cache.get(top_key) == top:
        return False
    if not cache.add(pushed_key, 1, PUSH_EVERY_SECONDS):
        cache.set(dirty_key, 1, None)  # another clock pushed meanwhile; try again after its window
        return False
    cache.set(top_key, top, None)
    send_ephemeral(group=hunt_group(hunt.pk), frame={"type": "leaderboard.updated", "top": top})
    return True


def rank_of(hunt: Hunt, team: Team) -> int | None:
    """The team's rank on the public board (frozen during the freeze), or None when it is not on it."""
    return next((row["rank"] for row in public_board(hunt) if row["team_id"] == team.pk), None)
