"""bench.loadgen: after its last send a guess run waits for late guesses as long as they keep arriving."""

import asyncio
import json

from bench.loadgen import Conn, Fleet, Player, Progress

STALL = 1.0  # seconds with no guess done after which the rest count as undelivered
GAP = 0.2  # between late deliveries: well under STALL, so only a stalled server ends the wait


class Socket:
    def __init__(self, on_send):
        self.on_send = on_send

    async def send(self, frame):
        self.on_send(json.loads(frame)["id"])


def fleet_of_one(on_send) -> Fleet:
    fleet = Fleet("app", progress=Progress(enabled=False))
    conn = Conn(0, Player(team=1, url="ws://bench"))
    conn.ws, conn.hello_at = Socket(on_send), 0.0
    fleet.conns.append(conn)
    return fleet


def judged(fleet: Fleet, client_id: str) -> None:
    frame = {"type": "guess.judged", "data": {"guess": {"client_id": client_id}}}
    fleet.on_frame(fleet.conns[0], json.dumps(frame), asyncio.get_running_loop().time())


def frame_for(team, client_id, settled):
    return json.dumps({"type": "guess.submit", "puzzle": "p0", "answer": "x", "id": client_id})


async def test_guesses_that_keep_arriving_after_the_drain_time_count_as_delivered():
    # Six guesses, all judged after the last send, one every GAP: the last comes after 6 x GAP > STALL.
    sent, late = [], []

    async def judge_late():
        for client_id in sent:
            await asyncio.sleep(GAP)
            judged(fleet, client_id)
            late.append(client_id)

    fleet = fleet_of_one(sent.append)
    judging = None

    def start_judging(client_id):
        nonlocal judging
        sent.append(client_id)
        if len(sent) == 6:
            judging = asyncio.ensure_future(judge_late())

    fleet.conns[0].ws.on_send = start_judging
    result = await fleet.guesses(rate=1000, duration=0.006, frame_for=frame_for, drain=STALL)
    await judging

    assert len(late) == 6
    assert (result["sent"], result["delivered"], result["undelivered"]) == (6, 6, 0)
    assert result["latency_ms"]["max"] >= 6 * GAP * 1000 * 0.9  # waited past STALL for the last one
    # Throughput runs to the last delivery, not to the last send (6 in about 6 x GAP, not in 6 ms).
    assert result["delivered_per_s"] <= 6 / (5 * GAP)


async def test_a_guess_that_never_arrives_ends_the_wait_after_the_drain_time():
    sent = []
    fleet = fleet_of_one(sent.append)
    loop = asyncio.get_running_loop()
    started = loop.time()

    def judge_all_but_the_last(client_id):
        sent.append(client_id)
        if len(sent) < 3:
            loop.call_later(GAP, judged, fleet, client_id)

    fleet.conns[0].ws.on_send = judge_all_but_the_last
    result = await fleet.guesses(rate=1000, duration=0.003, frame_for=frame_for, drain=STALL)

    assert (result["sent"], result["delivered"], result["undelivered"]) == (3, 2, 1)
    assert STALL <= loop.time() - started < 10 * STALL  # not the 2 minutes a run waits at most
