"""Admin wiring for authoring and play: answers checked by their checkers, flags refreshed, logs read-only."""

import json

import pytest
from django.apps import apps
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext

from hunts.models import Event
from puzzles.authoring import treasure_code_key
from puzzles.models import (
    Answer,
    Erratum,
    Guess,
    Hint,
    HintRequest,
    HintUnlock,
    Puzzle,
    ScoreAdjustment,
    Solve,
    Treasure,
    TreasureFind,
    Unlock,
)
from testing.admin import admin_url as url

pytestmark = pytest.mark.django_db

PUZZLES_MODELS = [m for m in apps.get_app_config("puzzles").get_models() if admin.site.is_registered(m)]


@pytest.fixture
def round_(factories, hunt):
    return factories.RoundFactory(hunt=hunt, title="The Docks")


@pytest.fixture
def team(factories, hunt):
    return factories.MembershipFactory(team__hunt=hunt, user__username="ann").team


@pytest.fixture
def play(factories, hunt, round_, team):
    """One of every play record, so each admin page has a row to show."""
    puzzle = factories.PuzzleFactory(hunt=hunt, round=round_)
    factories.AnswerFactory(puzzle=puzzle)
    hint = factories.HintFactory(puzzle=puzzle)
    treasure = factories.TreasureFactory(hunt=hunt)
    user = team.memberships.get().user
    Guess.objects.create(team=team, puzzle=puzzle, user=user, text="answer", key="answer", status="correct")
    Erratum.objects.create(puzzle=puzzle, text="Read 'east' for 'west'.")
    Solve.objects.create(team=team, puzzle=puzzle, points=10)
    Unlock.objects.create(team=team, puzzle=puzzle)
    HintUnlock.objects.create(team=team, hint=hint)
    HintRequest.objects.create(team=team, puzzle=puzzle, user=user, question="Is it a lighthouse?")
    TreasureFind.objects.create(treasure=treasure, team=team, rank=1)
    ScoreAdjustment.objects.create(team=team, points=5, reason="Bonus")
    return puzzle


def test_every_puzzles_model_is_registered():
    assert {m.__name__ for m in PUZZLES_MODELS} == {
        "Round",
        "Puzzle",
        "Treasure",
        "Guess",
        "HintRequest",
        "HintUnlock",
        "Solve",
        "Unlock",
        "TreasureFind",
        "ScoreAdjustment",
        "Erratum",
    }


@pytest.mark.parametrize("model", PUZZLES_MODELS, ids=lambda m: m.__name__)
def test_changelist_add_and_change_pages_render(admin_client, admin_user, rf, play, model):
    request = rf.get("/")
    request.user = admin_user

    assert admin_client.get(url(model, "changelist")).status_code == 200
    addable = admin.site.get_model_admin(model).has_add_permission(request)
    assert admin_client.get(url(model, "add")).status_code == (200 if addable else 403)
    assert admin_client.get(url(model, "change", model.objects.first().pk)).status_code == 200


def test_authoring_models_can_be_added_and_play_records_cannot(admin_client):
    for model in (Puzzle, Treasure):
        assert admin_client.get(url(model, "add")).status_code == 200
    for model in (Guess, Solve, Unlock, HintRequest, TreasureFind, ScoreAdjustment):
        assert admin_client.get(url(model, "add")).status_code == 403


# --- Puzzles --------------------------------------------------------------------------------


def management_form(prefix: str, *, total: int = 0, initial: int = 0) -> dict:
    return {
        f"{prefix}-TOTAL_FORMS": total,
        f"{prefix}-INITIAL_FORMS": initial,
        f"{prefix}-MIN_NUM_FORMS": 0,
        f"{prefix}-MAX_NUM_FORMS": 1000,
    }


