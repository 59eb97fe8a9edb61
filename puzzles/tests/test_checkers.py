"""Answer checkers, authoring validation and the guess verdict."""

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given, settings
from hypothesis import strategies as st

from puzzles.checkers import (
    CHECKERS,
    EARTH_RADIUS_M,
    Match,
    all_exact,
    clean_answer,
    haversine_m,
    judge,
    near_miss,
    parse_coordinates,
    parse_number,
    split_set,
)

METRES_PER_DEGREE = EARTH_RADIUS_M * math.pi / 180
EIFFEL = {"lat": 48.8584, "lng": 2.2945, "radius_m": 150, "hint_distance": 2000}


@dataclass
class Answer:
    kind: str
    parameters: dict[str, Any] = field(default_factory=dict)
    final: bool = True
    response: str = ""


def check(kind: str, text: str, **params: Any) -> Match:
    return CHECKERS[kind].check(clean_answer(kind, params), text)


def north_of_eiffel(metres: float) -> str:
    return f"{EIFFEL['lat'] + metres / METRES_PER_DEGREE}, {EIFFEL['lng']}"


def errors_of(kind: str, **params: Any) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as exc:
        clean_answer(kind, params)
    return exc.value.message_dict


# exact


def test_exact_ignores_case_accents_spaces_and_punctuation() -> None:
    assert check("exact", "  bright-beam! ", value="BRIGHT BEAM").matched
    assert check("exact", "Crème brûlée", value="CREME BRULEE").matched


def test_exact_rejects_a_different_word() -> None:
    assert check("exact", "bright beams", value="BRIGHT BEAM") == Match(False, "")


# regex


def test_regex_matches_the_whole_guess_ignoring_case() -> None:
    assert check("regex", "wreck-123", pattern="WRECK-[0-9]{3}").matched
    assert not check("regex", "the wreck-123", pattern="WRECK-[0-9]{3}").matched
    assert not check("regex", "wreck-1234", pattern="WRECK-[0-9]{3}").matched


def test_regex_sees_the_guess_with_collapsed_whitespace_and_folded_case() -> None:
    assert check("regex", "  Old   Harbour ", pattern="old harbou?r").matched
    assert check("regex", "STRASSE", pattern="straße").matched


def test_regex_case_sensitive_keeps_the_guess_case() -> None:
    assert check("regex", "  WRECK   A ", pattern="WRECK A", case_sensitive=True).matched
    assert not check("regex", "wreck a", pattern="WRECK A", case_sensitive=True).matched


def test_regex_timeout_counts_as_incorrect_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers = [Answer("regex", {"pattern": "(a|aa)+$"})]
    with caplog.at_level(logging.WARNING, logger="puzzles.checkers"):
        assert judge(answers, "a" * 5000 + "!") == ("incorrect", "")
    assert "timed out" in caplog.text


# numeric


def test_numeric_accepts_thousands_commas_and_units() -> None:
    assert check("numeric", "1,234,567 people", value=1234567).matched
    assert check("numeric", "12.5 km", value=12.5).matched
    assert check("numeric", "3kg", value=3).matched


def test_numeric_accepts_signs_decimals_and_exponents() -> None:
    assert parse_number("  -42 ") == -42
    assert parse_number("\u22125") == -5
    assert parse_number("+.5") == 0.5
    assert parse_number("7.") == 7
    assert parse_number("1.5E-3") == 0.0015
    assert parse_number("-1,234.5e2") == -123450
    assert parse_number("\N{FULLWIDTH DIGIT ONE}\N{FULLWIDTH DIGIT TWO}") == 12


def test_numeric_refuses_misplaced_commas_and_trailing_digits() -> None:
    for text in ["1,2345", "1,23", "0,5", "1234,567", "1.2.3", "12 34", "5-7", "½"]:
        assert parse_number(text) is None, text


def test_numeric_refuses_text_without_digits_or_infinite_values() -> None:
    for text in ["", "-", ".", "e5", "abc 12", "nan", "inf", "1e400"]:
        assert parse_number(text) is None, text


def test_numeric_unreadable_guess_says_so() -> None:
    assert check("numeric", "twelve", value=12) == Match(False, "Could not read a number")


def test_numeric_tolerance_is_inclusive() -> None:
    assert check("numeric", "10.5", value=10, tolerance=0.5).matched
    assert not check("numeric", "10.51", value=10, tolerance=0.5).matched
    assert not check("numeric", "-10", value=10).matched


def test_numeric_forgives_float_rounding() -> None:
    assert check("numeric", repr(0.1 + 0.2), value=0.3).matched


# set


