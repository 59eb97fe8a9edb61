"""bench.run: the fixed-rate run reads the server core's busy share and says where the slow guesses were."""

import asyncio

import pytest

from bench import run

START = 1_000_000.0  # the run's zero in Unix time


def readings(*shares: float, every: float = 0.2) -> list[tuple[float, float]]:
    """One reading per share, the first covering the run's first `every` seconds."""
    return [(START + every * (i + 1), share) for i, share in enumerate(shares)]


def test_slow_guesses_that_lived_through_a_saturated_reading_are_counted():
    # Readings cover 0-0.2, 0.2-0.4 (saturated), 0.4-0.6, 0.6-0.8 (saturated), 0.8-1.0 s.
    core = readings(0.5, 1.0, 0.6, 0.96, 0.4)
    timeline = [
        (0.05, 200.0),  # slow, 0.05-0.25 s: meets the saturated 0.2-0.4
        (0.45, 60.0),  # slow, 0.45-0.51 s: only the calm 0.4-0.6
        (0.50, None),  # undelivered: counted slow, and lives on through 0.6-0.8
        (0.30, 2.0),  # fast, inside 0.2-0.4
        (0.85, 3.0),  # fast, calm
    ]

    got = run.saturation(core, timeline, START)

    assert got == {
        "readings": 5,
        "saturated_share": 0.4,
        "slow": 3,
        "slow_meeting_saturated": 2,
        "all_meeting_saturated_share": 0.6,
    }


def test_a_guess_ending_as_a_saturated_reading_starts_does_not_meet_it():
    core = readings(0.1, 1.0)  # saturated from 0.2 s
    got = run.saturation(core, [(0.0, 199.0), (0.0, 201.0)], START)
    assert (got["slow"], got["slow_meeting_saturated"]) == (2, 1)


def test_without_readings_or_guesses_there_is_nothing_to_share():
    got = run.saturation([], [], START)
    assert got["saturated_share"] is None and got["all_meeting_saturated_share"] is None
    assert got["slow"] == got["slow_meeting_saturated"] == 0


async def test_the_reader_gives_the_busy_share_of_the_core_between_readings(monkeypatch):
    # (busy, total) jiffies of cpu0 at each read of /proc/stat: the first read is the start.
    jiffies = iter([(100, 200), (110, 220), (130, 240), (130, 240), (131, 260)])
    monkeypatch.setattr(run, "cpu_times", lambda: {"cores": {"cpu0": next(jiffies)}})
    got: list = []
    task = asyncio.ensure_future(run.read_core("cpu0", got, every=0.001))
    for _ in range(2000):  # at most about 2 s: a reader that died reads no more
        if len(got) == 3 or task.done():
            break
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    # 10 of 20, 20 of 20; a reading with no tick in between is skipped; then 1 of 20.
    assert [share for _, share in got] == [0.5, 1.0, 0.05]


def test_the_report_says_where_the_slow_guesses_were_and_only_with_readings():
    from bench.tests.test_cpu_split import load, result_with

    result = result_with({"guesses app": load(daphne=11.8), "guesses bare": load(daphne=2.4)})
    result["figures"] = run.figures(result)
    assert "Server core through" not in run.markdown(result)

    fixed = result["scenarios"]["guesses"]["app"]["fixed"]
    busy = readings(1.0, 0.5)
    fixed["server_core"] = {"core": "cpu0", "every_s": 0.2, "busy": busy}
    fixed["server_core"].update(run.saturation(busy, [(0.1, 80.0), (0.3, 2.0)], START))
    assert (
        "Server core through the app's fixed-rate run (read every 0.2 s): at least 95% busy in 50% of the "
        "readings; of the 1 guesses over 50 ms (or undelivered), 1 lived through such a reading (of all "
        "guesses, 50%)."
    ) in run.markdown(result)

    fixed["server_core"].update(run.saturation(busy, [(0.3, 2.0)], START))
    assert "at least 95% busy in 50% of the readings; no guess over 50 ms." in run.markdown(result)
