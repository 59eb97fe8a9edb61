"""bench.loadgen: a team's correct answer waits until the team's earlier guesses have their answers."""

import json

from bench.loadgen import Conn, Fleet, GuessMaker, Player, Progress

HUNT = {"puzzles": ["p0", "p1", "p2"], "judged_puzzles": [], "partials": 0}


def test_a_correct_answer_goes_out_only_once_the_team_is_settled():
    make = GuessMaker(HUNT, mix={"correct": 1.0})

    held = json.loads(make(7, "a", False))
    sent = json.loads(make(7, "b", True))
    after = json.loads(make(7, "c", True))

    assert held["puzzle"] == "p0" and held["answer"].startswith("wrong")
    assert (sent["puzzle"], sent["answer"]) == ("p0", "ANSWER 0")
    assert (after["puzzle"], after["answer"]) == ("p1", "ANSWER 1")
    assert make.held_back == 1
    assert make.kinds_sent == {"wrong": 1, "correct": 2}


class Socket:
    def __init__(self, fleet: Fleet):
        self.fleet = fleet

    async def send(self, frame):
        self.fleet.sent += 1
        self.fleet.on_sent(self.fleet.sent)


def team_of(fleet: Fleet, team: int, members: int) -> list[Conn]:
    conns = []
    for _ in range(members):
        conn = Conn(len(fleet.conns), Player(team=team, url="ws://bench"))
        conn.ws, conn.hello_at = Socket(fleet), 0.0
        fleet.conns.append(conn)
        conns.append(conn)
    return conns


async def test_the_fleet_tells_whether_every_earlier_guess_of_the_team_has_its_answer():
    fleet = Fleet("app", progress=Progress(enabled=False))
    team_of(fleet, 1, 2)
    told = []

    def answer(n: int, frame: dict) -> None:
        client_id = list(fleet.flights)[n - 1]
        fleet.on_frame(fleet.conns[0], json.dumps({**frame, "id": client_id}), 0.0)

    def on_sent(n: int) -> None:
        if n == 2:  # once the 2nd is out, the 1st is accepted
            answer(1, {"type": "guess.accepted", "created": True})
        if n == 3:  # once the 3rd is out, the 2nd is refused and the 3rd accepted
            answer(2, {"type": "error", "code": "invalid", "message": "Already solved"})
            answer(3, {"type": "guess.accepted", "created": True})

    def frame_for(team, client_id, settled):
        told.append(settled)
        return json.dumps({"type": "guess.submit", "puzzle": "p0", "answer": "x", "id": client_id})

    fleet.sent, fleet.on_sent = 0, on_sent
    await fleet.guesses(rate=1000, duration=0.004, frame_for=frame_for, drain=0)

    # 1st: nothing before it; 2nd: the 1st unanswered; 3rd: the 2nd unanswered; 4th: all answered.
    assert told == [True, False, False, True]


async def test_a_guess_unanswered_for_a_minute_no_longer_holds_its_team_back():
    fleet = Fleet("app", progress=Progress(enabled=False))
    team_of(fleet, 1, 2)
    told = []

    def on_sent(n: int) -> None:
        if n == 1:  # the 1st is lost (its socket closed, say): as if sent a minute ago and never answered
            next(iter(fleet.flights.values())).sent_at -= 61

    def frame_for(team, client_id, settled):
        told.append(settled)
        return json.dumps({"type": "guess.submit", "puzzle": "p0", "answer": "x", "id": client_id})

    fleet.sent, fleet.on_sent = 0, on_sent
    await fleet.guesses(rate=1000, duration=0.003, frame_for=frame_for, drain=0)

    assert told == [True, True, False]  # the 2nd does not wait for the lost 1st; the 3rd waits for the 2nd


def test_the_report_says_how_many_correct_answers_were_held_back_and_only_when_some_were():
    from bench import run
    from bench.tests.test_cpu_split import load, result_with

    result = result_with({"guesses app": load(daphne=11.8), "guesses bare": load(daphne=2.4)})
    result["figures"] = run.figures(result)
    assert "held back" not in run.markdown(result)

    result["scenarios"]["guesses"]["app"]["fixed"]["corrects_held_back"] = 226
    assert (
        "Correct answers held back in the fixed-rate run until the team's earlier guesses had their answers "
        "(a wrong one sent instead): 226 of 4000 guesses."
    ) in run.markdown(result)
