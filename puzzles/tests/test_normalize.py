"""Normalization keys: examples and properties."""

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from puzzles.normalize import dedupe_key, exact_key, light_key

# Turkish dotless i upper-cases to plain I, so no case-insensitive key can
# map both back to the same string; keep it out of case properties.
text_without_dotless_i = st.text().filter(lambda s: "\N{LATIN SMALL LETTER DOTLESS I}" not in s)


def fullwidth(ascii_text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) for c in ascii_text)


def test_exact_key_drops_accents_case_spaces_and_punctuation() -> None:
    assert exact_key("  Crème Brûlée!? ") == "cremebrulee"


def test_exact_key_folds_compatibility_forms_and_sharp_s() -> None:
    assert exact_key(fullwidth("STRA") + "\N{LATIN CAPITAL LETTER SHARP S}E") == "strasse"
    assert exact_key("ﬁne") == "fine"


def test_exact_key_keeps_non_latin_letters_and_digits() -> None:
    # NFKD splits Hangul syllables into jamo, which are letters too.
    assert exact_key("서울 1988") == unicodedata.normalize("NFKD", "서울1988")
    assert exact_key("東京-タワー") == "東京タワー"


def test_exact_key_of_only_punctuation_is_empty() -> None:
    assert exact_key(" -- ?! ") == ""


def test_light_key_keeps_punctuation_and_collapses_whitespace() -> None:
    assert light_key("  Hello,\t\n  WORLD!  ") == "hello, world!"


def test_light_key_keeps_signs_apart() -> None:
    assert light_key("-3") != light_key("3")
    assert light_key("51.5,-0.1") != light_key("51.5,0.1")


def test_light_key_applies_compatibility_normalization() -> None:
    assert light_key(fullwidth("WRECK-123")) == "wreck-123"


def test_dedupe_key_uses_exact_key_only_for_all_exact_puzzles() -> None:
    assert dedupe_key("Bright Beam!", all_exact=True) == "brightbeam"
    assert dedupe_key("Bright  Beam!", all_exact=False) == "bright beam!"


@settings(max_examples=200)
@given(st.text())
def test_exact_key_is_idempotent(s: str) -> None:
    assert exact_key(exact_key(s)) == exact_key(s)


@settings(max_examples=200)
@given(st.text())
def test_light_key_is_idempotent(s: str) -> None:
    assert light_key(light_key(s)) == light_key(s)


@settings(max_examples=200)
@given(text_without_dotless_i)
def test_exact_key_ignores_case(s: str) -> None:
    assert exact_key(s.upper()) == exact_key(s.lower()) == exact_key(s.casefold())


@settings(max_examples=200)
@given(text_without_dotless_i)
def test_light_key_ignores_case(s: str) -> None:
    assert light_key(s.upper()) == light_key(s.lower()) == light_key(s.casefold())


@settings(max_examples=200)
@given(st.text())
def test_exact_key_output_is_letters_and_digits_only(s: str) -> None:
    assert all(c.isalnum() for c in exact_key(s))


@settings(max_examples=200)
@given(st.text())
def test_light_key_has_no_outer_or_repeated_whitespace(s: str) -> None:
    key = light_key(s)
    assert key == key.strip()
    assert "  " not in key
    assert all(c == " " or not c.isspace() for c in key)
