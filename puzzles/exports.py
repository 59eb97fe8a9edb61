"""Exports of a hunt's results, solves, treasure finds and guesses, as CSV or JSON.

One table per export: `table(hunt, what)` gives its columns and rows (plain values: strings, numbers,
booleans, None, times as ISO 8601 UTC); `stream` writes it. Used by `manage.py export_results`, the Hunt admin
action and the staff API. Staff see everything, hidden teams and post-hunt guesses included.
"""

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.db.models import Prefetch

from hunts.events import iso
from hunts.models import Hunt, Membership, Team

from .leaderboard import leaderboard
from .models import Guess, Solve, TreasureFind

WHATS = ("results", "solves", "finds", "guesses")
FORMATS = ("csv", "json")
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}
# A cell starting with one of these is a formula to a spreadsheet: teams choose their names and guesses.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class Table:
    columns: list[str]
    rows: Iterable[dict]


def results(hunt: Hunt) -> Table:
    """Every team with members, in leaderboard order (live board: the final standings after the end);
    hidden teams last, without a rank."""
    ranks = {row["team_id"]: row["rank"] for row in leaderboard(hunt)}
    members = Prefetch(
        "memberships", queryset=Membership.objects.select_related("user").order_by("joined_at")
    )
    teams = list(Team.objects.filter(hunt=hunt).with_members().prefetch_related(members))
    teams.sort(key=lambda t: (t.pk not in ranks, ranks.get(t.pk, 0), t.created_at, t.pk))
    rows = (
        {
            "rank": ranks.get(t.pk),
            "team": t.name,
            "team_slug": t.slug,
            "score": t.score,
            "solves": t.solve_count,
            "last_scored_at": iso(t.last_scored_at) if t.last_scored_at else None,
            "hidden": t.hidden,
            "members": " ".join(m.user.get_username() for m in t.memberships.all()),
            "created_at": iso(t.created_at),
        }
        for t in teams
    )
    columns = ["rank", "team", "team_slug", "score", "solves", "last_scored_at", "hidden", "members"]
    return Table([*columns, "created_at"], rows)


def solves(hunt: Hunt) -> Table:
    qs = Solve.objects.filter(puzzle__hunt=hunt).select_related("team", "puzzle").order_by("solved_at", "id")
    rows = (
        {
            "solved_at": iso(s.solved_at),
            "team": s.team.name,
            "team_slug": s.team.slug,
            "puzzle": s.puzzle.title,
            "puzzle_slug": s.puzzle.slug,
            "points": s.points,
            "post_hunt": s.post_hunt,
        }
        for s in qs.iterator(chunk_size=2000)
    )
    return Table(["solved_at", "team", "team_slug", "puzzle", "puzzle_slug", "points", "post_hunt"], rows)


def finds(hunt: Hunt) -> Table:
    qs = (
        TreasureFind.objects.filter(treasure__hunt=hunt)
        .select_related("team", "treasure")
        .order_by("found_at", "id")
    )
    rows = (
        {
            "found_at": iso(f.found_at),
            "treasure": f.treasure.name,
            "treasure_slug": f.treasure.slug,
            "rank": f.rank,
            "team": f.team.name,
            "team_slug": f.team.slug,
            "points": f.points,
        }
        for f in qs.iterator(chunk_size=2000)
    )
    return Table(["found_at", "treasure", "treasure_slug", "rank", "team", "team_slug", "points"], rows)


def guesses(hunt: Hunt) -> Table:
    qs = (
        Guess.objects.filter(puzzle__hunt=hunt)
        .select_related("team", "puzzle", "user")
        .order_by("created_at", "id")
    )
    rows = (
        {
            "id": g.pk,
            "created_at": iso(g.created_at),
            "judged_at": iso(g.judged_at) if g.judged_at else None,
            "team": g.team.name,
            "team_slug": g.team.slug,
            "user": g.user.get_username() if g.user_id else None,
            "puzzle_slug": g.puzzle.slug,
            "answer": g.text,
            "status": g.status,
            "response": g.response,
            "post_hunt": g.created_at >= hunt.ends_at,
        }
        for g in qs.iterator(chunk_size=2000)
    )
    columns = ["id", "created_at", "judged_at", "team", "team_slug", "user", "puzzle_slug", "answer"]
    return Table([*columns, "status", "response", "post_hunt"], rows)


TABLES = {"results": results, "solves": solves, "finds": finds, "guesses": guesses}


def table(hunt: Hunt, what: str) -> Table:
    if what not in TABLES:
        raise ValueError(f"Unknown export {what!r}: choose one of {', '.join(WHATS)}.")
    return TABLES[what](hunt)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if isinstance(value, str) and text.startswith(FORMULA_STARTS) and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def stream(data: Table, fmt: str) -> Iterator[str]:
    """The table as CSV (a header row, then one row per line) or JSON (an array of objects), in chunks."""
    if fmt == "json":
        yield "["
        for n, row in enumerate(data.rows):
            yield ("," if n else "") + "\n" + json.dumps(row, ensure_ascii=False)
        yield "\n]\n"
        return
    if fmt != "csv":
        raise ValueError(f"Unknown format {fmt!r}: choose csv or json.")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(data.columns)
    for row in data.rows:
        writer.writerow([_cell(row[c]) for c in data.columns])
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def render(hunt: Hunt, what: str, fmt: str) -> str:
    """The whole export as one string (admin action and API; the command streams to its file)."""
    return "".join(stream(table(hunt, what), fmt))


def filename(hunt: Hunt, what: str, fmt: str) -> str:
    return f"{hunt.slug}-{what}.{fmt}"
