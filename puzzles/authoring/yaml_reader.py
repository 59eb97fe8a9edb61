"""Typed reading of a YAML node tree, so every problem can be reported at its line and column.

Values are read from nodes (yaml.compose), not from constructed Python objects: a value YAML 1.1
resolved to another type than the one expected (`NO` -> false, `010` -> 8) is reported, never coerced.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_TAG = "tag:yaml.org,2002:"
_STR, _INT, _BOOL, _NULL, _TIMESTAMP = (_TAG + t for t in ("str", "int", "bool", "null", "timestamp"))
_TYPE_NAMES = {"bool": "boolean", "int": "integer", "float": "number", "str": "string", "null": "null"}
SLUG_RE = re.compile(r"[a-z0-9-]+")
SLUG_MAX_LENGTH = 60
MAX_INT = 2_147_483_647  # the largest value of an integer column in PostgreSQL
TIME_EXAMPLE = "2026-12-01T18:00:00Z"
ROOT = "(file)"  # the path shown for problems with the file as a whole


def _join(path: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{path}[{name}]"
    return f"{path}.{name}" if path else name


@dataclass
class Fields:
    """A mapping node whose keys were checked: name -> (key node, value node)."""

    node: MappingNode
    path: str
    items: dict[str, tuple[Node, Node]]

    def value(self, name: str) -> Node | None:
        item = self.items.get(name)
        return item[1] if item else None

    def key(self, name: str) -> Node | None:
        item = self.items.get(name)
        return item[0] if item else None

    def child(self, name: str) -> str:
        return _join(self.path, name)


def is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL


class NodeReader:
    """Typed access to a node tree; collects every problem instead of stopping at the first."""

    def __init__(self, filename: str):
        self.filename = filename
        self.problems: list[tuple[tuple[int, int], str]] = []
        self._constructor = yaml.constructor.SafeConstructor()

    def at(self, node: Node) -> str:
        mark = node.start_mark
        return f"{self.filename}:{mark.line + 1}:{mark.column + 1}"

    def error(self, node: Node, path: str, message: str) -> None:
        mark = node.start_mark
        self.problems.append(((mark.line, mark.column), f"{self.at(node)}: {path or ROOT}: {message}"))

    def messages(self) -> list[str]:
        """The problems in file order."""
        return [message for _, message in sorted(self.problems, key=lambda p: p[0])]

    def construct(self, node: Node) -> Any:
        return self._constructor.construct_object(node, deep=True)

    def describe(self, node: Node) -> str:
        """What a node holds, as YAML resolved it: 'boolean false', 'a list', ..."""
        if isinstance(node, MappingNode):
            return "a mapping"
        if isinstance(node, SequenceNode):
            return "a list"
        kind = node.tag.removeprefix(_TAG)
        if node.tag == _NULL:
            return "null" if node.value else "null (an empty value)"
        if node.tag == _STR:
            return f'string "{node.value}"'
        try:
            value = self.construct(node)
        except yaml.YAMLError:
            value = node.value
        if isinstance(value, bool):
            shown = "true" if value else "false"
        elif isinstance(value, int):
            shown = str(value)  # what YAML made of it: 010 is 8
        else:
            shown = node.value
        return f"{_TYPE_NAMES.get(kind, kind)} {shown}"

    # --- structure -------------------------------------------------------------------

    def mapping(
        self, node: Node, path: str, *, required: tuple[str, ...] = (), optional: tuple[str, ...] | None = ()
    ) -> Fields | None:
        """Check a mapping's keys; `optional=None` allows any key besides `required`."""
        if not isinstance(node, MappingNode):
            self.error(node, path, f"expected a mapping, got {self.describe(node)}")
            return None
        allowed = None if optional is None else (*required, *optional)
        items: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            key = self.string(key_node, path)
            if key is None:
                continue
            if key in items:
                first = items[key][0].start_mark.line + 1
                self.error(key_node, _join(path, key), f"duplicate key '{key}' (first given on line {first})")
            elif allowed is not None and key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                suggestion = f"did you mean '{close[0]}'? " if close else ""
                self.error(
                    key_node,
                    _join(path, key),
                    f"unknown key '{key}'; {suggestion}allowed: {', '.join(allowed)}",
                )
            else:
                items[key] = (key_node, value_node)
        for name in required:
            if name not in items:
                self.error(node, _join(path, name), "this field is required")
        return Fields(node, path, items)

    def sequence(self, m: Fields, name: str) -> Iterator[tuple[str, Node]]:
        """(path, node) of each item of the list `name`; nothing when absent or not a list."""
        node = m.value(name)
        if node is None:
            return
        if not isinstance(node, SequenceNode):
            self.error(node, m.child(name), f"expected a list, got {self.describe(node)}")
            return
        for i, item in enumerate(node.value):
            yield _join(m.child(name), i), item

    # --- scalars ---------------------------------------------------------------------

    def string(self, node: Node, path: str) -> str | None:
        if isinstance(node, ScalarNode) and node.tag == _STR:
            return node.value
        if isinstance(node, ScalarNode):
            self.error(node, path, f'expected a string, got {self.describe(node)}; quote it: "{node.value}"')
        else:
            self.error(node, path, f"expected a string, got {self.describe(node)}")
        return None

    def text(self, m: Fields, name: str, *, max_length: int | None = None, blank: bool = True) -> str:
        node = m.value(name)
        if node is None:
            return ""
        value = self.string(node, m.child(name))
        if value is None:
            return ""
        if not blank and not value.strip():
            self.error(node, m.child(name), "must not be empty")
        if max_length is not None and len(value) > max_length:
            self.error(node, m.child(name), f"too long: {len(value)} characters (at most {max_length})")
        return value

    def slug(self, m: Fields, name: str) -> str:
        node = m.value(name)
        return "" if node is None else self.slug_value(node, m.child(name))

    def slug_value(self, node: Node, path: str) -> str:
        value = self.string(node, path)
        if value is None:
            return ""
        if not SLUG_RE.fullmatch(value):
            self.error(node, path, f"'{value}' is not a slug: use lowercase letters, digits and hyphens")
        elif len(value) > SLUG_MAX_LENGTH:
            self.error(node, path, f"too long: {len(value)} characters (at most {SLUG_MAX_LENGTH})")
        return value

    def integer(
        self,
        m: Fields,
        name: str,
        *,
        default: int | None,
        minimum: int = 0,
        maximum: int = MAX_INT,
        nullable: bool = False,
    ) -> int | None:
        node = m.value(name)
        if node is None:
            return default
        if nullable and is_null(node):
            return None
        value = self.whole_number(node, m.child(name), minimum=minimum, maximum=maximum, nullable=nullable)
        return default if value is None else value

    def whole_number(
        self, node: Node, path: str, *, minimum: int = 0, maximum: int = MAX_INT, nullable: bool = False
    ) -> int | None:
        """The integer in `node`; None, reported, when it is not one from `minimum` to `maximum`."""
        if not (isinstance(node, ScalarNode) and node.tag == _INT):
            expected = "a whole number or null" if nullable else "a whole number"
            self.error(node, path, f"expected {expected}, got {self.describe(node)}")
            return None
        value = self.construct(node)
        if value < minimum:
            self.error(node, path, f"must be at least {minimum}, got {value}")
            return None
        if value > maximum:
            self.error(node, path, f"must be at most {maximum}, got {value}")
            return None
        return value

    def boolean(self, m: Fields, name: str, *, default: bool) -> bool:
        node = m.value(name)
        if node is None:
            return default
        if not (isinstance(node, ScalarNode) and node.tag == _BOOL):
            self.error(node, m.child(name), f"expected true or false, got {self.describe(node)}")
            return default
        return self.construct(node)

    def time(self, m: Fields, name: str, *, nullable: bool = False) -> datetime | None:
        """An aware UTC datetime from a YAML timestamp or a quoted ISO 8601 string."""
        node = m.value(name)
        if node is None or (nullable and is_null(node)):
            return None
        path = m.child(name)
        value: Any = None
        if isinstance(node, ScalarNode) and node.tag == _TIMESTAMP:
            value = self.construct(node)
        elif isinstance(node, ScalarNode) and node.tag == _STR:
            try:
                value = datetime.fromisoformat(node.value)
            except ValueError:
                self.error(
                    node, path, f"'{node.value}' is not an ISO 8601 time; write it like {TIME_EXAMPLE}"
                )
                return None
        else:
            self.error(node, path, f"expected a time like {TIME_EXAMPLE}, got {self.describe(node)}")
            return None
        if not isinstance(value, datetime):
            self.error(node, path, f"needs a time of day and a timezone, like {TIME_EXAMPLE}")
            return None
        if value.utcoffset() is None:
            self.error(node, path, f"needs a timezone: add Z for UTC, like {TIME_EXAMPLE}")
            return None
        return value.astimezone(UTC)
