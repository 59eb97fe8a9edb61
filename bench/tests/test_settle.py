"""bench.run.settled_rss: when daphne's RSS counts as settled (idle memory and the cycles' ratio)."""

from types import SimpleNamespace

from bench import run


def fake_daphne(monkeypatch, readings: list[tuple[int, float]]) -> SimpleNamespace:
    """daphne as readings taken 0.5 s apart on a fake clock: (RSS in KB, CPU seconds so far); the last
    reading repeats."""
    state = SimpleNamespace(now=0.0, step=0)

    def reading() -> tuple[int, float]:
        return readings[min(state.step, len(readings) - 1)]

    async def sleep(seconds):
        state.now += seconds
        state.step += 1

    monkeypatch.setattr(run, "asyncio", SimpleNamespace(sleep=sleep))
    monkeypatch.setattr(run, "time", SimpleNamespace(monotonic=lambda: state.now))
    monkeypatch.setattr(run, "rss_kb", lambda pid: reading()[0])
    monkeypatch.setattr(run, "process_cpu", lambda pid: (reading()[1], 0.0))
    return state


async def test_a_full_collection_holding_the_rss_still_is_not_settled(monkeypatch):
    # The stop-18 run's fifth cycle: the release's collection held the RSS at 383 MB for 2.3 s, working
    # flat out; then the RSS fell to 331 MB. The reading during the collection is not daphne's idle RSS.
    collecting = [(383_000, 0.5 * n) for n in range(6)]  # 2.5 s, a whole core
    released = [(331_000, 2.6)]
    state = fake_daphne(monkeypatch, collecting + released)

    assert await run.settled_rss(1) == 331_000
    assert state.now <= 6  # settled 2 s after the release, well before the timeout


async def test_an_idle_steady_rss_settles_after_the_steady_time(monkeypatch):
    state = fake_daphne(monkeypatch, [(300_000, 0.0), (300_100, 0.05), (300_200, 0.1)])

    assert await run.settled_rss(1) == 300_200
    assert state.now == 2.0


async def test_daphne_answering_pings_below_the_busy_share_settles(monkeypatch):
    # 5,000 idle sockets pinging every 10 s took about half a core of the stop-18 VM: not "busy".
    state = fake_daphne(monkeypatch, [(400_000, 0.3 * n) for n in range(100)])  # 60% of a core

    assert await run.settled_rss(1) == 400_000
    assert state.now == 2.0


async def test_a_busy_daphne_gives_its_last_reading_at_the_timeout_and_says_so(monkeypatch, capsys):
    state = fake_daphne(monkeypatch, [(300_000, 0.45 * n) for n in range(100)])  # 90% of a core throughout

    assert await run.settled_rss(1, timeout=15.0) == 300_000
    assert state.now == 15.0
    assert "did not settle in 15 s" in capsys.readouterr().err


async def test_a_moving_rss_gives_its_last_reading_at_the_timeout(monkeypatch, capsys):
    growing = [(300_000 + 3_000 * n, 0.0) for n in range(100)]  # 1% a step, idle
    state = fake_daphne(monkeypatch, growing)

    assert await run.settled_rss(1, timeout=15.0) == 300_000 + 3_000 * 30
    assert state.now == 15.0
    assert "did not settle" in capsys.readouterr().err
