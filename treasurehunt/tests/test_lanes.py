"""The stream pool's lanes (treasurehunt/lanes.py): urgent work first, each lane in order, futures kept."""

import threading
import time

import pytest

from treasurehunt import lanes
from treasurehunt.lanes import CONNECT, URGENT, Lanes

WAIT = 5


def wait_until(condition, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def blocked(pool: Lanes, lane: int = CONNECT) -> threading.Event:
    """Occupies one of the pool's threads until the returned event is set."""
    release, started = threading.Event(), threading.Event()

    def block():
        started.set()
        release.wait(WAIT)

    pool.submit(lane, block)
    assert started.wait(WAIT)
    return release


def test_a_free_thread_takes_urgent_work_before_older_connects_and_each_lane_in_order():
    pool, ran = Lanes(1), []
    release = blocked(pool)
    futures = [
        pool.submit(CONNECT, ran.append, "connect 1"),
        pool.submit(CONNECT, ran.append, "connect 2"),
        pool.submit(URGENT, ran.append, "guess 1"),
        pool.submit(URGENT, ran.append, "guess 2"),
    ]
    assert (pool.waiting(CONNECT), pool.waiting(URGENT)) == (2, 2)

    release.set()
    for future in futures:
        future.result(WAIT)

    assert ran == ["guess 1", "guess 2", "connect 1", "connect 2"]


def test_results_and_errors_reach_the_futures_and_the_thread_goes_on():
    pool = Lanes(1)

    def fail():
        raise ValueError("no such puzzle")

    failed = pool.submit(URGENT, fail)
    with pytest.raises(ValueError, match="no such puzzle"):
        failed.result(WAIT)
    assert pool.submit(CONNECT, lambda a, *, b: a + b, 2, b=3).result(WAIT) == 5


def test_threads_start_as_work_comes_up_to_the_limit_and_are_reused():
    pool = Lanes(2)
    for n in range(5):  # one at a time: one thread serves them all
        assert pool.submit(URGENT, lambda n=n: n).result(WAIT) == n
        wait_until(lambda: pool.idle == 1)  # back waiting (its result may reach us first)
    assert pool.threads == 1

    releases = [blocked(pool), blocked(pool)]
    queued = pool.submit(URGENT, lambda: "later")
    assert pool.threads == 2  # never more than max_workers: the third waits
    assert pool.waiting(URGENT) == 1
    for release in releases:
        release.set()
    assert queued.result(WAIT) == "later"
    assert pool.threads == 2


def test_work_cancelled_while_it_waits_is_skipped():
    pool, ran = Lanes(1), []
    release = blocked(pool)
    cancelled = pool.submit(URGENT, ran.append, "cancelled")
    kept = pool.submit(URGENT, ran.append, "kept")
    assert cancelled.cancel()

    release.set()
    kept.result(WAIT)

    assert ran == ["kept"]


def test_a_lane_executor_submits_to_the_process_pool_of_the_moment():
    own = Lanes(1, name="test")
    old = lanes.set_stream_pool(own)
    try:
        executor = lanes.stream_lane(CONNECT)
        assert executor.submit(threading.current_thread).result(WAIT).name == "test-1"
    finally:
        lanes.set_stream_pool(old)


def test_work_from_many_threads_at_once_all_runs_once():
    pool, submitters, per_submitter = Lanes(3), 8, 200
    futures, lock, start = [], threading.Lock(), threading.Barrier(submitters)

    def submit_many(k):
        start.wait(WAIT)
        mine = [pool.submit((k + i) % 2, lambda k=k, i=i: (k, i)) for i in range(per_submitter)]
        with lock:
            futures.extend(mine)

    threads = [threading.Thread(target=submit_many, args=(k,)) for k in range(submitters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)

    results = [future.result(WAIT) for future in futures]
    assert sorted(results) == [(k, i) for k in range(submitters) for i in range(per_submitter)]
    assert pool.threads == 3
    wait_until(lambda: pool.idle == 3)
    assert pool.waiting(URGENT) == pool.waiting(CONNECT) == 0


def test_a_thread_that_cannot_start_leaves_no_work_behind(monkeypatch):
    pool = Lanes(1)

    def refuse(self):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    with pytest.raises(RuntimeError):
        pool.submit(URGENT, print)
    assert (pool.threads, pool.waiting(URGENT)) == (0, 0)


def test_a_pool_needs_a_thread():
    with pytest.raises(ValueError):
        Lanes(0)