def test_set_splits_on_separators_and_the_word_and() -> None:
    text = "Red, green and BLUE/ yellow;\npink AND sand"
    assert split_set(text) == ["Red", "green", "BLUE", "yellow", "pink", "sand"]


def test_set_ignores_order_case_duplicates_and_empty_items() -> None:
    values = ["Red", "Green", "Blue"]
    assert check("set", "blue; RED,, green, red", values=values).matched


def test_set_needs_exactly_the_same_items() -> None:
    values = ["Red", "Green", "Blue"]
    assert not check("set", "red, green", values=values).matched
    assert not check("set", "red, green, blue, pink", values=values).matched
    assert not check("set", " , ; ", values=values).matched


# geo


def test_geo_accepts_comma_or_space_separated_coordinates() -> None:
    assert parse_coordinates("48.8584, 2.2945") == (48.8584, 2.2945)
    assert parse_coordinates("48.8584 2.2945") == (48.8584, 2.2945)
    assert parse_coordinates("-33.9,+151.2") == (-33.9, 151.2)
    assert parse_coordinates("\u221233.9 , 151") == (-33.9, 151)


def test_geo_is_correct_within_the_radius() -> None:
    assert check("geo", north_of_eiffel(149.9), **EIFFEL).matched
    assert not check("geo", north_of_eiffel(150.1), **EIFFEL).matched


def test_geo_hint_rounds_the_distance_to_ten_metres() -> None:
    assert check("geo", north_of_eiffel(1234), **EIFFEL).message == "You are about 1,230 m away"
    assert check("geo", north_of_eiffel(1236), **EIFFEL).message == "You are about 1,240 m away"
    assert check("geo", north_of_eiffel(154), **EIFFEL).message == "You are about 150 m away"


def test_geo_gives_no_hint_beyond_hint_distance_or_without_one() -> None:
    assert check("geo", north_of_eiffel(2001), **EIFFEL) == Match(False, "")
    no_hint = {**EIFFEL, "hint_distance": None}
    assert check("geo", north_of_eiffel(500), **no_hint) == Match(False, "")


def test_geo_unreadable_or_out_of_range_coordinates_say_so() -> None:
    message = 'Could not read coordinates: use "lat, lng"'
    for text in ["Paris", "48.8584", "91, 0", "0, 181", "48,85 2,29"]:
        assert check("geo", text, **EIFFEL) == Match(False, message), text


def test_geo_distance_crosses_the_antimeridian() -> None:
    assert haversine_m(0, 179.9999, 0, -179.9999) == pytest.approx(22.24, abs=0.01)
    assert haversine_m(90, 0, -90, 0) == pytest.approx(math.pi * EARTH_RADIUS_M)


# clean


def test_clean_fills_in_defaults() -> None:
    assert clean_answer("regex", {"pattern": "a+"}) == {
        "pattern": "a+",
        "case_sensitive": False,
    }
    assert clean_answer("numeric", {"value": 3}) == {"value": 3, "tolerance": 0}
    assert clean_answer("geo", {"lat": 1, "lng": 2, "radius_m": 3}) == {
        "lat": 1,
        "lng": 2,
        "radius_m": 3,
        "hint_distance": None,
    }


def test_clean_rejects_an_invalid_regex() -> None:
    errors = errors_of("regex", pattern="WRECK-[0-9")
    assert errors["pattern"][0].startswith("Invalid regular expression: ")


def test_clean_rejects_a_non_bool_case_sensitive() -> None:
    assert "case_sensitive" in errors_of("regex", pattern="a", case_sensitive="no")


def test_clean_rejects_out_of_range_coordinates_and_radius() -> None:
    errors = errors_of("geo", lat=90.5, lng=-181, radius_m=0)
    assert set(errors) == {"lat", "lng", "radius_m"}


def test_clean_rejects_a_hint_distance_inside_the_radius() -> None:
    assert "hint_distance" in errors_of("geo", lat=0, lng=0, radius_m=100, hint_distance=100)


def test_clean_rejects_unknown_and_missing_fields() -> None:
    errors = errors_of("exact", answer="BEAM")
    assert errors["answer"] == ["Unknown parameter 'answer' for exact answers; allowed: value."]
    assert "value" in errors


def test_clean_rejects_an_unknown_kind() -> None:
    assert errors_of("fuzzy", value="x") == {
        "kind": ["Unknown answer kind 'fuzzy'; use one of exact, regex, numeric, set, geo."]
    }


def test_clean_rejects_booleans_and_strings_as_numbers() -> None:
    assert set(errors_of("numeric", value=True, tolerance=-1)) == {"value", "tolerance"}
    assert "value" in errors_of("numeric", value="12")


