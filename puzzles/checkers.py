"""Answer checkers: one class per answer kind, plus the verdict for a guess."""

from __future__ import annotations

import functools
import logging
import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import regex
from django.core.exceptions import ValidationError
from rapidfuzz import fuzz

from .normalize import exact_key, light_key

logger = logging.getLogger(__name__)

REGEX_TIMEOUT = 0.1  # seconds; a guess must never stall a worker on a bad pattern
EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG)
NEAR_MISS_RATIO = 85
COORDS_MESSAGE = 'Could not read coordinates: use "lat, lng"'
NUMBER_MESSAGE = "Could not read a number"


@dataclass(frozen=True, slots=True)
class Match:
    """A checker's verdict; `message` is shown to the team only on a non-match."""

    matched: bool
    message: str = ""


MATCHED = Match(True)
NOT_MATCHED = Match(False)


class AnswerLike(Protocol):
    """What `judge` needs from an answer (the Answer model fits)."""

    kind: str
    parameters: dict[str, Any]
    final: bool
    response: str


@dataclass(frozen=True, slots=True)
class Field:
    """An author parameter of an answer kind."""

    name: str
    required: bool = True
    default: Any = None


Errors = dict[str, list[str]]


def _number(value: Any) -> float | None:
    """Return `value` as a finite float, or None when it is not a real number."""
    # bool is an int subclass, and YAML turns `yes` into True: refuse it.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        f = float(value)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


class Checker:
    """Base class: validates author parameters against `fields`."""

    kind: ClassVar[str]
    fields: ClassVar[tuple[Field, ...]]

    @classmethod
    def clean(cls, params: dict[str, Any]) -> dict[str, Any]:
        """Return validated parameters with defaults filled in, in `fields` order."""
        if not isinstance(params, dict):
            raise ValidationError({"parameters": ["Answer parameters must be a mapping."]})
        names = [f.name for f in cls.fields]
        errors: Errors = {}
        for name in params:
            if name not in names:
                message = f"Unknown parameter '{name}' for {cls.kind} answers"
                errors[str(name)] = [f"{message}; allowed: {', '.join(names)}."]
        cleaned: dict[str, Any] = {}
        for f in cls.fields:
            if f.name in params:
                cleaned[f.name] = params[f.name]
            elif f.required:
                errors[f.name] = [f"This field is required for {cls.kind} answers."]
            else:
                cleaned[f.name] = f.default
        if len(cleaned) == len(cls.fields):
            cls._validate(cleaned, errors)
        if errors:
            raise ValidationError(errors)
        return cleaned

    @classmethod
    def _validate(cls, params: dict[str, Any], errors: Errors) -> None:
        """Add a message to `errors[field]` for each bad value in `params`."""
        raise NotImplementedError

    @classmethod
    def check(cls, params: dict[str, Any], text: str) -> Match:
        """Judge the guess `text` against cleaned `params`."""
        raise NotImplementedError


def _error(errors: Errors, field: str, message: str) -> None:
    errors.setdefault(field, []).append(message)


class ExactChecker(Checker):
    """Equal once accents, case, spaces and punctuation are ignored."""

    kind = "exact"
    fields = (Field("value"),)

    @classmethod
    def _validate(cls, params: dict[str, Any], errors: Errors) -> None:
        value = params["value"]
        if not isinstance(value, str):
            _error(errors, "value", "Must be a string (quote it in YAML).")
        elif not exact_key(value):
            _error(errors, "value", "Must contain at least one letter or digit.")

    @classmethod
    def check(cls, params: dict[str, Any], text: str) -> Match:
        return MATCHED if exact_key(text) == exact_key(params["value"]) else NOT_MATCHED


@functools.lru_cache(maxsize=1024)
def _compile(pattern: str, case_sensitive: bool) -> regex.Pattern[str]:
    # FULLCASE so that a pattern's "ß" still matches the casefolded guess "ss".
    flags = 0 if case_sensitive else regex.IGNORECASE | regex.FULLCASE
    return regex.compile(pattern, flags)


