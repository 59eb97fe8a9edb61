"""Memory handed back after most sockets have closed (treasurehunt/memory.py)."""

import asyncio
import gc

import pytest

from treasurehunt import memory


class Sockets:
    """An ASGI app whose websocket scopes stay open until closed by the test."""

    def __init__(self):
        self.open: list[asyncio.Event] = []

    async def __call__(self, scope, receive, send):
        done = asyncio.Event()
        self.open.append(done)
        await done.wait()


@pytest.fixture
def releases(monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "release", lambda: calls.append(1) or {"collected": 0})
    return calls


async def start(middleware, n: int) -> list[asyncio.Task]:
    tasks = [asyncio.ensure_future(middleware({"type": "websocket"}, None, None)) for _ in range(n)]
    await asyncio.sleep(0)
    return tasks


async def close(app: Sockets, n: int) -> None:
    for done in app.open[:n]:
        done.set()
    del app.open[:n]
    await asyncio.sleep(0.01)


async def test_a_release_follows_a_mass_disconnect_once_it_has_gone_quiet(releases):
    app = Sockets()
    middleware = memory.ReleaseMemory(app, min_closed=6, fraction=0.25, quiet=0.5)
    await start(middleware, 8)
    assert middleware.open == middleware.peak == 8
    await close(app, 6)  # 2 of 8 left: due
    await asyncio.sleep(0.3)
    await close(app, 1)  # still closing: the release waits for the last close
    await asyncio.sleep(0.3)
    assert releases == []  # 0.6 s after it was due, but only 0.3 s after the last close
    await asyncio.sleep(0.6)
    assert releases == [1]
    assert middleware.peak == middleware.open == 1  # counted afresh from here


async def test_no_release_while_many_sockets_stay_open_or_too_few_closed(releases):
    app = Sockets()
    middleware = memory.ReleaseMemory(app, min_closed=3, fraction=0.25, quiet=0.02)
    await start(middleware, 8)
    await close(app, 3)  # 5 of 8 still open, and fewer closed than open
    await asyncio.sleep(0.06)
    assert releases == []
    small = memory.ReleaseMemory(Sockets(), min_closed=100, fraction=0.25, quiet=0.02)
    tasks = await start(small, 4)
    for done in small.app.open[:3]:
        done.set()
    await asyncio.gather(*tasks[:3])
    await asyncio.sleep(0.06)
    assert releases == []  # 3 closed: under min_closed


async def test_sockets_turning_over_bring_a_release_even_while_many_stay_open(releases):
    app = Sockets()
    middleware = memory.ReleaseMemory(app, min_closed=4, fraction=0.25, quiet=0.2, max_wait=0.3)
    await start(middleware, 8)
    for _ in range(10):  # a steady churn: one closes and one comes every 20 ms, never quiet for 200 ms
        await close(app, 1)
        await start(middleware, 1)
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.8)
    assert middleware.open == 8
    assert releases == [1]  # 10 closed >= 8 open, released within max_wait despite the churn
    assert middleware.closed_since < 4


async def test_sockets_are_frozen_out_of_collections_as_they_come(monkeypatch):
    freezes = []
    monkeypatch.setattr(memory.gc, "freeze", lambda: freezes.append(middleware.open))
    app = Sockets()
    middleware = memory.ReleaseMemory(app, freeze_step=3, min_closed=100)
    await start(middleware, 7)
    assert freezes == [3, 6]
    await close(app, 5)  # 2 left
    await start(middleware, 3)
    assert freezes == [3, 6, 5]  # counted again from the lower level


async def test_sockets_coming_back_before_the_release_cancel_it(releases):
    app = Sockets()
    middleware = memory.ReleaseMemory(app, min_closed=4, fraction=0.25, quiet=0.5)
    await start(middleware, 8)
    await close(app, 8)
    await start(middleware, 9)  # a reconnect wave before the quiet time is over, more than closed
    await asyncio.sleep(0.7)
    assert releases == []


async def test_http_scopes_are_not_counted(releases):
    async def app(scope, receive, send):
        return "served"

    middleware = memory.ReleaseMemory(app)
    assert await middleware({"type": "http"}, None, None) == "served"
    assert middleware.open == middleware.peak == 0


def test_release_collects_frozen_cyclic_garbage_and_reports_rss():
    class Node:
        pass

    gc.collect()
    for _ in range(100):
        a, b = Node(), Node()
        a.other, b.other = b, a
    del a, b
    gc.freeze()  # as ReleaseMemory freezes sockets' objects
    assert gc.collect() == 0  # frozen: out of the collector's reach
    frozen = gc.get_freeze_count()
    done = memory.release()
    assert done["collected"] >= 200
    assert 0 < gc.get_freeze_count() <= frozen - 200  # the survivors are frozen again
    assert done["rss_after_kb"] > 0 and done["rss_before_kb"] > 0
    assert done["trimmed"] in (True, False)  # glibc here