def test_clean_rejects_exact_values_without_letters_or_digits() -> None:
    assert "value" in errors_of("exact", value="?!")
    assert "value" in errors_of("exact", value=8)


def test_clean_rejects_bad_set_values() -> None:
    assert "values" in errors_of("set", values=[])
    assert "values" in errors_of("set", values=["a", ""])
    assert "values" in errors_of("set", values="a, b")
    assert "values" in errors_of("set", values=["salt and pepper", "oil"])


# judge


def test_judge_prefers_a_final_answer_over_a_partial_one() -> None:
    answers = [
        Answer(
            "regex",
            {"pattern": "beam.*"},
            final=False,
            response="Keep going: what beam?",
        ),
        Answer("exact", {"value": "BEAM"}, response="Yes!"),
    ]
    assert judge(answers, "beam") == ("correct", "Yes!")
    assert judge(answers, "beams") == ("partial", "Keep going: what beam?")


def test_judge_uses_default_responses() -> None:
    answers = [
        Answer("exact", {"value": "BRIGHT BEAM"}),
        Answer("exact", {"value": "BEAM"}, False),
    ]
    assert judge(answers, "bright beam") == ("correct", "Correct!")
    assert judge(answers, "beam") == ("partial", "Keep going!")


def test_judge_says_very_close_for_a_near_miss_on_exact_puzzles() -> None:
    answers = [Answer("exact", {"value": "BRIGHT BEAM"})]
    assert judge(answers, "brigt beam") == ("incorrect", "Very close!")
    assert judge(answers, "dark night") == ("incorrect", "")


def test_judge_gives_no_near_miss_when_any_answer_is_not_exact() -> None:
    answers = [
        Answer("exact", {"value": "BRIGHT BEAM"}),
        Answer("regex", {"pattern": "x"}, False),
    ]
    assert judge(answers, "brigt beam") == ("incorrect", "")


def test_judge_passes_on_the_first_checker_message() -> None:
    answers = [Answer("exact", {"value": "EIFFEL"}), Answer("geo", EIFFEL)]
    assert judge(answers, north_of_eiffel(500)) == (
        "incorrect",
        "You are about 500 m away",
    )
    assert judge([Answer("numeric", {"value": 4})], "four") == (
        "incorrect",
        "Could not read a number",
    )


def test_near_miss_needs_a_ratio_of_85() -> None:
    assert near_miss("lighthous", ["LIGHTHOUSE"])
    assert not near_miss("light", ["LIGHTHOUSE"])
    assert not near_miss("?!", ["?!"])


def test_all_exact_is_true_only_when_every_answer_is_exact() -> None:
    assert all_exact([Answer("exact"), Answer("exact")])
    assert not all_exact([Answer("exact"), Answer("set")])


# properties

finite_floats = st.floats(allow_nan=False, allow_infinity=False)
units = st.sampled_from(["", " ", " km", "kg", " m²", "%"])


@settings(max_examples=200)
@given(finite_floats, units)
def test_repr_of_any_float_parses_back(x: float, unit: str) -> None:
    assert parse_number(repr(x) + unit) == x


@settings(max_examples=200)
@given(finite_floats, units)
def test_float_with_thousands_commas_parses_back(x: float, unit: str) -> None:
    assert parse_number(f"{x:,}{unit}") == x


@settings(max_examples=200)
@given(st.integers(min_value=-(10**30), max_value=10**30), units)
def test_int_with_thousands_commas_parses_back(n: int, unit: str) -> None:
    assert parse_number(f"{n:,}{unit}") == float(n)


# Items can hold neither a separator nor an "a", so never the word "and".
set_items = st.lists(
    st.text(
        st.characters(exclude_characters=",;/\r\naA", exclude_categories=("Cs",)),
        min_size=1,
    ).filter(lambda s: s.strip()),
    min_size=1,
    max_size=6,
)
separators = st.sampled_from([",", ", ", ";", " ; ", "/", "\n", "\r\n", " and ", " AND ", ",,"])


@settings(max_examples=200)
@given(set_items, st.data())
def test_split_set_gives_back_the_joined_items(items: list[str], data: st.DataObject) -> None:
    text = items[0] + "".join(data.draw(separators) + item for item in items[1:])
    assert split_set(text) == [item.strip() for item in items]


@settings(max_examples=200)
@given(
    st.floats(min_value=-90, max_value=90),
    st.floats(min_value=-180, max_value=180),
    st.sampled_from([",", ", ", " ", " , "]),
)
def test_coordinates_with_any_separator_parse_back(lat: float, lng: float, sep: str) -> None:
    assert parse_coordinates(f"{lat:f}{sep}{lng:f}") == (
        float(f"{lat:f}"),
        float(f"{lng:f}"),
    )
