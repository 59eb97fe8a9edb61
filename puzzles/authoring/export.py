"""Writing hunt files: a hunt as YAML in the documented key order, stable byte for byte."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from hunts.models import Hunt

from .spec import AnswerSpec, HintSpec, HuntSpec, PuzzleSpec, TreasureSpec, hunt_to_spec

_TAG = "tag:yaml.org,2002:"


class _Flow(dict):
    """A mapping written on one line: {kind: "exact", value: "X"}."""


class _FlowList(list):
    """A list written on one line: [50, 30, 10]."""


class _Time(str):
    """A time written as a plain YAML timestamp, so it reads back as a time."""


class _Dumper(yaml.SafeDumper):
    """Every string double-quoted (no YAML 1.1 surprises), keys plain, lists indented under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        return True  # equal values are written out, never as &anchors

    def write_double_quoted(self, text: str, split: bool = True) -> None:
        """Write a multi-line string one source line per YAML line, so bodies stay readable and diffable."""
        lines = text.split("\n")
        if self.flow_level or not split or len(lines) < 2 or lines == [lines[0], ""]:
            return super().write_double_quoted(text, split)
        trailing_newline = lines[-1] == ""
        if trailing_newline:
            lines.pop()
        self.write_indicator('"', True)
        for i, line in enumerate(lines):
            if i:
                # An escaped line break ("\" at the end of the line) adds nothing, and the next
                # line's leading spaces are dropped, so a leading space is written escaped.
                self.write_indent()
                if line.startswith(" "):
                    self._write("\\")
            for ch in line:
                self._write(self._escape(ch))
            if i < len(lines) - 1:
                self._write("\\n\\")
            elif trailing_newline:
                self._write("\\n")
        self.write_indicator('"', False)

    def _escape(self, ch: str) -> str:
        """One character as the stock double-quoted writer would write it."""
        printable = "\x20" <= ch <= "\x7e" or "\xa0" <= ch <= "\ud7ff" or "\ue000" <= ch <= "\ufffd"
        if ch in '"\\\x85\u2028\u2029\ufeff' or not printable:
            if ch in self.ESCAPE_REPLACEMENTS:
                return "\\" + self.ESCAPE_REPLACEMENTS[ch]
            if ch <= "\xff":
                return f"\\x{ord(ch):02X}"
            if ch <= "\uffff":
                return f"\\u{ord(ch):04X}"
            return f"\\U{ord(ch):08X}"
        return ch

    def _write(self, data: str) -> None:
        self.column += len(data)
        self.stream.write(data)
        self.whitespace = self.indention = False


def _mapping(dumper: _Dumper, data: dict[str, Any]) -> MappingNode:
    pairs = [(ScalarNode(_TAG + "str", key), dumper.represent_data(value)) for key, value in data.items()]
    return MappingNode(_TAG + "map", pairs, flow_style=isinstance(data, _Flow))


def _sequence(dumper: _Dumper, data: list[Any]) -> SequenceNode:
    items = [dumper.represent_data(item) for item in data]
    return SequenceNode(_TAG + "seq", items, flow_style=isinstance(data, _FlowList))


_Dumper.add_representer(str, lambda d, s: d.represent_scalar(_TAG + "str", s, style='"'))
_Dumper.add_representer(_Time, lambda d, s: d.represent_scalar(_TAG + "timestamp", str(s)))
for _type in (dict, _Flow):
    _Dumper.add_representer(_type, _mapping)
for _type in (list, _FlowList):
    _Dumper.add_representer(_type, _sequence)


def _time(value: datetime | None) -> _Time | None:
    return _Time(value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")) if value else None


def _answer(a: AnswerSpec) -> _Flow:
    return _Flow(kind=a.kind, **a.parameters, final=a.final, response=a.response)


def _hint(h: HintSpec) -> _Flow:
    data = _Flow(text=h.text)
    if h.after_minutes is not None:
        data["after_minutes"] = h.after_minutes
    if h.cost is not None:
        data["cost"] = h.cost
    return data


def _puzzle(p: PuzzleSpec) -> dict[str, Any]:
    data: dict[str, Any] = {
        "slug": p.slug,
        "title": p.title,
        "points": p.points,
        "meta": p.meta,
        "body": p.body,
        "solution": p.solution,
    }
    if p.unlock.has_rules:
        u = p.unlock
        unlock = _Flow()
        for key in ("after_minutes", "solves", "round_solves"):
            if getattr(u, key) is not None:
                unlock[key] = getattr(u, key)
        if u.prerequisites:
            unlock["prerequisites"] = _FlowList(u.prerequisites)
        if u.needed is not None:
            unlock["needed"] = u.needed
        data["unlock"] = unlock
    data["answers"] = [_answer(a) for a in p.answers]
    data["hints"] = [_hint(h) for h in p.hints]
    return data


def _treasure(t: TreasureSpec) -> dict[str, Any]:
    data: dict[str, Any] = {"slug": t.slug, "name": t.name, "teaser": t.teaser, "reveal": t.reveal}
    if t.requires:
        data["requires"] = _FlowList(t.requires)
    if t.code:
        data["code"] = t.code
    data.update(supply=t.supply, bonus=_FlowList(t.bonus), clue=t.clue, clue_at=_time(t.clue_at))
    return data


def dump_spec(spec: HuntSpec) -> str:
    """The hunt file for `spec`: documented key order, defaults written out."""
    data = {
        "slug": spec.slug,
        "title": spec.title,
        "intro": spec.intro,
        "starts_at": _time(spec.starts_at),
        "ends_at": _time(spec.ends_at),
        "published": spec.published,
        "max_team_size": spec.max_team_size,
        "guess_limit": _Flow(guesses=spec.guess_limit[0], minutes=spec.guess_limit[1])
        if spec.guess_limit
        else None,
        "rounds": [{"title": r.title, "puzzles": [_puzzle(p) for p in r.puzzles]} for r in spec.rounds],
        "treasures": [_treasure(t) for t in spec.treasures],
    }
    return yaml.dump(data, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=120)


def dump_hunt(hunt: Hunt) -> str:
    """Export a saved hunt as a hunt file that `load_hunt_file` reads back unchanged."""
    return dump_spec(hunt_to_spec(hunt))
