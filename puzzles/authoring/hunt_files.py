"""Reading hunt files (DESIGN section 8b): YAML to a HuntSpec, validated in full.

Every problem becomes one `FILE:LINE:COL: path: message` line of a HuntFileError.
"""

from __future__ import annotations

from typing import Any

import yaml
from django.core.exceptions import ValidationError
from yaml.nodes import Node, SequenceNode

from puzzles.checkers import clean_answer
from puzzles.normalize import exact_key

from .spec import (
    DEFAULT_GUESS_LIMIT,
    AnswerSpec,
    HintSpec,
    HuntSpec,
    PuzzleSpec,
    RoundSpec,
    TreasureSpec,
    UnlockSpec,
)
from .yaml_reader import ROOT, Fields, NodeReader, is_null

HUNT_REQUIRED = ("slug", "title", "starts_at", "ends_at")
HUNT_OPTIONAL = ("intro", "published", "max_team_size", "guess_limit", "rounds", "treasures")
PUZZLE_REQUIRED = ("slug", "title", "answers")
PUZZLE_OPTIONAL = ("points", "meta", "body", "solution", "unlock", "hints")
UNLOCK_KEYS = ("after_minutes", "solves", "round_solves", "prerequisites", "needed")
TREASURE_REQUIRED = ("slug", "name")
TREASURE_OPTIONAL = ("teaser", "reveal", "requires", "code", "supply", "bonus", "clue", "clue_at")
MAX_TEAM_SIZE = 32767  # Hunt.max_team_size is a PositiveSmallIntegerField
ANSWER_KEYS = ("kind", "final", "response")  # every other key of an answer is a parameter of its kind


class HuntFileError(Exception):
    """A hunt file that cannot be imported; `messages` are `FILE:LINE:COL: path: message` lines."""

    def __init__(self, messages: list[str]):
        super().__init__("\n".join(messages))
        self.messages = messages


