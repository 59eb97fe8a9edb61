"""bench.loadgen: the load generator's collector is off through a timed run and back on after it (fix 58)."""

import gc
import json

import pytest

from bench.loadgen import Conn, Fleet, Player, Progress, collector_paused


@pytest.fixture
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_the_collector_is_off_inside_and_on_again_after_an_error(collector_on):
    with pytest.raises(RuntimeError), collector_paused():
        assert not gc.isenabled()
        raise RuntimeError
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off(collector_on):
    gc.disable()
    with collector_paused():
        pass
    assert not gc.isenabled()


def test_the_collections_before_a_run_leave_no_garbage_for_it(collector_on):
    class Cycle:
        pass

    a, b = Cycle(), Cycle()
    a.other, b.other = b, a
    del a, b
    with collector_paused():
        assert not any(type(o) is Cycle for o in gc.get_objects())


class Socket:
    def __init__(self, fleet):
        self.fleet, self.enabled = fleet, []

    async def send(self, frame):
        self.enabled.append(gc.isenabled())
        client_id = json.loads(frame)["id"]
        judged = {"type": "guess.judged", "data": {"guess": {"client_id": client_id}}}
        self.fleet.on_frame(self.fleet.conns[0], json.dumps(judged), 0.0)


async def test_guesses_and_announcements_are_timed_with_the_collector_off(collector_on):
    fleet = Fleet("app", progress=Progress(enabled=False))
    conn = Conn(0, Player(team=1, url="ws://bench"))
    conn.hello_at = 0.0
    conn.ws = Socket(fleet)
    fleet.conns.append(conn)

    def frame_for(team, client_id, settled):
        return json.dumps({"type": "guess.submit", "puzzle": "p0", "answer": "x", "id": client_id})

    result = await fleet.guesses(rate=1000, duration=0.003, frame_for=frame_for, drain=1.0)
    assert result["delivered"] == 3
    assert conn.ws.enabled == [False, False, False]
    assert gc.isenabled()

    during = []

    async def post(text):
        during.append(gc.isenabled())
        fleet.on_frame(conn, json.dumps({"type": "announcement.posted", "data": {"text": text}}), 0.0)
        return 1.0

    reached = await fleet.announcement(post, timeout=1.0)
    assert reached["reached"] == 1 and during == [False]
    assert gc.isenabled()