def puzzle_data(hunt, round_, *, answers=(), hints=(), **fields) -> dict:
    """POST data of the puzzle add form: answers as (kind, parameters, final[, response]) tuples."""
    data = {
        "hunt": hunt.pk,
        "round": round_.pk,
        "title": "The Lighthouse",
        "slug": "lighthouse",
        "order": 0,
        "points": 10,
        "body": "Count the flashes.",
        "solution": "",
        **management_form("answers", total=len(answers)),
        **management_form("hints", total=len(hints)),
    }
    for i, (kind, parameters, final, *response) in enumerate(answers):
        data.update(
            {
                f"answers-{i}-kind": kind,
                f"answers-{i}-parameters": json.dumps(parameters)
                if not isinstance(parameters, str)
                else parameters,
                f"answers-{i}-response": response[0] if response else "",
                f"answers-{i}-order": i,
            }
        )
        if final:
            data[f"answers-{i}-final"] = "on"
    for i, (text, after_minutes, cost) in enumerate(hints):
        data.update(
            {
                f"hints-{i}-order": i,
                f"hints-{i}-text": text,
                f"hints-{i}-after_minutes": "" if after_minutes is None else after_minutes,
                f"hints-{i}-cost": "" if cost is None else cost,
            }
        )
    data.update(fields)
    return data


def errors_of(response) -> str:
    assert response.status_code == 200, "the form was accepted"
    return response.content.decode()


def test_adding_a_puzzle_with_a_bad_regex_shows_the_error_and_creates_nothing(admin_client, hunt, round_):
    data = puzzle_data(hunt, round_, answers=[("regex", {"pattern": "BEAM(["}, True)])

    page = errors_of(admin_client.post(url(Puzzle, "add"), data))

    assert "pattern: Invalid regular expression" in page
    assert not Puzzle.objects.exists()
    assert not Answer.objects.exists()


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"lat": 91, "lng": 2.29, "radius_m": 150}, "lat: Must be a number from -90 to 90."),
        ({"lat": 48.85, "lng": -181, "radius_m": 150}, "lng: Must be a number from -180 to 180."),
        ({"lat": 48.85, "lng": 2.29}, "radius_m: This field is required for geo answers."),
    ],
)
def test_adding_a_puzzle_with_bad_coordinates_is_refused(admin_client, hunt, round_, parameters, message):
    data = puzzle_data(hunt, round_, answers=[("geo", parameters, True)])

    assert message in errors_of(admin_client.post(url(Puzzle, "add"), data))
    assert not Puzzle.objects.exists()


@pytest.mark.parametrize(
    ("kind", "parameters", "message"),
    [
        ("riddle", {"value": "X"}, "Select a valid choice. riddle is not one of the available choices."),
        ("exact", "{not json", "Enter a valid JSON."),
        (
            "exact",
            {"value": "X", "colour": "red"},
            "colour: Unknown parameter &#x27;colour&#x27; for exact answers",
        ),
        ("numeric", {"value": "ten"}, "value: Must be a finite number."),
    ],
)
def test_answer_parameters_are_checked_by_their_kind(admin_client, hunt, round_, kind, parameters, message):
    data = puzzle_data(hunt, round_, answers=[(kind, parameters, True)])

    assert message in errors_of(admin_client.post(url(Puzzle, "add"), data))
    assert not Puzzle.objects.exists()


def test_a_puzzle_needs_a_final_answer(admin_client, hunt, round_):
    data = puzzle_data(hunt, round_, answers=[("exact", {"value": "BEAM"}, False, "Keep going")])

    assert "A puzzle needs at least one final answer" in errors_of(
        admin_client.post(url(Puzzle, "add"), data)
    )
    assert not Puzzle.objects.exists()


