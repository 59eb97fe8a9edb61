"""Structured logs: a request id on every response and log line; the guess id when a guess is judged."""

import json
import logging

import pytest
from django.db import transaction

from hunts import events
from puzzles import services
from puzzles.models import Guess
from puzzles.services import submit_guess
from treasurehunt.request_log import JsonFormatter, RequestIdFilter, request_id

pytestmark = pytest.mark.django_db


def test_every_response_carries_a_request_id_and_a_given_one_is_kept(client):
    made = client.get("/healthz")["X-Request-ID"]
    kept = client.get("/healthz", HTTP_X_REQUEST_ID="proxy-1234")["X-Request-ID"]
    replaced = client.get("/healthz", HTTP_X_REQUEST_ID="bad id\nwith newline")["X-Request-ID"]

    assert len(made) == 32 and made != client.get("/healthz")["X-Request-ID"]
    assert kept == "proxy-1234"
    assert replaced != "bad id\nwith newline" and len(replaced) == 32


def test_the_request_line_is_logged_with_its_id(client, caplog):
    with caplog.at_level(logging.INFO, logger="treasurehunt.requests"):
        client.get("/healthz", HTTP_X_REQUEST_ID="req-42")

    record = next(r for r in caplog.records if r.name == "treasurehunt.requests")
    assert (record.method, record.path, record.status) == ("GET", "/healthz", 200)
    RequestIdFilter().filter(record)  # outside the request: the id is gone again
    assert record.request_id == "-"


def test_a_judged_guess_is_one_json_line_with_its_guess_id_and_request_id(
    factories, caplog, django_capture_on_commit_callbacks
):
    puzzle = factories.PuzzleFactory(slug="lighthouse")
    factories.AnswerFactory(puzzle=puzzle, parameters={"value": "BEAM"})
    member = factories.MembershipFactory(team__hunt=puzzle.hunt)
    token = request_id.set("req-7")
    try:
        # Logged once the guess is committed.
        with (
            caplog.at_level(logging.INFO, logger="puzzles.services"),
            django_capture_on_commit_callbacks(execute=True),
        ):
            guess, _ = submit_guess(team=member.team, user=member.user, puzzle_slug="lighthouse", text="beam")
        [record] = [r for r in caplog.records if r.name == "puzzles.services"]
        RequestIdFilter().filter(record)
    finally:
        request_id.reset(token)

    line = json.loads(JsonFormatter().format(record))
    assert (line["guess_id"], line["status"], line["request_id"]) == (guess.pk, "correct", "req-7")
    assert line["level"] == "INFO" and line["message"].startswith(f"guess {guess.pk} judged correct")


def test_a_verdict_rolled_back_with_its_guess_is_never_logged(
    factories, caplog, django_capture_on_commit_callbacks
):
    puzzle = factories.PuzzleFactory(slug="lighthouse")
    factories.AnswerFactory(puzzle=puzzle, parameters={"value": "BEAM"})
    member = factories.MembershipFactory(team__hunt=puzzle.hunt)
    with caplog.at_level(logging.INFO, logger="puzzles.services"):
        with (
            django_capture_on_commit_callbacks(execute=True),
            pytest.raises(RuntimeError),
            transaction.atomic(),
        ):
            submit_guess(team=member.team, user=member.user, puzzle_slug="lighthouse", text="beam")
            raise RuntimeError("the transaction fails after the verdict")
        submit_guess(team=member.team, user=member.user, puzzle_slug="lighthouse", text="lamp")  # uncommitted
    assert not Guess.objects.filter(text="beam").exists()
    assert not [record for record in caplog.records if record.name == "puzzles.services"]


def test_the_verdicts_line_is_written_once_after_its_push(
    factories, monkeypatch, django_capture_on_commit_callbacks
):
    puzzle = factories.PuzzleFactory(slug="lighthouse")
    factories.AnswerFactory(puzzle=puzzle, parameters={"value": "BEAM"})
    member = factories.MembershipFactory(team__hunt=puzzle.hunt)
    done = []
    monkeypatch.setattr(events, "publish", lambda *args, **kwargs: done.append("push"))
    monkeypatch.setattr(services.log, "info", lambda *args, **kwargs: done.append("log"))
    with django_capture_on_commit_callbacks(execute=True):
        submit_guess(team=member.team, user=member.user, puzzle_slug="lighthouse", text="lamp")
        assert done == []  # nothing before the commit
    assert done == ["push", "log"]


def test_a_verdict_of_the_judge_is_logged_once_on_commit(
    factories, caplog, django_capture_on_commit_callbacks
):
    puzzle = factories.PuzzleFactory(slug="wreck", all_exact=False)
    factories.AnswerFactory(puzzle=puzzle, kind="regex", parameters={"pattern": "WRECK-[0-9]{3}"})
    member = factories.MembershipFactory(team__hunt=puzzle.hunt)
    guess, _ = submit_guess(team=member.team, user=member.user, puzzle_slug="wreck", text="wreck-042")
    assert guess.status == Guess.Status.PENDING
    with caplog.at_level(logging.INFO, logger="puzzles.services"):
        with django_capture_on_commit_callbacks(execute=True):
            services.judge_guess(guess_id=guess.pk)
            assert not caplog.records  # judged, not yet committed
        with django_capture_on_commit_callbacks(execute=True):
            services.judge_guess(guess_id=guess.pk)  # judged already: changes nothing, logs nothing
    [record] = [r for r in caplog.records if r.name == "puzzles.services"]
    assert (record.guess_id, record.status) == (guess.pk, "correct")