class RegexChecker(Checker):
    """The whole normalized guess matches a regular expression."""

    kind = "regex"
    fields = (Field("pattern"), Field("case_sensitive", required=False, default=False))

    @classmethod
    def _validate(cls, params: dict[str, Any], errors: Errors) -> None:
        pattern, case_sensitive = params["pattern"], params["case_sensitive"]
        if not isinstance(case_sensitive, bool):
            _error(errors, "case_sensitive", "Must be true or false.")
        if not isinstance(pattern, str) or not pattern:
            _error(errors, "pattern", "Must be a non-empty string.")
        elif isinstance(case_sensitive, bool):
            try:
                _compile(pattern, case_sensitive)
            except regex.error as exc:
                _error(errors, "pattern", f"Invalid regular expression: {exc}")

    @classmethod
    def check(cls, params: dict[str, Any], text: str) -> Match:
        pattern = params["pattern"]
        case_sensitive = params.get("case_sensitive", False)
        # light_key casefolds, which would make case_sensitive meaningless.
        subject = " ".join(unicodedata.normalize("NFKC", text).split()) if case_sensitive else light_key(text)
        try:
            found = _compile(pattern, case_sensitive).fullmatch(subject, timeout=REGEX_TIMEOUT)
        except TimeoutError:
            logger.warning("Regex answer %r timed out on a %d-character guess", pattern, len(text))
            return NOT_MATCHED
        return MATCHED if found else NOT_MATCHED


_NUMBER = re.compile(
    r"""\s*
    (?P<sign>[+\-\u2212])?  # U+2212 is the minus sign that word processors type
    (?P<int>[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)?
    (?:\.(?P<frac>[0-9]*))?
    (?:[eE](?P<exp>[+\-\u2212]?[0-9]+))?
    """,
    re.VERBOSE,
)
# Unit text may follow a number, but a digit before any letter means the number
# was misread ("1,2345", "0,5", "1.2.3", "12 34", "5-7", "½"): refuse rather than guess.
_BAD_TAIL = re.compile(r"[\W_]*(?:[eE][+\-\u2212]?)?\d")


def parse_number(text: str) -> float | None:
    """Read a number like "-1,234.5e3 km"; None when unreadable."""
    text = unicodedata.normalize("NFKC", text)
    m = _NUMBER.match(text)
    if not m or not (m["int"] or m["frac"]) or _BAD_TAIL.match(text, m.end()):
        return None
    literal = "".join(
        (
            "-" if m["sign"] in ("-", "\u2212") else "",
            (m["int"] or "0").replace(",", ""),
            ".",
            m["frac"] or "0",
            "e" + m["exp"].replace("\u2212", "-") if m["exp"] else "",
        )
    )
    value = float(literal)
    return value if math.isfinite(value) else None


class NumericChecker(Checker):
    """A number within `tolerance` of `value`."""

    kind = "numeric"
    fields = (Field("value"), Field("tolerance", required=False, default=0))

    @classmethod
    def _validate(cls, params: dict[str, Any], errors: Errors) -> None:
        if _number(params["value"]) is None:
            _error(errors, "value", "Must be a finite number.")
        tolerance = _number(params["tolerance"])
        if tolerance is None or tolerance < 0:
            _error(errors, "tolerance", "Must be a number >= 0.")

    @classmethod
    def check(cls, params: dict[str, Any], text: str) -> Match:
        x = parse_number(text)
        if x is None:
            return Match(False, NUMBER_MESSAGE)
        value = params["value"]
        # Slack for binary rounding, so 0.1 + 0.2 style guesses still equal 0.3.
        slack = 1e-9 * max(1.0, abs(value))
        return MATCHED if abs(x - value) <= params.get("tolerance", 0) + slack else NOT_MATCHED


_SET_SEPARATOR = re.compile(r"[,;/\r\n]|\band\b", re.IGNORECASE)


def split_set(text: str) -> list[str]:
    """Split a guess into items on , ; / newlines and the word "and"."""
    return [item for part in _SET_SEPARATOR.split(text) if (item := part.strip())]


def _key_set(items: Iterable[str]) -> set[str]:
    return {key for item in items if (key := exact_key(item))}


class SetChecker(Checker):
    """The same items as `values`, in any order."""

    kind = "set"
    fields = (Field("values"),)

    @classmethod
    def _validate(cls, params: dict[str, Any], errors: Errors) -> None:
        values = params["values"]
        if not isinstance(values, list) or not values:
            _error(errors, "values", "Must be a non-empty list of strings.")
            return
        for i, value in enumerate(values):
            if not isinstance(value, str):
                _error(errors, "values", f"Item {i + 1} must be a string (quote it in YAML).")
            elif not exact_key(value):
                _error(errors, "values", f"Item {i + 1} must contain a letter or digit.")
            elif split_set(value) != [value.strip()]:
                # The guess is split the same way, so such an item could never match.
                _error(
                    errors,
                    "values",
                    f"Item {i + 1} ({value!r}) contains a separator (, ; / newline or 'and').",
                )

    @classmethod
    def check(cls, params: dict[str, Any], text: str) -> Match:
        guessed = _key_set(split_set(text))
        return MATCHED if guessed and guessed == _key_set(params["values"]) else NOT_MATCHED