def test_a_valid_puzzle_saves_with_answers_hints_and_flags(admin_client, factories, hunt, round_):
    first = factories.PuzzleFactory(hunt=hunt, round=round_, slug="first")
    data = puzzle_data(
        hunt,
        round_,
        answers=[
            ("exact", {"value": "BRIGHT BEAM"}, True),
            ("regex", {"pattern": "WRECK-[0-9]{3}"}, False, "A code? Look again."),
        ],
        hints=[("Count the flashes.", 30, None), ("Morse.", None, 5)],
        prerequisites=[first.pk],
    )

    response = admin_client.post(url(Puzzle, "add"), data)

    assert response.status_code == 302, response.content.decode()
    puzzle = Puzzle.objects.get(slug="lighthouse")
    assert list(puzzle.prerequisites.all()) == [first]
    answers = list(puzzle.answers.order_by("order").values_list("kind", "parameters", "final", "response"))
    assert answers == [
        ("exact", {"value": "BRIGHT BEAM"}, True, ""),
        # Stored as the checker normalized it, defaults filled in.
        ("regex", {"pattern": "WRECK-[0-9]{3}", "case_sensitive": False}, False, "A code? Look again."),
    ]
    hints = list(puzzle.hints.values_list("order", "text", "after_minutes", "cost"))
    assert hints == [(0, "Count the flashes.", 30, None), (1, "Morse.", None, 5)]
    assert (puzzle.has_rules, puzzle.all_exact) == (True, False)


def test_editing_answers_refreshes_the_flags(admin_client, factories, hunt, round_):
    puzzle = factories.PuzzleFactory(hunt=hunt, round=round_, slug="lighthouse", unlock_after_minutes=30)
    answer = factories.AnswerFactory(puzzle=puzzle, kind="numeric", parameters={"value": 3, "tolerance": 0})
    assert (puzzle.has_rules, puzzle.all_exact) == (False, True)  # stale: set by the factory, not authoring
    data = puzzle_data(hunt, round_, unlock_after_minutes="")
    data.update(
        {
            **management_form("answers", total=1, initial=1),
            "answers-0-id": answer.pk,
            "answers-0-puzzle": puzzle.pk,
            "answers-0-kind": "exact",
            "answers-0-parameters": '{"value": "three"}',
            "answers-0-final": "on",
            "answers-0-order": 0,
        }
    )

    response = admin_client.post(url(Puzzle, "change", puzzle.pk), data)

    assert response.status_code == 302, response.content.decode()
    puzzle.refresh_from_db()
    assert (puzzle.unlock_after_minutes, puzzle.has_rules, puzzle.all_exact) == (None, False, True)


def test_a_round_of_another_hunt_is_refused(admin_client, factories, hunt, round_):
    elsewhere = factories.RoundFactory(title="Elsewhere")
    data = puzzle_data(hunt, elsewhere, answers=[("exact", {"value": "BEAM"}, True)])

    assert "Not in the hunt" in errors_of(admin_client.post(url(Puzzle, "add"), data))
    assert not Puzzle.objects.exists()


def test_a_prerequisite_of_another_hunt_is_refused(admin_client, factories, hunt, round_):
    foreign = factories.PuzzleFactory(title="Foreign")
    data = puzzle_data(hunt, round_, answers=[("exact", {"value": "BEAM"}, True)], prerequisites=[foreign.pk])

    assert "Not in the hunt" in errors_of(admin_client.post(url(Puzzle, "add"), data))
    assert not Puzzle.objects.filter(hunt=hunt).exists()


@pytest.mark.parametrize(
    ("needed", "with_prerequisite", "message"),
    [
        (2, True, "Must be from 1 to the number of prerequisites (1)."),
        (0, True, "Must be from 1 to the number of prerequisites (1)."),
        (1, False, "Only means something with prerequisites"),
    ],
)
def test_unlock_needed_must_fit_the_prerequisites(
    admin_client, factories, hunt, round_, needed, with_prerequisite, message
):
    first = factories.PuzzleFactory(hunt=hunt, round=round_, slug="first")
    data = puzzle_data(hunt, round_, answers=[("exact", {"value": "BEAM"}, True)], unlock_needed=needed)
    if with_prerequisite:
        data["prerequisites"] = [first.pk]

    assert message in errors_of(admin_client.post(url(Puzzle, "add"), data))
    assert not Puzzle.objects.filter(slug="lighthouse").exists()


def test_a_slug_taken_in_the_hunt_is_a_form_error(admin_client, factories, hunt, round_):
    factories.PuzzleFactory(hunt=hunt, round=round_, slug="lighthouse")
    data = puzzle_data(hunt, round_, answers=[("exact", {"value": "BEAM"}, True)])

    page = errors_of(admin_client.post(url(Puzzle, "add"), data))

    assert "Puzzle with this Hunt and Slug already exists." in page
    assert Puzzle.objects.filter(slug="lighthouse").count() == 1