def test_the_watch_logs_slow_full_collections(caplog):
    watch = memory.CollectionWatch(slow_ms=0)
    watch("start", {"generation": 0, "collected": 0, "uncollectable": 0})
    watch("stop", {"generation": 0, "collected": 0, "uncollectable": 0})
    assert watch.full == 0
    with caplog.at_level("WARNING", logger="treasurehunt.memory"):
        watch("start", {"generation": 2, "collected": 0, "uncollectable": 0})
        watch("stop", {"generation": 2, "collected": 7, "uncollectable": 0})
    assert watch.full == 1
    assert "full collection took" in caplog.text and "7 collected" in caplog.text


def test_rss_is_read_for_this_process_or_another_and_none_for_a_missing_one():
    import os

    own = memory.rss_kb()
    assert own > 0 and abs(memory.rss_kb(os.getpid()) - own) < own * 0.1
    assert memory.rss_kb(2**22 + 12345) is None  # above Linux's pid limit: no such process


@pytest.fixture
def collector_off():
    """Only the middleware's steps collect: an automatic collection must not do their work for them."""
    was = gc.isenabled()
    gc.disable()
    yield
    gc.unfreeze()  # what a step froze goes back to the collector for the tests after this one
    if was:
        gc.enable()


class Node:
    pass


def cycle():
    """A weak reference to a cycle that only a collection frees."""
    import weakref

    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


async def test_a_step_collects_young_garbage_and_the_full_step_also_what_outlived_a_step(collector_off):
    # A long step: the test calls steady() itself, so no timing decides what it sees.
    middleware = memory.ReleaseMemory(Sockets(), step=60, full_every=3, freeze_step=1000, min_closed=1000)
    await start(middleware, 2)
    young = cycle()
    middleware.steady()  # step 1: young and middle generations
    assert young() is None
    import weakref

    a, b = Node(), Node()
    a.other, b.other = b, a
    old = weakref.ref(a)
    gc.collect(1)  # alive through a young collection: now in the oldest generation
    del a, b  # then garbage there
    kept = Node()
    frozen = gc.get_freeze_count()
    middleware.steady()  # step 2: young and middle only
    assert old() is not None and gc.get_freeze_count() == frozen
    middleware.steady()  # step 3: every generation, then what survived frozen
    assert old() is None  # not left for a release
    assert gc.get_freeze_count() > frozen
    assert not any(o is kept for o in gc.get_objects())  # frozen: out of every later walk
    middleware.stepper.cancel()


async def test_a_burst_of_connects_is_only_counted_and_the_steps_end_with_the_sockets(monkeypatch):
    collections = []
    monkeypatch.setattr(memory.gc, "collect", lambda generation=2: collections.append(generation) or 0)
    app = Sockets()
    middleware = memory.ReleaseMemory(
        app, step=60, burst=3, full_every=100, freeze_step=1000, min_closed=1000
    )
    await start(middleware, 5)  # more than `burst` in one step
    pending = middleware.stepper
    middleware.steady()
    assert collections == []  # that step only counted the burst
    assert middleware.stepper is not None  # and the next is scheduled
    assert pending.cancelled()  # in place of the one pending: one chain of steps, not two
    middleware.steady()
    assert collections == [1]  # the next one, quiet, collected the young and middle generations
    await close(app, 5)
    middleware.steady()
    assert middleware.stepper is None  # no socket open: no step scheduled


async def test_steps_come_every_step_seconds_while_sockets_are_open(monkeypatch):
    collections = []
    monkeypatch.setattr(memory.gc, "collect", lambda generation=2: collections.append(generation) or 0)
    app = Sockets()
    middleware = memory.ReleaseMemory(app, step=0.05, freeze_step=1000, min_closed=1000)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await start(middleware, 1)
    while len(collections) < 2 and loop.time() - started < 5:  # a busy machine may run them late, not never
        await asyncio.sleep(0.01)
    assert 2 <= len(collections) <= (loop.time() - started) / 0.05 + 1  # never more often than every step
    await close(app, 1)
    await asyncio.sleep(0.15)
    settled = len(collections)
    await asyncio.sleep(0.15)
    assert len(collections) == settled


def test_a_new_event_loop_gets_steps_of_its_own_and_the_old_loops_step_is_dropped(monkeypatch):
    steps = []
    monkeypatch.setattr(memory.gc, "collect", lambda generation=2: steps.append(generation) or 0)
    middleware = memory.ReleaseMemory(Sockets(), step=0.02, freeze_step=1000, min_closed=1000)

    async def one_socket_for(seconds):
        task = asyncio.ensure_future(middleware({"type": "websocket"}, None, None))
        await asyncio.sleep(seconds)
        task.cancel()

    asyncio.run(one_socket_for(0))  # the loop ends before its first step, which stays scheduled on it
    first = middleware.stepper
    assert steps == [] and first is not None
    asyncio.run(one_socket_for(0.05))
    assert first.cancelled()
    assert steps  # stepped on the second loop

    async def stale_step():
        middleware.steady()  # a step running on a loop that is not the middleware's now

    before = len(steps)
    asyncio.run(stale_step())
    assert len(steps) == before
