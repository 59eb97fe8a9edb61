"""A dry run of a hunt: when puzzles, hints and treasures open for a team solving at a steady pace."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from .spec import HuntSpec, PuzzleSpec

_PACE_RE = re.compile(r"\s*(\d+)\s*([smh])\s*")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours"}
# Causes before effects when several things happen in the same second.
_KIND_ORDER = (
    "hunt.started",
    "puzzle.solved",
    "treasure.found",
    "puzzle.unlocked",
    "hint.free",
    "treasure.clue",
    "hunt.ended",
)


@dataclass(frozen=True)
class TimelineEntry:
    at: timedelta  # since the hunt starts
    kind: str
    slug: str  # of the puzzle, treasure or hunt
    subject: str


def parse_pace(text: str) -> timedelta:
    """Read a duration like 90s, 20m or 2h; raise ValueError otherwise."""
    m = _PACE_RE.fullmatch(text)
    if not m or int(m[1]) == 0:
        raise ValueError(f"'{text}' is not a duration like 90s, 20m or 2h")
    return timedelta(**{_UNITS[m[2]]: int(m[1])})


def _nth(times: list[timedelta], n: int) -> timedelta | None:
    """When the n-th of these solves happened (n = 0 holds from the start); None if it has not."""
    if n == 0:
        return timedelta(0)
    return sorted(times)[n - 1] if len(times) >= n else None


def _unlock_at(
    puzzle: PuzzleSpec, round_of: dict[str, int], solved: dict[str, timedelta]
) -> timedelta | None:
    """When every unlock condition of `puzzle` holds given the solves so far (DESIGN section 6)."""
    u = puzzle.unlock
    if not u.has_rules:
        return timedelta(0)
    moments: list[timedelta | None] = [timedelta(minutes=u.after_minutes or 0)]
    if u.solves is not None:
        moments.append(_nth(list(solved.values()), u.solves))
    if u.round_solves is not None:
        same_round = [t for slug, t in solved.items() if round_of[slug] == round_of[puzzle.slug]]
        moments.append(_nth(same_round, u.round_solves))
    if u.prerequisites:
        needed = len(u.prerequisites) if u.needed is None else u.needed
        moments.append(_nth([solved[s] for s in u.prerequisites if s in solved], needed))
    return None if None in moments else max(moments)


def simulate(spec: HuntSpec, *, solve_every: timedelta) -> list[TimelineEntry]:
    """The timeline of one team that starts at the hunt's start and solves one puzzle per `solve_every`.

    The team works on one open puzzle at a time, the first in play order (round, then puzzle),
    waiting for the next unlock when nothing is open. Entries at or after the hunt's end are dropped.
    """
    puzzles = spec.puzzles()
    round_of = {p.slug: i for i, r in enumerate(spec.rounds) for p in r.puzzles}
    duration = spec.ends_at - spec.starts_at
    solved: dict[str, timedelta] = {}
    unlocked: dict[str, timedelta] = {}
    free_at = timedelta(0)
    while True:
        # Solve counts only grow, so an unlock time once known never changes.
        for p in puzzles:
            if p.slug not in unlocked and (at := _unlock_at(p, round_of, solved)) is not None:
                unlocked[p.slug] = at
        open_now = [
            (max(free_at, unlocked[p.slug]), position, p)
            for position, p in enumerate(puzzles)
            if p.slug in unlocked and p.slug not in solved
        ]
        if not open_now:
            break
        start, _, puzzle = min(open_now, key=lambda item: item[:2])
        free_at = start + solve_every
        if free_at >= duration:
            break
        solved[puzzle.slug] = free_at

    entries = [TimelineEntry(timedelta(0), "hunt.started", spec.slug, spec.title)]
    for p in puzzles:
        if p.slug in unlocked:
            entries.append(
                TimelineEntry(unlocked[p.slug], "puzzle.unlocked", p.slug, f"{p.slug} ({p.title})")
            )
            for n, hint in enumerate(p.hints, start=1):
                # A hint with only a cost is bought, never free.
                if hint.after_minutes is not None or hint.cost is None:
                    at = unlocked[p.slug] + timedelta(minutes=hint.after_minutes or 0)
                    entries.append(TimelineEntry(at, "hint.free", p.slug, f"{p.slug} hint {n}"))
        if p.slug in solved:
            entries.append(TimelineEntry(solved[p.slug], "puzzle.solved", p.slug, f"{p.slug} ({p.title})"))
    for t in spec.treasures:
        name = f"{t.slug} ({t.name})"
        if t.clue and t.clue_at is not None:
            entries.append(TimelineEntry(t.clue_at - spec.starts_at, "treasure.clue", t.slug, name))
        # Only treasures found by solving alone: one with a code waits for a player to enter it.
        if t.requires and not t.code and all(s in solved for s in t.requires):
            entries.append(TimelineEntry(max(solved[s] for s in t.requires), "treasure.found", t.slug, name))
    entries = [e for e in entries if e.at < duration]
    entries.append(TimelineEntry(duration, "hunt.ended", spec.slug, spec.title))
    order = {kind: i for i, kind in enumerate(_KIND_ORDER)}
    return sorted(entries, key=lambda e: (e.at, order[e.kind]))


def format_timeline(entries: list[TimelineEntry]) -> list[str]:
    """Lines like `+00:20  puzzle.solved    lighthouse (The Lighthouse)`; seconds shown only when needed."""
    with_seconds = any(e.at.total_seconds() % 60 for e in entries)
    lines = []
    for e in entries:
        sign = "-" if e.at < timedelta(0) else "+"
        seconds = int(abs(e.at.total_seconds()))
        stamp = f"{sign}{seconds // 3600:02d}:{seconds // 60 % 60:02d}"
        if with_seconds:
            stamp += f":{seconds % 60:02d}"
        lines.append(f"{stamp}  {e.kind:<15}  {e.subject}")
    return lines
