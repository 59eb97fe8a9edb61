"""A hunt as plain data, the shape of a hunt file: what parsing yields, saving stores and export writes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError

from hunts.models import Hunt
from puzzles.checkers import clean_answer
from puzzles.models import Answer, Puzzle

from .flags import rules_present

DEFAULT_GUESS_LIMIT = (20, 10)  # (guesses, minutes), the Hunt model's defaults


@dataclass(frozen=True)
class AnswerSpec:
    kind: str
    parameters: dict[str, Any]
    final: bool = True
    response: str = ""


@dataclass(frozen=True)
class HintSpec:
    text: str
    after_minutes: int | None = None
    cost: int | None = None


@dataclass(frozen=True)
class UnlockSpec:
    after_minutes: int | None = None
    solves: int | None = None
    round_solves: int | None = None
    prerequisites: tuple[str, ...] = ()
    needed: int | None = None

    @property
    def has_rules(self) -> bool:
        return rules_present(
            after_minutes=self.after_minutes,
            solves=self.solves,
            round_solves=self.round_solves,
            prerequisites=self.prerequisites,
        )


@dataclass(frozen=True)
class PuzzleSpec:
    slug: str
    title: str
    points: int = 10
    meta: bool = False
    body: str = ""
    solution: str = ""
    unlock: UnlockSpec = UnlockSpec()
    answers: tuple[AnswerSpec, ...] = ()
    hints: tuple[HintSpec, ...] = ()


@dataclass(frozen=True)
class RoundSpec:
    title: str
    puzzles: tuple[PuzzleSpec, ...] = ()


@dataclass(frozen=True)
class TreasureSpec:
    slug: str
    name: str
    teaser: str = ""
    reveal: str = ""
    requires: tuple[str, ...] = ()
    code: str = ""
    supply: int | None = None
    bonus: tuple[int, ...] = ()
    clue: str = ""
    clue_at: datetime | None = None


@dataclass(frozen=True)
class HuntSpec:
    slug: str
    title: str
    starts_at: datetime
    ends_at: datetime
    intro: str = ""
    published: bool = True
    max_team_size: int = 4
    guess_limit: tuple[int, int] | None = DEFAULT_GUESS_LIMIT
    rounds: tuple[RoundSpec, ...] = ()
    treasures: tuple[TreasureSpec, ...] = ()
    # "FILE:LINE:COL" of the places that checks against the database report at, by path.
    locations: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def locate(self, path: str) -> str:
        """Where `path` was written, for an error message (the file's start when unknown)."""
        return self.locations.get(path) or self.locations.get("", "<hunt>")

    def puzzles(self) -> list[PuzzleSpec]:
        """Every puzzle, in play order (round by round)."""
        return [p for r in self.rounds for p in r.puzzles]

    def shifted(self, delta: timedelta) -> HuntSpec:
        """The same hunt with every time moved by `delta`."""
        treasures = tuple(
            dataclasses.replace(t, clue_at=t.clue_at + delta if t.clue_at else None) for t in self.treasures
        )
        return dataclasses.replace(
            self, starts_at=self.starts_at + delta, ends_at=self.ends_at + delta, treasures=treasures
        )


def _parameters(answer: Answer) -> dict[str, Any]:
    """The parameters as an import stores them (canonical order, defaults filled): export is stable."""
    try:
        return clean_answer(answer.kind, answer.parameters)
    except ValidationError:
        return dict(answer.parameters)  # written as they are, for the author to fix on import


def hunt_to_spec(hunt: Hunt) -> HuntSpec:
    """Read a saved hunt back as plain data (a constant number of queries)."""
    rounds = list(hunt.rounds.order_by("order", "id"))
    puzzles = list(
        Puzzle.objects.filter(hunt=hunt)
        .order_by("round__order", "round_id", "order", "id")
        .prefetch_related("answers", "hints", "prerequisites")
    )
    # Unordered relations (prerequisites, requires) are written in play order, so export is stable.
    position = {p.pk: i for i, p in enumerate(puzzles)}

    def slugs(related: list[Puzzle]) -> tuple[str, ...]:
        return tuple(p.slug for p in sorted(related, key=lambda p: position.get(p.pk, len(position))))

    by_round: dict[int, list[PuzzleSpec]] = {r.pk: [] for r in rounds}
    for p in puzzles:
        by_round[p.round_id].append(
            PuzzleSpec(
                slug=p.slug,
                title=p.title,
                points=p.points,
                meta=p.meta,
                body=p.body,
                solution=p.solution,
                unlock=UnlockSpec(
                    after_minutes=p.unlock_after_minutes,
                    solves=p.unlock_solves,
                    round_solves=p.unlock_round_solves,
                    prerequisites=slugs(list(p.prerequisites.all())),
                    needed=p.unlock_needed,
                ),
                answers=tuple(
                    AnswerSpec(kind=a.kind, parameters=_parameters(a), final=a.final, response=a.response)
                    for a in sorted(p.answers.all(), key=lambda a: (a.order, a.pk))
                ),
                hints=tuple(
                    HintSpec(text=h.text, after_minutes=h.after_minutes, cost=h.cost)
                    for h in sorted(p.hints.all(), key=lambda h: (h.order, h.pk))
                ),
            )
        )
    treasures = hunt.treasures.order_by("order", "id").prefetch_related("requires")
    return HuntSpec(
        slug=hunt.slug,
        title=hunt.title,
        intro=hunt.intro,
        starts_at=hunt.starts_at,
        ends_at=hunt.ends_at,
        published=hunt.published,
        max_team_size=hunt.max_team_size,
        guess_limit=(hunt.guess_limit["guesses"], hunt.guess_limit["minutes"]) if hunt.guess_limit else None,
        rounds=tuple(RoundSpec(title=r.title, puzzles=tuple(by_round[r.pk])) for r in rounds),
        treasures=tuple(
            TreasureSpec(
                slug=t.slug,
                name=t.name,
                teaser=t.teaser,
                reveal=t.reveal,
                requires=slugs(list(t.requires.all())),
                code=t.code,
                supply=t.supply,
                bonus=tuple(t.bonus),
                clue=t.clue,
                clue_at=t.clue_at,
            )
            for t in treasures
        ),
    )
