"""Guess normalization shared by answer checking and guess deduplication."""

import unicodedata

_normalize = unicodedata.normalize
_category = unicodedata.category


def exact_key(s: str) -> str:
    """Return only the letters and digits of `s`, without accents or case."""
    # Casefolding can emit characters that NFKD decomposes further (Unicode's
    # compatibility caseless matching), so normalize again to stay idempotent.
    folded = _normalize("NFKD", _normalize("NFKD", s).casefold())
    return "".join(c for c in folded if _category(c)[0] in "LN")


def light_key(s: str) -> str:
    """Return `s` compatibility-normalized, casefolded and whitespace-collapsed."""
    # Fold before and after NFKC: either order alone leaves strings whose key
    # changes when keyed again, or when keyed after casefolding.
    folded = _normalize("NFKC", _normalize("NFKC", s.casefold()).casefold())
    return " ".join(folded.split())


def dedupe_key(text: str, *, all_exact: bool) -> str:
    """Return the key under which two guesses at one puzzle count as the same guess."""
    return exact_key(text) if all_exact else light_key(text)