_COORD = r"([+\-\u2212]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
_COORDS = re.compile(rf"\s*{_COORD}\s*(?:,|\s)\s*{_COORD}\s*")


def parse_coordinates(text: str) -> tuple[float, float] | None:
    """Read "lat, lng" or "lat lng" in decimal degrees; None when unreadable or out of range."""
    m = _COORDS.fullmatch(unicodedata.normalize("NFKC", text))
    if not m:
        return None
    lat, lng = (float(g.replace("\u2212", "-")) for g in m.groups())
    if not (-90 <= lat <= 90 and -180 <= lng <= 180):
        return None
    return lat, lng


def haversine_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in metres on a spherical Earth."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlambda = math.radians(lng2 - lng1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    # min() because rounding can push `a` a hair above 1 for antipodal points.
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


class GeoChecker(Checker):
    """A point within `radius_m` metres of (`lat`, `lng`)."""

    kind = "geo"
    fields = (
        Field("lat"),
        Field("lng"),
        Field("radius_m"),
        Field("hint_distance", required=False, default=None),
    )

    @classmethod
    def _validate(cls, params: dict[str, Any], errors: Errors) -> None:
        lat, lng = _number(params["lat"]), _number(params["lng"])
        if lat is None or not -90 <= lat <= 90:
            _error(errors, "lat", "Must be a number from -90 to 90.")
        if lng is None or not -180 <= lng <= 180:
            _error(errors, "lng", "Must be a number from -180 to 180.")
        radius = _number(params["radius_m"])
        if radius is None or radius <= 0:
            _error(errors, "radius_m", "Must be a number of metres > 0.")
        if params["hint_distance"] is not None:
            hint = _number(params["hint_distance"])
            if hint is None or (radius is not None and hint <= radius):
                message = "Must be a number of metres > radius_m, or null."
                _error(errors, "hint_distance", message)

    @classmethod
    def check(cls, params: dict[str, Any], text: str) -> Match:
        point = parse_coordinates(text)
        if point is None:
            return Match(False, COORDS_MESSAGE)
        distance = haversine_m(params["lat"], params["lng"], *point)
        if distance <= params["radius_m"]:
            return MATCHED
        hint = params.get("hint_distance")
        if hint is not None and distance <= hint:
            # Half up to 10 m by hand: round() would round halves to even.
            return Match(False, f"You are about {int(distance / 10 + 0.5) * 10:,} m away")
        return NOT_MATCHED


CHECKERS: dict[str, type[Checker]] = {
    c.kind: c for c in (ExactChecker, RegexChecker, NumericChecker, SetChecker, GeoChecker)
}


def clean_answer(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """Validate an answer's parameters for `kind`; raise ValidationError when wrong."""
    checker = CHECKERS.get(kind) if isinstance(kind, str) else None
    if checker is None:
        raise ValidationError({"kind": [f"Unknown answer kind '{kind}'; use one of {', '.join(CHECKERS)}."]})
    return checker.clean(params)


def near_miss(text: str, values: list[str]) -> bool:
    """True when the guess is a small typo away from one of `values`."""
    key = exact_key(text)
    if not key:
        return False
    return any((target := exact_key(v)) and fuzz.ratio(key, target) >= NEAR_MISS_RATIO for v in values)


def all_exact(answers: Iterable[AnswerLike]) -> bool:
    """True when every answer is of kind exact (guesses then dedupe on exact_key)."""
    return all(a.kind == "exact" for a in answers)


def matching_final(answers: Iterable[AnswerLike], text: str) -> AnswerLike | None:
    """The first final answer the text matches (the one judge() accepts it by), if any."""
    for answer in answers:
        if answer.final and CHECKERS[answer.kind].check(answer.parameters, text).matched:
            return answer
    return None


def judge(answers: Iterable[AnswerLike], text: str) -> tuple[str, str]:
    """Return (status, response) for a guess: correct, partial or incorrect."""
    answers = list(answers)
    partial: AnswerLike | None = None
    message = ""
    for answer in answers:
        result = CHECKERS[answer.kind].check(answer.parameters, text)
        if result.matched:
            if answer.final:
                return "correct", answer.response or "Correct!"
            if partial is None:
                partial = answer
        elif not message:
            message = result.message
    if partial is not None:
        return "partial", partial.response or "Keep going!"
    if all_exact(answers):
        values = [a.parameters["value"] for a in answers]
        if near_miss(text, values):
            return "incorrect", "Very close!"
    return "incorrect", message
