"""hunts.consumers.dispatch_loop: the consumer's message loop in place of channels' await_many_dispatch."""

import asyncio

import pytest
from channels.exceptions import StopConsumer

from hunts import consumers
from hunts.consumers import dispatch_loop


def source(*messages):
    queue = asyncio.Queue()
    for message in messages:
        queue.put_nowait(message)
    return queue, queue.get


async def test_messages_are_dispatched_one_at_a_time_and_in_order_per_source():
    (_, get_a), (_, get_b) = source(1, 2, 3), source("x", "y")
    running, seen, most = 0, [], 0

    async def dispatch(message):
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.001)  # a dispatch that waits: the other source must not start meanwhile
        seen.append(message)
        running -= 1
        if len(seen) == 5:
            raise StopConsumer()

    with pytest.raises(StopConsumer):
        await asyncio.wait_for(dispatch_loop([get_a, get_b], dispatch), timeout=5)
    assert most == 1
    assert [m for m in seen if isinstance(m, int)] == [1, 2, 3]
    assert [m for m in seen if isinstance(m, str)] == ["x", "y"]


async def test_an_error_ends_the_loop_nothing_is_dispatched_after_it_and_every_source_is_cancelled():
    (_, get_a), (b, get_b) = source("boom"), source()
    seen = []

    async def dispatch(message):
        seen.append(message)
        if message == "boom":
            b.put_nowait("late")  # arrives while "boom" is being dispatched
            await asyncio.sleep(0.01)
            raise ValueError("broken handler")

    with pytest.raises(ValueError, match="broken handler"):
        await asyncio.wait_for(dispatch_loop([get_a, get_b], dispatch), timeout=5)
    assert seen == ["boom"]


async def test_a_cancelled_loop_cancels_its_sources():
    (_, get_a), (_, get_b) = source(), source()
    cancelled = []

    def watched(get, name):
        async def receive():
            try:
                return await get()
            except asyncio.CancelledError:
                cancelled.append(name)
                raise

        return receive

    task = asyncio.ensure_future(dispatch_loop([watched(get_a, "a"), watched(get_b, "b")], lambda m: None))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(cancelled) == ["a", "b"]


async def test_a_cancelled_dispatch_ends_the_loop():
    (_, get_a), (_, get_b) = source("x"), source()

    async def dispatch(message):
        raise asyncio.CancelledError()  # e.g. a database hop cancelled under the handler

    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(dispatch_loop([get_a, get_b], dispatch), timeout=5)


async def test_a_backlog_lets_other_work_run_while_it_drains():
    backlog = 3 * consumers.YIELD_EVERY
    (_, get_a) = source(*range(backlog))
    ran_between, seen = [], []

    async def other():
        while len(seen) < backlog:
            ran_between.append(len(seen))
            await asyncio.sleep(0)

    async def dispatch(message):  # never suspends, as a pushed frame's send does not
        seen.append(message)
        if len(seen) == backlog:
            raise StopConsumer()

    watcher = asyncio.ensure_future(other())
    with pytest.raises(StopConsumer):
        await asyncio.wait_for(dispatch_loop([get_a], dispatch), timeout=5)
    await watcher
    assert seen == list(range(backlog))
    assert any(0 < n < backlog for n in ran_between)  # the other task ran in the middle of the backlog
