"""Saving a hunt file: upsert by slug in one transaction, so ids and team progress survive."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Exists, OuterRef

from hunts.models import Hunt
from puzzles.models import Answer, Guess, Hint, HintUnlock, Puzzle, Round, Treasure
from puzzles.services import reopen_edited_clue

from .flags import refresh_puzzle_flags, treasure_code_key
from .hunt_files import HuntFileError, parse_hunt_file
from .spec import AnswerSpec, HintSpec, HuntSpec

# Only authored fields are written to existing rows: counters and flags that play keeps
# (event_seq, found_count, clue_released, ...) are never overwritten with a stale copy. (A clue that went
# out and is corrected goes out again: services.reopen_edited_clue.)
HUNT_FIELDS = [
    "title",
    "intro",
    "starts_at",
    "ends_at",
    "published",
    "max_team_size",
    "guess_limit_guesses",
    "guess_limit_minutes",
]
TREASURE_FIELDS = [
    "order",
    "name",
    "teaser",
    "reveal",
    "code",
    "code_key",
    "supply",
    "bonus",
    "clue",
    "clue_at",
]


def load_hunt_file(text: str, filename: str) -> Hunt:
    """Validate a hunt file and upsert its hunt; on any error raise HuntFileError and change nothing."""
    return save_hunt_spec(parse_hunt_file(text, filename))


def save_hunt_spec(spec: HuntSpec) -> Hunt:
    """Create or update the hunt `spec` describes (rounds by title, puzzles and treasures by slug)."""
    with transaction.atomic():
        # The hunt row first, as every writer does (DESIGN section 3: lock order).
        hunt = Hunt.objects.select_for_update(no_key=True).filter(slug=spec.slug).first()
        if hunt is None:
            hunt = Hunt(slug=spec.slug)
        else:
            problems = _lost_progress(hunt, spec)
            if problems:
                raise HuntFileError(problems)
        hunt.title = spec.title
        hunt.intro = spec.intro
        hunt.starts_at = spec.starts_at
        hunt.ends_at = spec.ends_at
        hunt.published = spec.published
        hunt.max_team_size = spec.max_team_size
        hunt.guess_limit_guesses, hunt.guess_limit_minutes = spec.guess_limit or (None, None)
        hunt.save(update_fields=HUNT_FIELDS if hunt.pk else None)

        rounds = []
        existing_rounds = {r.title: r for r in hunt.rounds.all()}
        for order, round_spec in enumerate(spec.rounds):
            round_ = existing_rounds.get(round_spec.title) or Round(hunt=hunt, title=round_spec.title)
            round_.order = order
            round_.save()
            rounds.append(round_)

        existing_puzzles = {p.slug: p for p in hunt.puzzles.all()}
        puzzles: dict[str, Puzzle] = {}
        for round_, round_spec in zip(rounds, spec.rounds, strict=True):
            for order, ps in enumerate(round_spec.puzzles):
                puzzle = existing_puzzles.get(ps.slug) or Puzzle(hunt=hunt, slug=ps.slug)
                puzzle.round = round_
                puzzle.order = order
                puzzle.title = ps.title
                puzzle.points = ps.points
                puzzle.meta = ps.meta
                puzzle.body = ps.body
                puzzle.solution = ps.solution
                puzzle.unlock_after_minutes = ps.unlock.after_minutes
                puzzle.unlock_solves = ps.unlock.solves
                puzzle.unlock_round_solves = ps.unlock.round_solves
                puzzle.unlock_needed = ps.unlock.needed
                puzzle.save()
                _save_answers(puzzle, ps.answers)
                _save_hints(puzzle, ps.hints)
                puzzles[ps.slug] = puzzle
        # Deleting before the rounds: a removed round's kept puzzles have moved out of it by now.
        hunt.puzzles.exclude(slug__in=list(puzzles)).delete()
        hunt.rounds.exclude(pk__in=[r.pk for r in rounds]).delete()
        for ps in spec.puzzles():
            puzzle = puzzles[ps.slug]
            puzzle.prerequisites.set([puzzles[slug] for slug in ps.unlock.prerequisites])
            refresh_puzzle_flags(puzzle)

        existing_treasures = {t.slug: t for t in hunt.treasures.all()}
        for order, ts in enumerate(spec.treasures):
            treasure = existing_treasures.pop(ts.slug, None) or Treasure(hunt=hunt, slug=ts.slug)
            treasure.order = order
            treasure.name = ts.name
            treasure.teaser = ts.teaser
            treasure.reveal = ts.reveal
            treasure.code = ts.code
            treasure.code_key = treasure_code_key(ts.code)
            treasure.supply = ts.supply
            treasure.bonus = list(ts.bonus)
            old_clue = treasure.clue
            treasure.clue = ts.clue
            treasure.clue_at = ts.clue_at
            reopened = reopen_edited_clue(treasure, old_clue) if treasure.pk else []  # under the hunt's lock
            treasure.save(update_fields=TREASURE_FIELDS + reopened if treasure.pk else None)
            treasure.requires.set([puzzles[slug] for slug in ts.requires])
        Treasure.objects.filter(pk__in=[t.pk for t in existing_treasures.values()]).delete()
    return hunt


def _save_answers(puzzle: Puzzle, answers: tuple[AnswerSpec, ...]) -> None:
    """Replace the answers, reusing rows by position so an unchanged file leaves them untouched."""
    _save_by_position(puzzle, Answer, answers, ("kind", "parameters", "final", "response"))


def _save_hints(puzzle: Puzzle, hints: tuple[HintSpec, ...]) -> None:
    """Update hints in place by position, so a hint a team bought keeps its id (and the purchase)."""
    _save_by_position(puzzle, Hint, hints, ("text", "after_minutes", "cost"))


def _save_by_position(
    puzzle: Puzzle, model: type[Answer | Hint], specs: tuple, fields: tuple[str, ...]
) -> None:
    """Make the puzzle's ordered `model` rows the specs: row i takes spec i's `fields`, extra rows go."""
    existing = list(model.objects.filter(puzzle=puzzle).order_by("order", "id"))
    model.objects.filter(pk__in=[row.pk for row in existing[len(specs) :]]).delete()
    for order, spec in enumerate(specs):
        # Orders only move down (old orders are distinct and sorted), so (puzzle, order) never collides.
        row = existing[order] if order < len(existing) else model(puzzle=puzzle)
        row.order = order
        for field in fields:
            setattr(row, field, getattr(spec, field))
        row.save()


def _lost_progress(hunt: Hunt, spec: HuntSpec) -> list[str]:
    """A message for each change that would destroy team progress or leave scores wrong; none = safe."""
    problems: list[str] = []

    def report(path: str, message: str) -> None:
        problems.append(f"{spec.locate(path)}: {path}: {message}")

    kept = {p.slug for p in spec.puzzles()}
    guessed = set(
        hunt.puzzles.exclude(slug__in=kept)
        .filter(Exists(Guess.objects.filter(puzzle=OuterRef("pk"))))
        .values_list("slug", flat=True)
    )
    for slug in sorted(guessed):
        report("rounds", f"puzzle '{slug}' is missing, but teams have guessed at it; put it back in a round")

    # Hints are matched by position; a bought hint's cost is in the team's score, so it must stay.
    hints = (
        Hint.objects.filter(puzzle__hunt=hunt)
        .annotate(bought=Exists(HintUnlock.objects.filter(hint=OuterRef("pk"), cost__gt=0)))
        .order_by("puzzle_id", "order", "id")
        .values_list("puzzle__slug", "bought")
    )
    counts: dict[str, int] = {}
    bought: dict[str, list[int]] = {}  # puzzle slug -> 1-based positions of bought hints
    for slug, was_bought in hints:
        counts[slug] = counts.get(slug, 0) + 1
        if was_bought:
            bought.setdefault(slug, []).append(counts[slug])
    for slug in sorted(set(bought) - kept - guessed):
        report(
            "rounds", f"puzzle '{slug}' is missing, but teams have bought its hints; put it back in a round"
        )
    for r, round_spec in enumerate(spec.rounds):
        for p, ps in enumerate(round_spec.puzzles):
            lost = [n for n in bought.get(ps.slug, []) if n > len(ps.hints)]
            if lost:
                report(
                    f"rounds[{r}].puzzles[{p}].hints",
                    f"hint {', '.join(map(str, lost))} was bought by a team: keep at least {max(lost)} hints "
                    "(their text may change)",
                )

    found = dict(hunt.treasures.filter(found_count__gt=0).values_list("slug", "found_count"))
    for slug in sorted(set(found) - {t.slug for t in spec.treasures}):
        report("treasures", f"treasure '{slug}' is missing, but {found[slug]} team(s) found it; put it back")
    for i, ts in enumerate(spec.treasures):
        if ts.supply is not None and found.get(ts.slug, 0) > ts.supply:
            report(f"treasures[{i}].supply", f"is {ts.supply}, but {found[ts.slug]} team(s) already found it")
    return problems