def test_the_same_slug_in_another_hunt_is_fine(admin_client, factories, hunt, round_):
    factories.PuzzleFactory(slug="lighthouse")
    data = puzzle_data(hunt, round_, answers=[("exact", {"value": "BEAM"}, True)])

    assert admin_client.post(url(Puzzle, "add"), data).status_code == 302
    assert Puzzle.objects.filter(slug="lighthouse").count() == 2


def test_puzzle_change_page_offers_only_its_hunts_rounds_and_other_puzzles(
    admin_client, factories, hunt, round_
):
    puzzle = factories.PuzzleFactory(hunt=hunt, round=round_, title="Mine")
    sibling = factories.PuzzleFactory(hunt=hunt, round=round_, title="Sibling")
    foreign = factories.PuzzleFactory(title="Foreign")

    form = admin_client.get(url(Puzzle, "change", puzzle.pk)).context["adminform"].form

    assert list(form.fields["round"].queryset) == [round_]
    assert list(form.fields["prerequisites"].queryset) == [sibling]
    assert foreign.round not in form.fields["round"].queryset


# --- Treasures ------------------------------------------------------------------------------


def treasure_data(hunt, **fields) -> dict:
    return {
        "hunt": hunt.pk,
        "slug": "silver-coin",
        "name": "A Silver Coin",
        "order": 0,
        "teaser": "",
        "reveal": "Worth keeping.",
        "code": "Silver-Coin 77",
        "supply": "",
        "bonus": "[5]",
        "clue": "",
        **management_form("finds"),
        **fields,
    }


@pytest.mark.parametrize("bonus", ["[50, -1]", "[true]", '["50"]', "50", "[1.5]"])
def test_treasure_bonus_must_be_a_list_of_whole_numbers(admin_client, hunt, bonus):
    page = errors_of(admin_client.post(url(Treasure, "add"), treasure_data(hunt, bonus=bonus)))

    assert "Enter a list of whole numbers &gt;= 0" in page
    assert not Treasure.objects.exists()


def test_a_treasure_saves_with_its_code_key_and_required_puzzles(admin_client, factories, hunt):
    puzzle = factories.PuzzleFactory(hunt=hunt)

    response = admin_client.post(
        url(Treasure, "add"), treasure_data(hunt, bonus="[50, 30, 0]", requires=[puzzle.pk], supply=3)
    )

    assert response.status_code == 302, response.content.decode()
    treasure = Treasure.objects.get()
    assert treasure.bonus == [50, 30, 0]
    assert treasure.code_key == treasure_code_key("Silver-Coin 77")
    assert treasure.code_key
    assert list(treasure.requires.all()) == [puzzle]


def test_a_treasure_needs_required_puzzles_or_a_code(admin_client, hunt):
    page = errors_of(admin_client.post(url(Treasure, "add"), treasure_data(hunt, code="")))

    assert "A treasure needs required puzzles (solving them finds it), a code (to claim it), or both." in page
    assert not Treasure.objects.exists()


@pytest.mark.parametrize(
    ("code", "message"),
    [("--!", "Must contain at least one letter or digit."), ("silver coin 77", "Same code as the treasure")],
)
def test_a_treasure_code_must_be_readable_and_unique_in_the_hunt(
    admin_client, factories, hunt, code, message
):
    factories.TreasureFactory(hunt=hunt, code="SILVER-COIN-77", code_key=treasure_code_key("SILVER-COIN-77"))

    page = errors_of(admin_client.post(url(Treasure, "add"), treasure_data(hunt, slug="other", code=code)))

    assert message in page
    assert Treasure.objects.count() == 1


def test_a_treasure_requiring_a_puzzle_of_another_hunt_is_refused(admin_client, factories, hunt):
    foreign = factories.PuzzleFactory()

    page = errors_of(admin_client.post(url(Treasure, "add"), treasure_data(hunt, requires=[foreign.pk])))

    assert "Not in the hunt" in page
    assert not Treasure.objects.exists()