class _HuntFileReader(NodeReader):
    """The hunt file schema (DESIGN section 8b) on top of the typed reader."""

    def __init__(self, filename: str):
        super().__init__(filename)
        self.locations: dict[str, str] = {}
        # (node, path, slug, owner) of every puzzle reference, checked once all slugs are known.
        self.references: list[tuple[Node, str, str, str | None]] = []
        # (slug, path, node) of every puzzle, checked for duplicates across rounds.
        self.puzzle_slugs: list[tuple[str, str, Node]] = []

    def locate(self, path: str, node: Node | None) -> None:
        if node is not None:
            self.locations[path] = self.at(node)

    def hunt(self, root: Node) -> HuntSpec | None:
        self.locations[""] = f"{self.filename}:1:1"
        m = self.mapping(root, "", required=HUNT_REQUIRED, optional=HUNT_OPTIONAL)
        if m is None:
            return None
        self.locate("rounds", m.key("rounds"))
        self.locate("treasures", m.key("treasures"))
        slug = self.slug(m, "slug")
        starts_at, ends_at = self.time(m, "starts_at"), self.time(m, "ends_at")
        if starts_at and ends_at and ends_at <= starts_at:
            self.error(m.value("ends_at"), "ends_at", "must be after starts_at")
        rounds = self.rounds(m)
        puzzle_slugs = self.unique_slugs(self.puzzle_slugs)
        treasures = self.treasures(m)
        for node, path, target, owner in self.references:
            if target not in puzzle_slugs:
                self.error(node, path, f"unknown puzzle '{target}'; name a puzzle slug from this file")
            elif target == owner:
                self.error(node, path, "a puzzle cannot be its own prerequisite")
        return HuntSpec(
            slug=slug,
            title=self.text(m, "title", max_length=200, blank=False),
            intro=self.text(m, "intro"),
            starts_at=starts_at,
            ends_at=ends_at,
            published=self.boolean(m, "published", default=True),
            max_team_size=self.integer(m, "max_team_size", default=4, minimum=1, maximum=MAX_TEAM_SIZE),
            guess_limit=self.guess_limit(m),
            rounds=rounds,
            treasures=treasures,
            locations=self.locations,
        )

    def guess_limit(self, m: Fields) -> tuple[int, int] | None:
        node = m.value("guess_limit")
        if node is None:
            return DEFAULT_GUESS_LIMIT
        if is_null(node):
            return None
        g = self.mapping(node, "guess_limit", required=("guesses", "minutes"))
        if g is None:
            return None
        guesses = self.integer(g, "guesses", default=1, minimum=1)
        minutes = self.integer(g, "minutes", default=1, minimum=1)
        return guesses, minutes

    def unique_slugs(self, entries: list[tuple[str, str, Node]]) -> set[str]:
        """Report repeated slugs (entries are (slug, path, node)); return the set of slugs."""
        first: dict[str, Node] = {}
        for value, path, node in entries:
            if value in first:
                self.error(
                    node,
                    path,
                    f"duplicate slug '{value}' (first used on line {first[value].start_mark.line + 1})",
                )
            elif value:
                first[value] = node
        return set(first)

    def slug_list(self, m: Fields, name: str, owner: str | None) -> tuple[str, ...]:
        """A list of puzzle slugs, queued for the reference check."""
        seen: list[str] = []
        for path, node in self.sequence(m, name):
            value = self.slug_value(node, path)
            if value in seen:
                self.error(node, path, f"'{value}' is listed twice")
            elif value:
                seen.append(value)
                self.references.append((node, path, value, owner))
        return tuple(seen)

    # --- rounds and puzzles ----------------------------------------------------------

    def rounds(self, m: Fields) -> tuple[RoundSpec, ...]:
        rounds: list[RoundSpec] = []
        titles: dict[str, Node] = {}
        for path, node in self.sequence(m, "rounds"):
            r = self.mapping(node, path, required=("title",), optional=("puzzles",))
            if r is None:
                continue
            title = self.text(r, "title", max_length=200, blank=False)
            if title in titles:
                line = titles[title].start_mark.line + 1
                self.error(
                    r.value("title"), r.child("title"), f"duplicate round title (first used on line {line})"
                )
            elif title:
                titles[title] = r.value("title")
            puzzles = []
            for ppath, pnode in self.sequence(r, "puzzles"):
                puzzle = self.puzzle(pnode, ppath)
                if puzzle is not None:
                    puzzles.append(puzzle)
            rounds.append(RoundSpec(title=title, puzzles=tuple(puzzles)))
        return tuple(rounds)

    def puzzle(self, node: Node, path: str) -> PuzzleSpec | None:
        m = self.mapping(node, path, required=PUZZLE_REQUIRED, optional=PUZZLE_OPTIONAL)
        if m is None:
            return None
        self.locate(m.child("hints"), m.key("hints") or m.node)
        slug = self.slug(m, "slug")
        answers = tuple(a for apath, anode in self.sequence(m, "answers") if (a := self.answer(anode, apath)))
        answers_node = m.value("answers")
        if isinstance(answers_node, SequenceNode) and not answers_node.value:
            self.error(answers_node, m.child("answers"), "needs at least one answer")
        elif answers and len(answers) == len(answers_node.value) and not any(a.final for a in answers):
            self.error(answers_node, m.child("answers"), "needs at least one final answer (final: true)")
        spec = PuzzleSpec(
            slug=slug,
            title=self.text(m, "title", max_length=200, blank=False),
            points=self.integer(m, "points", default=10),
            meta=self.boolean(m, "meta", default=False),
            body=self.text(m, "body"),
            solution=self.text(m, "solution"),
            unlock=self.unlock(m, slug),
            answers=answers,
            hints=tuple(h for hpath, hnode in self.sequence(m, "hints") if (h := self.hint(hnode, hpath))),
        )
        self.puzzle_slugs.append((slug, m.child("slug"), m.value("slug") or m.node))
        return spec

    def unlock(self, puzzle: Fields, slug: str) -> UnlockSpec:
        node = puzzle.value("unlock")
        if node is None:
            return UnlockSpec()
        m = self.mapping(node, puzzle.child("unlock"), optional=UNLOCK_KEYS)
        if m is None:
            return UnlockSpec()
        prerequisites = self.slug_list(m, "prerequisites", slug)
        needed = self.integer(m, "needed", default=None, minimum=1, nullable=True)
        if needed is not None and not prerequisites:
            self.error(m.value("needed"), m.child("needed"), "only means something with prerequisites")
        elif needed is not None and needed > len(prerequisites):
            message = f"is {needed} but there are only {len(prerequisites)} prerequisites"
            self.error(m.value("needed"), m.child("needed"), message)
        return UnlockSpec(
            after_minutes=self.integer(m, "after_minutes", default=None, nullable=True),
            solves=self.integer(m, "solves", default=None, nullable=True),
            round_solves=self.integer(m, "round_solves", default=None, nullable=True),
            prerequisites=prerequisites,
            needed=needed,
        )

    def answer(self, node: Node, path: str) -> AnswerSpec | None:
        m = self.mapping(node, path, required=("kind",), optional=None)
        if m is None:
            return None
        kind = self.text(m, "kind")
        final = self.boolean(m, "final", default=True)
        response = self.text(m, "response", max_length=500)
        params: dict[str, Any] = {}
        for name, (_, value_node) in m.items.items():
            if name in ANSWER_KEYS:
                continue
            try:
                params[name] = self.construct(value_node)
            except yaml.YAMLError as exc:
                self.error(value_node, m.child(name), f"unreadable value: {getattr(exc, 'problem', exc)}")
                return None
        if not kind:
            return None  # already reported: missing or not a string
        try:
            parameters = clean_answer(kind, params)
        except ValidationError as exc:
            errors = exc.message_dict if hasattr(exc, "error_dict") else {"": exc.messages}
            for name, messages in errors.items():
                target = m.value(name) or m.node  # a missing parameter is reported at the answer
                for message in messages:
                    self.error(target, m.child(name) if name else path, message)
            return None
        return AnswerSpec(kind=kind, parameters=parameters, final=final, response=response)

    def hint(self, node: Node, path: str) -> HintSpec | None:
        m = self.mapping(node, path, required=("text",), optional=("after_minutes", "cost"))
        if m is None:
            return None
        return HintSpec(
            text=self.text(m, "text", blank=False),
            after_minutes=self.integer(m, "after_minutes", default=None, nullable=True),
            cost=self.integer(m, "cost", default=None, nullable=True),
        )

    # --- treasures -------------------------------------------------------------------

    def treasures(self, m: Fields) -> tuple[TreasureSpec, ...]:
        treasures: list[TreasureSpec] = []
        slugs: list[tuple[str, str, Node]] = []
        codes: dict[str, Node] = {}
        for path, node in self.sequence(m, "treasures"):
            t = self.mapping(node, path, required=TREASURE_REQUIRED, optional=TREASURE_OPTIONAL)
            if t is None:
                continue
            self.locate(t.child("supply"), t.value("supply") or t.node)
            slug = self.slug(t, "slug")
            slugs.append((slug, t.child("slug"), t.value("slug") or t.node))
            reported = len(self.problems)
            code = self.text(t, "code", max_length=200)
            key = exact_key(code)
            if code and not key:
                self.error(t.value("code"), t.child("code"), "must contain at least one letter or digit")
            elif key in codes:
                line = codes[key].start_mark.line + 1
                self.error(t.value("code"), t.child("code"), f"same code as the treasure on line {line}")
            elif key:
                codes[key] = t.value("code")
            requires = self.slug_list(t, "requires", None)
            if not requires and not code and len(self.problems) == reported:
                self.error(
                    t.node,
                    path,
                    "needs requires (puzzles whose solving finds it) or code (to claim it), or both",
                )
            bonus = [
                points
                for bpath, bnode in self.sequence(t, "bonus")
                if (points := self.whole_number(bnode, bpath)) is not None
            ]
            treasures.append(
                TreasureSpec(
                    slug=slug,
                    name=self.text(t, "name", max_length=200, blank=False),
                    teaser=self.text(t, "teaser"),
                    reveal=self.text(t, "reveal"),
                    requires=requires,
                    code=code,
                    supply=self.integer(t, "supply", default=None, nullable=True),
                    bonus=tuple(bonus),
                    clue=self.text(t, "clue"),
                    clue_at=self.time(t, "clue_at", nullable=True),
                )
            )
        self.unique_slugs(slugs)
        return tuple(treasures)


