"""Read-only queries shared by the API and the pages; rules stay in services.py."""

from datetime import datetime

from django.db.models import (
    Case,
    DateTimeField,
    Exists,
    Max,
    OuterRef,
    Prefetch,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.utils import timezone

from hunts.errors import NotFound
from hunts.models import Hunt, Team

from .models import (
    Erratum,
    Guess,
    Hint,
    HintRequest,
    HintUnlock,
    Puzzle,
    Solve,
    Treasure,
    TreasureFind,
    Unlock,
)
from .services import hint_available_at, shows_solved_text, solved_answer


def puzzles_for(team: Team, *, now: datetime | None = None) -> QuerySet[Puzzle]:
    """The team's unlocked puzzles in hunt order, annotated with `solved_at` and `unlocked_at` (one query)."""
    opened = max(team.hunt.starts_at, team.created_at)
    unlock = Unlock.objects.filter(team=team, puzzle=OuterRef("pk"), locked=False).values("unlocked_at")[:1]
    solve = Solve.objects.filter(team=team, puzzle=OuterRef("pk")).values("solved_at")[:1]
    return (
        Puzzle.objects.unlocked_for(team, now=now)
        .select_related("round")
        .annotate(
            solved_at=Subquery(solve, output_field=DateTimeField()),
            # Rule-free puzzles open for a team at max(hunt start, team created), as puzzle_unlocked_at says.
            unlocked_at=Case(
                When(has_rules=False, then=Value(opened, output_field=DateTimeField())),
                default=Subquery(unlock, output_field=DateTimeField()),
                output_field=DateTimeField(),
            ),
        )
        .order_by("round__order", "order", "id")
    )


def puzzle_for(team: Team, slug: str) -> Puzzle:
    """One of the team's unlocked puzzles, annotated like puzzles_for; locked or unknown is NotFound."""
    puzzle = puzzles_for(team).filter(slug=slug).first()
    if puzzle is None:
        raise NotFound(f"No puzzle '{slug}' is open for your team.")
    return puzzle


def hints_for(
    *, team: Team, puzzle: Puzzle, unlocked_at: datetime | None, now: datetime | None = None
) -> list[dict]:
    """The puzzle's hints as the team sees them: text only once unlocked (bought, free, always visible)."""
    now = now or timezone.now()
    hints = (
        Hint.objects.filter(puzzle=puzzle)
        .annotate(taken=Exists(HintUnlock.objects.filter(team=team, hint=OuterRef("pk"))))
        .order_by("order", "id")
    )
    rows = []
    for hint in hints:
        available_at = hint_available_at(hint, unlocked_at)
        unlocked = hint.always_visible or hint.taken or (available_at is not None and available_at <= now)
        row = {
            "id": hint.pk,
            "order": hint.order,
            "cost": hint.cost,
            "available_at": available_at,
            "unlocked": unlocked,
        }
        if unlocked:
            row["text"] = hint.text
        rows.append(row)
    return rows


def final_answer(puzzle: Puzzle, team: Team | None = None) -> str | None:
    """The puzzle's answer as this team is shown it (show it only to teams that solved the puzzle, or once
    solutions are published): services.solved_answer with the text the team solved with, read only where
    the final answers make it matter."""
    finals = list(puzzle.answers.filter(final=True).order_by("order", "id"))
    solved_with = None
    if team is not None and shows_solved_text(finals):
        # The guess that solved: the first judged correct (later pending ones may be judged correct too).
        solved_with = (
            Guess.objects.filter(team=team, puzzle=puzzle, status=Guess.Status.CORRECT)
            .order_by("judged_at", "id")
            .values_list("text", flat=True)
            .first()
        )
    return solved_answer(finals, solved_with)


def errata_of(puzzle_ids: list[int]) -> QuerySet[Erratum]:
    """Errata of these puzzles (show a team only those of puzzles it has), oldest first, with the puzzle."""
    return (
        Erratum.objects.filter(puzzle_id__in=puzzle_ids).select_related("puzzle").order_by("created_at", "id")
    )


def guesses_of(team: Team, *, puzzle_slug: str | None = None) -> QuerySet[Guess]:
    """The team's guesses, newest first, optionally on one puzzle."""
    qs = Guess.objects.filter(team=team).select_related("puzzle", "user").order_by("-created_at", "-id")
    if puzzle_slug is not None:
        qs = qs.filter(puzzle__slug=puzzle_slug)
    return qs


def hint_requests_of(team: Team, puzzle: Puzzle) -> QuerySet[HintRequest]:
    """The team's questions to staff about one puzzle, newest first."""
    return (
        HintRequest.objects.filter(team=team, puzzle=puzzle)
        .select_related("puzzle")
        .order_by("-created_at", "-id")
    )


def treasures_of(hunt: Hunt) -> QuerySet[Treasure]:
    """The hunt's treasures in order, with their finds (and finder teams) prefetched by rank."""
    finds = TreasureFind.objects.select_related("team").order_by("rank")
    return (
        Treasure.objects.filter(hunt=hunt)
        .prefetch_related(Prefetch("finds", queryset=finds))
        .order_by("order", "id")
    )


# --- Pages (player and staff views) ------------------------------------------------------


def finds_of(team: Team) -> QuerySet[TreasureFind]:
    """The team's treasure finds, earliest first, with their treasures."""
    return TreasureFind.objects.filter(team=team).select_related("treasure").order_by("found_at", "id")


def last_solve_times(team_ids: list[int]) -> dict[int, datetime]:
    """Each team's latest solve time (one query); teams without solves are left out."""
    rows = Solve.objects.filter(team_id__in=team_ids).values("team_id").annotate(last=Max("solved_at"))
    return {team_id: last for team_id, last in rows.values_list("team_id", "last")}


def latest_guesses(hunt: Hunt, *, limit: int = 50) -> list[Guess]:
    """The newest guesses across every team of the hunt (staff view)."""
    qs = Guess.objects.filter(team__hunt=hunt).select_related("team", "puzzle", "user")
    return list(qs.order_by("-created_at", "-id")[:limit])


def open_hint_requests(hunt: Hunt) -> QuerySet[HintRequest]:
    """Unanswered questions of every team, oldest first (the staff queue)."""
    return (
        HintRequest.objects.filter(team__hunt=hunt, status=HintRequest.Status.OPEN)
        .select_related("team", "puzzle", "user")
        .order_by("created_at", "id")
    )


def progress_grid(
    *, hunt: Hunt, teams: list[Team], now: datetime | None = None
) -> tuple[list[Puzzle], list[dict]]:
    """The hunt's puzzles, and per team one cell per puzzle: solved / open / locked and when (3 queries)."""
    now = now or timezone.now()
    puzzles = list(
        Puzzle.objects.filter(hunt=hunt).select_related("round").order_by("round__order", "order", "id")
    )
    team_ids = [t.pk for t in teams]
    unlocks = Unlock.objects.filter(team_id__in=team_ids).values_list(
        "team_id", "puzzle_id", "unlocked_at", "locked"
    )
    solves = Solve.objects.filter(team_id__in=team_ids).values_list("team_id", "puzzle_id", "solved_at")
    unlocked = {(t, p): at for t, p, at, locked in unlocks if not locked}
    relocked = {(t, p) for t, p, _, locked in unlocks if locked}
    solved = {(t, p): at for t, p, at in solves}
    started = hunt.starts_at <= now
    rows = []
    for team in teams:
        cells = []
        for puzzle in puzzles:
            key = (team.pk, puzzle.pk)
            if key in solved:
                cells.append({"state": "solved", "at": solved[key]})
            elif key in relocked:
                cells.append({"state": "locked", "at": None, "relocked": True})
            elif key in unlocked:
                cells.append({"state": "open", "at": unlocked[key]})
            elif started and not puzzle.has_rules:
                # As Puzzle.objects.unlocked_for: rule-free puzzles open at max(hunt start, team created).
                cells.append({"state": "open", "at": max(hunt.starts_at, team.created_at)})
            else:
                cells.append({"state": "locked", "at": None})
        rows.append({"team": team, "cells": cells})
    return puzzles, rows