def test_treasure_supply_cannot_drop_below_the_finds(admin_client, factories, hunt, team):
    treasure = factories.TreasureFactory(hunt=hunt, supply=3, found_count=2)

    data = treasure_data(hunt, slug=treasure.slug, supply=1)
    page = errors_of(admin_client.post(url(Treasure, "change", treasure.pk), data))

    assert "2 team(s) already found this treasure" in page


# --- Guesses and hint requests --------------------------------------------------------------


def test_guesses_are_a_read_only_log(admin_client, play):
    guess = Guess.objects.get()

    assert admin_client.get(url(Guess, "add")).status_code == 403
    change = admin_client.get(url(Guess, "change", guess.pk))
    assert change.status_code == 200
    assert 'name="_save"' not in change.content.decode()
    assert admin_client.post(url(Guess, "change", guess.pk), {"text": "forged"}).status_code == 403
    assert admin_client.post(url(Guess, "delete", guess.pk), {"post": "yes"}).status_code == 403
    guess.refresh_from_db()
    assert guess.text == "answer"


def test_guess_log_filters_and_searches(admin_client, play, hunt):
    changelist = url(Guess, "changelist")

    assert admin_client.get(changelist, {"q": "answer"}).context["cl"].result_count == 1
    assert admin_client.get(changelist, {"q": "ann"}).context["cl"].result_count == 1
    assert admin_client.get(changelist, {"q": "nothing"}).context["cl"].result_count == 0
    assert admin_client.get(changelist, {"status__exact": "incorrect"}).context["cl"].result_count == 0
    assert admin_client.get(changelist, {"puzzle__hunt__id__exact": hunt.pk}).context["cl"].result_count == 1


def test_guess_log_costs_the_same_queries_for_many_rows(admin_client, factories, play, team):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(url(Guess, "changelist")).status_code == 200
        return len(captured)

    one = queries()
    for i in range(5):
        member = factories.MembershipFactory(team__hunt=team.hunt)
        puzzle = factories.PuzzleFactory(hunt=team.hunt, round=play.round)
        Guess.objects.create(team=member.team, puzzle=puzzle, user=member.user, text=f"g{i}", key=f"g{i}")

    assert queries() == one


def test_staff_answer_a_hint_request_through_the_service(admin_client, admin_user, play, team):
    hint_request = HintRequest.objects.get()

    response = admin_client.post(url(HintRequest, "change", hint_request.pk), {"answer": " Yes, look up. "})

    assert response.status_code == 302
    hint_request.refresh_from_db()
    assert (hint_request.status, hint_request.answer, hint_request.staff) == (
        "answered",
        "Yes, look up.",
        admin_user,
    )
    assert hint_request.answered_at is not None
    event = Event.objects.get(kind="hint.answered")
    assert event.team_id == team.pk
    assert event.data["request"] == {
        "id": hint_request.pk,
        "question": "Is it a lighthouse?",
        "answer": "Yes, look up.",
    }


def test_an_empty_hint_answer_shows_the_service_error(admin_client, play):
    hint_request = HintRequest.objects.get()

    page = errors_of(admin_client.post(url(HintRequest, "change", hint_request.pk), {"answer": "   "}))

    assert "Write the answer." in page
    hint_request.refresh_from_db()
    assert hint_request.status == "open"
    assert not Event.objects.filter(kind="hint.answered").exists()


def test_hint_request_question_is_read_only(admin_client, play):
    hint_request = HintRequest.objects.get()

    admin_client.post(url(HintRequest, "change", hint_request.pk), {"answer": "Yes", "question": "forged"})

    hint_request.refresh_from_db()
    assert hint_request.question == "Is it a lighthouse?"


def test_hints_are_edited_on_the_puzzle_page(admin_client, play):
    page = admin_client.get(url(Puzzle, "change", play.pk)).content.decode()

    assert 'name="hints-0-text"' in page
    assert 'name="answers-0-parameters"' in page
    assert Hint.objects.filter(puzzle=play).exists()
