"""The report's "met" column judges the figures themselves, not the rounded ratio the table shows."""

import pytest

from bench import run
from bench.tests.test_cpu_split import fixed, result_with


def verdict(result: dict, starts: str) -> tuple:
    [row] = [r for r in run.figures(result) if r["figure"].startswith(starts)]
    return row["ratio"], row["met"]


@pytest.mark.parametrize(("app", "met"), [(145.1, False), (146.0, True)])
def test_http_meets_its_aim_only_at_half_the_bare_views_rate_or_more(app, met):
    result = result_with({})
    result["options"]["http_concurrency"] = 16
    result["scenarios"]["http"] = {"app": {"per_s": app}, "bare": {"per_s": 291.9}}
    assert verdict(result, "HTTP guess POST") == (0.5, met)  # 0.497x shows as 0.5x and misses


@pytest.mark.parametrize(("app", "met"), [(150, False), (151, True)])
def test_the_sustained_rate_meets_its_aim_only_at_half_the_bare_rate_or_more(app, met):
    result = result_with({})
    result["scenarios"]["guesses"]["app"]["sustained"] = {"per_s": app}
    result["scenarios"]["guesses"]["bare"]["sustained"] = {"per_s": 301}
    assert verdict(result, "sustained guesses/s") == (0.5, met)  # 150/301 = 0.498


@pytest.mark.parametrize(
    ("p99", "bare", "met"),
    [
        (12.0, 4.0, True),
        (12.01, 4.0, False),  # shows as 3.0x, and is over 3x
        (49.0, 20.0, True),
        (51.0, 20.0, False),  # within 3x, over 50 ms
    ],
)
def test_the_p99_is_met_within_50_ms_and_3x_the_bare_consumers(p99, bare, met):
    result = result_with({})
    result["scenarios"]["guesses"]["app"]["fixed"] = fixed(4000, p99)
    result["scenarios"]["guesses"]["bare"]["fixed"] = fixed(4000, bare)
    assert verdict(result, "p99 guess")[1] is met


def test_an_aim_is_never_met_against_a_bare_figure_of_zero():
    result = result_with({})
    result["options"]["http_concurrency"] = 16
    result["scenarios"]["http"] = {"app": {"per_s": 0.0}, "bare": {"per_s": 0.0}}  # every request failed
    assert verdict(result, "HTTP guess POST") == (None, False)
