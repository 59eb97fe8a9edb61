"""The leaderboard's score-over-time chart: each top team's score steps, drawn as inline SVG on the server."""

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from .models import HintUnlock, ScoreAdjustment, Solve, TreasureFind

# Ten hues that stay distinguishable on light and dark backgrounds.
COLORS = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
    "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
]  # fmt: skip

CHART_TEAMS = 10  # the top teams drawn, on the page and in the API
WIDTH, HEIGHT = 720, 300
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 12, 28


@dataclass
class Series:
    team_id: int
    name: str
    color: str
    steps: list[tuple[datetime, int]]  # the score after each change, in time order

    @property
    def final(self) -> int:
        return self.steps[-1][1] if self.steps else 0


def score_steps(
    team_ids: list[int], *, before: datetime | None = None
) -> dict[int, list[tuple[datetime, int]]]:
    """Each team's running score after every change (4 queries, whatever the number of teams or rows).

    Score = puzzle points + treasure bonuses + adjustments - hint costs, as in DESIGN section 4. With
    `before` (the leaderboard freeze), only changes before that instant.
    """
    changes: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
    sources = [
        (Solve.objects.filter(team_id__in=team_ids), "solved_at", "points"),
        (TreasureFind.objects.filter(team_id__in=team_ids), "found_at", "points"),
        (ScoreAdjustment.objects.filter(team_id__in=team_ids), "created_at", "points"),
        (HintUnlock.objects.filter(team_id__in=team_ids, cost__gt=0), "unlocked_at", "cost"),
    ]
    for qs, at_field, points_field in sources:
        if before is not None:
            qs = qs.filter(**{f"{at_field}__lt": before})
        sign = -1 if points_field == "cost" else 1
        for team_id, at, points in qs.values_list("team_id", at_field, points_field):
            changes[team_id].append((at, sign * points))
    steps: dict[int, list[tuple[datetime, int]]] = {}
    for team_id in team_ids:
        score, points = 0, []
        for at, delta in sorted(changes[team_id], key=lambda change: change[0]):
            score += delta
            points.append((at, score))
        steps[team_id] = points
    return steps


def top_series(hunt_id: int, rows: list[dict], *, before: datetime | None = None) -> list[Series]:
    """Series for leaderboard rows (dicts with team_id and team.name), in board order.

    The steps are cached under a digest of the rows' scores and times: any score change in the top rows
    (a solve, a find, a bought hint, an adjustment) changes the digest, so spectators cost no queries.
    """
    digest = hashlib.sha256(
        repr([(r["team_id"], r["score"], r["last_scored_at"]) for r in rows] + [before]).encode()
    ).hexdigest()[:32]
    steps = cache.get_or_set(
        f"lb:chart:{hunt_id}:{digest}",
        lambda: score_steps([row["team_id"] for row in rows], before=before),
        settings.LEADERBOARD_CACHE_SECONDS,
    )
    return [
        Series(row["team_id"], row["team"]["name"], COLORS[i % len(COLORS)], steps[row["team_id"]])
        for i, row in enumerate(rows)
    ]


def _nice_step(span: float, ticks: int = 4) -> float:
    raw = span / ticks
    magnitude = 10 ** (len(str(int(raw))) - 1) if raw >= 1 else 1
    for factor in (1, 2, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def _time_label(at: datetime, *, span: float) -> str:
    if span > 86400:
        return at.strftime("%b %d %H:%M")
    return at.strftime("%H:%M") if span > 1800 else at.strftime("%H:%M:%S")


def render_svg(series: list[Series], *, start: datetime, end: datetime) -> SafeString:
    """A step chart of the series from `start` to `end` (times in UTC), with axes and an accessible title."""
    if not series:
        return mark_safe("")
    last_change = max((s.steps[-1][0] for s in series if s.steps), default=end)
    end = max(end, last_change)
    span = max((end - start).total_seconds(), 1.0)
    scores = [score for s in series for _, score in s.steps]
    low, high = min([0, *scores]), max([10, *scores])
    step = _nice_step(high - low)
    low = step * (low // step)
    high = step * -(-high // step)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(at: datetime) -> float:
        seconds = min(max((at - start).total_seconds(), 0.0), span)
        return round(LEFT + plot_w * seconds / span, 1)

    def y(score: float) -> float:
        return round(TOP + plot_h * (high - score) / (high - low), 1)

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        'aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">',
        '<title id="chart-title">Score over time of the top teams</title>',
        f'<desc id="chart-desc">{escape(_describe(series))}</desc>',
    ]
    tick = low
    while tick <= high:
        parts.append(
            f'<line class="grid-line" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick)}" y2="{y(tick)}"/>'
        )
        parts.append(f'<text x="{LEFT - 6}" y="{y(tick) + 4}" text-anchor="end">{int(tick)}</text>')
        tick += step
    for fraction, anchor in ((0, "start"), (0.5, "middle"), (1, "end")):
        at = start + (end - start) * fraction
        parts.append(
            f'<text x="{x(at)}" y="{HEIGHT - 8}" text-anchor="{anchor}">{_time_label(at, span=span)}</text>'
        )
    parts.append(f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{HEIGHT - BOTTOM}"/>')
    for s in reversed(series):  # the leader is drawn last, on top
        points, score = [(x(start), y(0))], 0
        for at, new in s.steps:
            points += [(x(at), y(score)), (x(at), y(new))]
            score = new
        points.append((x(end), y(score)))
        coords = " ".join(f"{px},{py}" for px, py in points)
        parts.append(
            f'<polyline fill="none" stroke="{s.color}" stroke-width="2.5" stroke-linejoin="round" '
            f'data-team-id="{s.team_id}" points="{coords}">'
            f"<title>{escape(s.name)}: {s.final}</title></polyline>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every interpolated string above is escaped or a number


def _describe(series: list[Series]) -> str:
    return "; ".join(f"{s.name}: {s.final} points" for s in series)