def _syntax_error(exc: yaml.YAMLError, text: str, filename: str) -> HuntFileError:
    """A YAML syntax error as one positioned message."""
    if isinstance(exc, yaml.MarkedYAMLError) and (exc.problem_mark or exc.context_mark):
        mark = exc.problem_mark or exc.context_mark
        line, column = mark.line + 1, mark.column + 1
        problem = exc.problem or exc.context
        if exc.context and exc.problem and exc.context_mark:
            problem += f" ({exc.context} on line {exc.context_mark.line + 1})"
    elif isinstance(exc, yaml.reader.ReaderError):
        before = text[: exc.position]
        line, column = before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
        problem = (
            exc.reason + f" (character {exc.character!r})" if isinstance(exc.character, str) else exc.reason
        )
    else:
        line, column, problem = 1, 1, str(exc)
    return HuntFileError([f"{filename}:{line}:{column}: {ROOT}: invalid YAML: {problem}"])


def parse_hunt_file(text: str, filename: str) -> HuntSpec:
    """Read and validate a hunt file; raise HuntFileError listing every problem found."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, text, filename) from None
    except RecursionError:
        # The composer recurses once per level: `[[[[...` thousands deep would be a crash, not a message.
        raise HuntFileError([f"{filename}:1:1: {ROOT}: invalid YAML: nested too deeply"]) from None
    if root is None:
        raise HuntFileError([f"{filename}:1:1: {ROOT}: the file is empty"])
    reader = _HuntFileReader(filename)
    spec = reader.hunt(root)
    if reader.problems or spec is None:
        raise HuntFileError(reader.messages())
    return spec
