"""The denormalized puzzle and treasure fields, computed in one place for the admin and hunt files."""

from __future__ import annotations

from collections.abc import Collection

from puzzles.checkers import all_exact
from puzzles.models import Puzzle
from puzzles.normalize import exact_key


def rules_present(
    *,
    after_minutes: int | None,
    solves: int | None,
    round_solves: int | None,
    prerequisites: Collection[object],
) -> bool:
    """True when a puzzle has any unlock condition; a puzzle without one opens at hunt start."""
    return (
        after_minutes is not None or solves is not None or round_solves is not None or len(prerequisites) > 0
    )


def refresh_puzzle_flags(puzzle: Puzzle) -> None:
    """Recompute `has_rules` and `all_exact` from the saved rules, prerequisites and answers, and save them.

    Call it after the prerequisites and answers are saved (in the admin: after save_related),
    because both flags read those related rows.
    """
    puzzle.has_rules = rules_present(
        after_minutes=puzzle.unlock_after_minutes,
        solves=puzzle.unlock_solves,
        round_solves=puzzle.unlock_round_solves,
        prerequisites=list(puzzle.prerequisites.values_list("pk", flat=True)),
    )
    puzzle.all_exact = all_exact(puzzle.answers.all())
    # update() rather than save(): the caller may hold a stale copy of the other fields.
    Puzzle.objects.filter(pk=puzzle.pk).update(has_rules=puzzle.has_rules, all_exact=puzzle.all_exact)


def treasure_code_key(code: str) -> str:
    """The key a claimed code is compared by (like an exact answer); empty when the treasure has no code."""
    return exact_key(code) if code else ""
