"""Hunt files: validation with positions, upsert that keeps progress, and byte-exact round trips."""

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hunts.models import Hunt
from puzzles.authoring import (
    HuntFileError,
    dump_hunt,
    dump_spec,
    hunt_to_spec,
    load_hunt_file,
    parse_hunt_file,
    refresh_puzzle_flags,
    treasure_code_key,
)
from puzzles.models import Answer, Guess, Hint, HintUnlock, Puzzle, Round, Solve, Treasure, TreasureFind

DEMO = Path(__file__).resolve().parents[1] / "fixtures" / "demo.yaml"

# Line numbers matter: the error tests below point into this text.
TINY = """\
slug: tiny
title: Tiny Hunt
starts_at: 2026-12-01T18:00:00Z
ends_at: 2026-12-02T18:00:00Z
rounds:
  - title: First
    puzzles:
      - slug: one
        title: One
        answers:
          - {kind: exact, value: ONE}
      - slug: two
        title: Two
        unlock: {prerequisites: [one]}
        answers:
          - kind: regex
            pattern: "T(W)O"
        hints:
          - {text: "First hint", cost: 5}
          - {text: "Second hint", after_minutes: 10}
treasures:
  - slug: coin
    name: Coin
    code: COIN
"""

TINY_SPEC = parse_hunt_file(TINY, "tiny.yaml")


def demo_text() -> str:
    return DEMO.read_text(encoding="utf-8")


def problems(text: str) -> list[str]:
    with pytest.raises(HuntFileError) as exc:
        parse_hunt_file(text, "tiny.yaml")
    return exc.value.messages


def edit(old: str, new: str, text: str = TINY) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def snapshot(hunt: Hunt) -> dict[str, list]:
    """Every authored row's id and content, to show that an operation changed nothing."""
    return {
        "hunt": list(Hunt.objects.filter(pk=hunt.pk).values()),
        "rounds": list(Round.objects.filter(hunt=hunt).order_by("pk").values()),
        "puzzles": list(Puzzle.objects.filter(hunt=hunt).order_by("pk").values()),
        "answers": list(Answer.objects.filter(puzzle__hunt=hunt).order_by("pk").values()),
        "hints": list(Hint.objects.filter(puzzle__hunt=hunt).order_by("pk").values()),
        "treasures": list(Treasure.objects.filter(hunt=hunt).order_by("pk").values()),
    }


# --- round trips ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_demo_export_reimports_without_changing_anything():
    hunt = load_hunt_file(demo_text(), "demo.yaml")
    exported = dump_hunt(hunt)
    before = snapshot(hunt)

    again = load_hunt_file(exported, "export.yaml")

    assert again.pk == hunt.pk
    assert snapshot(hunt) == before
    assert dump_hunt(hunt) == exported
    assert parse_hunt_file(exported, "export.yaml") == parse_hunt_file(demo_text(), "demo.yaml")


@pytest.mark.django_db
def test_export_of_an_admin_made_hunt_is_a_fixed_point(factories):
    hunt = factories.HuntFactory(starts_at=datetime(2026, 5, 1, 9, 30, 15, 123456, tzinfo=UTC))
    second = factories.RoundFactory(hunt=hunt, title="Second", order=5)
    first = factories.RoundFactory(hunt=hunt, title="First", order=1)
    late = factories.PuzzleFactory(hunt=hunt, round=second, unlock_solves=2, unlock_needed=1)
    early = factories.PuzzleFactory(hunt=hunt, round=first)
    other = factories.PuzzleFactory(hunt=hunt, round=first, order=3)
    late.prerequisites.set([other, early])
    for puzzle in (late, early, other):
        # Stored the way an older admin might have: parameters out of order, defaults missing.
        factories.AnswerFactory(puzzle=puzzle, kind="numeric", parameters={"tolerance": 0.5, "value": -3})
        refresh_puzzle_flags(puzzle)
    factories.HintFactory(puzzle=early, order=7, text="later\n  indented\ttab")
    factories.HintFactory(puzzle=early, order=3, text="first", cost=2)
    factories.TreasureFactory(hunt=hunt, code="Gold 1", supply=1, bonus=[9])

    exported = dump_hunt(hunt)
    load_hunt_file(exported, "export.yaml")

    assert dump_hunt(hunt) == exported
    assert "starts_at: 2026-05-01T09:30:15Z\n" in exported
    assert '{kind: "numeric", value: -3, tolerance: 0.5, final: true, response: ""}' in exported
    assert f'prerequisites: ["{early.slug}", "{other.slug}"], needed: 1' in exported
    assert [h.text for h in early.hints.order_by("order")] == ["first", "later\n  indented\ttab"]


text_values = st.text(st.characters(exclude_categories=("Cs",)), max_size=80) | st.text(
    " \n\t\r\"'\\#:-{}[]\u2028\x85\ufeff\xa0é", max_size=40
)


@settings(max_examples=60)
@given(body=text_values, solution=text_values, hint=text_values, title=text_values)
def test_any_strings_survive_export_and_import_exactly(body, solution, hint, title):
    spec = TINY_SPEC
    puzzle = spec.rounds[0].puzzles[1]
    puzzle = dataclasses.replace(
        puzzle,
        title="T" + title,
        body=body,
        solution=solution,
        hints=(dataclasses.replace(puzzle.hints[0], text="H" + hint),),
    )
    spec = dataclasses.replace(
        spec,
        intro=body,
        rounds=(dataclasses.replace(spec.rounds[0], puzzles=(spec.rounds[0].puzzles[0], puzzle)),),
    )

    exported = dump_spec(spec)
    parsed = parse_hunt_file(exported, "x.yaml")

    assert parsed == spec
    assert dump_spec(parsed) == exported


def test_export_writes_keys_in_the_documented_order_with_defaults():
    exported = dump_spec(parse_hunt_file(TINY, "tiny.yaml"))

    assert exported.startswith(
        'slug: "tiny"\ntitle: "Tiny Hunt"\nintro: ""\nstarts_at: 2026-12-01T18:00:00Z\n'
        "ends_at: 2026-12-02T18:00:00Z\npublished: true\nmax_team_size: 4\n"
        "guess_limit: {guesses: 20, minutes: 10}\nrounds:\n"
    )
    assert (
        '      - slug: "two"\n        title: "Two"\n        points: 10\n        meta: false\n'
        '        body: ""\n        solution: ""\n        unlock: {prerequisites: ["one"]}\n'
        '        answers:\n          - {kind: "regex", pattern: "T(W)O", case_sensitive: false, final: true, '
        'response: ""}\n        hints:\n          - {text: "First hint", cost: 5}\n'
    ) in exported
    assert exported.endswith(
        'treasures:\n  - slug: "coin"\n    name: "Coin"\n    teaser: ""\n    reveal: ""\n    code: "COIN"\n'
        '    supply: null\n    bonus: []\n    clue: ""\n    clue_at: null\n'
    )
    assert "unlock" not in exported.split('slug: "two"')[0]  # a puzzle without rules has no unlock key


def test_times_may_be_quoted_strings_with_any_offset():
    text = edit("ends_at: 2026-12-02T18:00:00Z", 'ends_at: "2026-12-02T20:00:00+02:00"')

    assert parse_hunt_file(text, "tiny.yaml").ends_at == datetime(2026, 12, 2, 18, 0, tzinfo=UTC)


# --- validation messages ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'pattern: "T(W)O"',
            'pattern: "T(WO"',
            "tiny.yaml:17:22: rounds[0].puzzles[1].answers[0].pattern: Invalid regular expression: ",
        ),
        (
            "{kind: exact, value: ONE}",
            "{kind: geo, lat: 123, lng: 0, radius_m: 10}",
            "tiny.yaml:11:30: rounds[0].puzzles[0].answers[0].lat: Must be a number from -90 to 90.",
        ),
        (
            "        title: One",
            "        title: NO",
            "tiny.yaml:9:16: rounds[0].puzzles[0].title: "
            'expected a string, got boolean false; quote it: "NO"',
        ),
        ("slug: tiny", "slug: 010", 'tiny.yaml:1:7: slug: expected a string, got integer 8; quote it: "010"'),
        ("        title: Two\n", "", "tiny.yaml:12:9: rounds[0].puzzles[1].title: this field is required"),
        (
            "        title: Two",
            "        titel: Two",
            "tiny.yaml:13:9: rounds[0].puzzles[1].titel: unknown key 'titel'; did you mean 'title'? "
            "allowed: slug, title, answers, points, meta, body, solution, unlock, hints",
        ),
        (
            "[one]",
            "[uno]",
            "tiny.yaml:14:34: rounds[0].puzzles[1].unlock.prerequisites[0]: unknown puzzle 'uno'; "
            "name a puzzle slug from this file",
        ),
        (
            "{kind: exact, value: ONE}",
            "{kind: exact, value: ONE, final: false}",
            "tiny.yaml:11:11: rounds[0].puzzles[0].answers: needs at least one final answer (final: true)",
        ),
        (
            "ends_at: 2026-12-02T18:00:00Z",
            "ends_at: tomorrow",
            "tiny.yaml:4:10: ends_at: 'tomorrow' is not an ISO 8601 time; write it like 2026-12-01T18:00:00Z",
        ),
        (
            "ends_at: 2026-12-02T18:00:00Z",
            "ends_at: 2026-12-02T18:00:00",
            "tiny.yaml:4:10: ends_at: needs a timezone: add Z for UTC, like 2026-12-01T18:00:00Z",
        ),
        (
            "ends_at: 2026-12-02T18",
            "ends_at: 2026-11-30T18",
            "tiny.yaml:4:10: ends_at: must be after starts_at",
        ),
        (
            "      - slug: two",
            "      - slug: one",
            "tiny.yaml:12:15: rounds[0].puzzles[1].slug: duplicate slug 'one' (first used on line 8)",
        ),
        (
            "      - slug: two",
            "      - slug: Two_2",
            "tiny.yaml:12:15: rounds[0].puzzles[1].slug: 'Two_2' is not a slug: use lowercase letters, "
            "digits and hyphens",
        ),
        (
            "{prerequisites: [one]}",
            "{prerequisites: [one], needed: 2}",
            "tiny.yaml:14:48: rounds[0].puzzles[1].unlock.needed: is 2 but there are only 1 prerequisites",
        ),
        (
            "    code: COIN\n",
            "",
            "tiny.yaml:22:5: treasures[0]: needs requires (puzzles whose solving finds it) "
            "or code (to claim it), or both",
        ),
        (
            "    code: COIN",
            "    code: COIN\n    bonus: [50, -1]",
            "tiny.yaml:25:17: treasures[0].bonus[1]: must be at least 0, got -1",
        ),
        (
            '{text: "First hint", cost: 5}',
            '{text: "First hint", cost: "5"}',
            "tiny.yaml:19:40: rounds[0].puzzles[1].hints[0].cost: "
            'expected a whole number or null, got string "5"',
        ),
        ("title: Tiny Hunt", "title: [Tiny", "tiny.yaml:3:10: (file): invalid YAML: "),
    ],
)
def test_each_problem_is_reported_at_its_line_column_and_path(old, new, expected):
    messages = problems(edit(old, new))

    assert any(m.startswith(expected) for m in messages), messages


def test_every_problem_is_reported_at_once_in_file_order():
    text = edit("        title: One", "        title: NO", edit("slug: tiny", "slug: 010"))

    messages = problems(text)

    assert [m.split(":")[1] for m in messages] == ["1", "9"]


def test_unknown_answer_parameters_and_kinds_are_reported_on_the_answer():
    text = edit("{kind: exact, value: ONE}", "{kind: exakt, value: ONE}")
    assert problems(text) == [
        "tiny.yaml:11:20: rounds[0].puzzles[0].answers[0].kind: Unknown answer kind 'exakt'; "
        "use one of exact, regex, numeric, set, geo."
    ]


@pytest.mark.django_db
def test_a_file_with_errors_changes_nothing():
    hunt = load_hunt_file(TINY, "tiny.yaml")
    before = snapshot(hunt)

    with pytest.raises(HuntFileError):
        load_hunt_file(edit("title: Tiny Hunt", "title: Renamed").replace("T(W)O", "T(WO"), "tiny.yaml")

    assert snapshot(hunt) == before


# --- upsert ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_reimport_keeps_ids_and_team_progress(factories):
    hunt = load_hunt_file(demo_text(), "demo.yaml")
    puzzle = hunt.puzzles.get(slug="chalkboard")
    treasure = hunt.treasures.get(slug="spyglass")
    team = factories.TeamFactory(hunt=hunt)
    Guess.objects.create(team=team, puzzle=puzzle, text="lantern", key="lantern", status="correct")
    solve = Solve.objects.create(team=team, puzzle=puzzle, points=10)
    find = TreasureFind.objects.create(treasure=treasure, team=team, rank=1, points=50)

    renamed = edit("title: The Fishmonger's Chalkboard", "title: Jory's Chalkboard", demo_text())
    load_hunt_file(edit("name: The Keeper's Spyglass", "name: The Brass Spyglass", renamed), "demo.yaml")

    puzzle.refresh_from_db()
    assert puzzle.title == "Jory's Chalkboard"
    assert hunt.puzzles.get(slug="chalkboard").pk == puzzle.pk
    assert Solve.objects.get(pk=solve.pk).puzzle_id == puzzle.pk
    assert Guess.objects.filter(puzzle=puzzle).count() == 1
    assert TreasureFind.objects.get(pk=find.pk).treasure.name == "The Brass Spyglass"


@pytest.mark.django_db
def test_hints_are_updated_in_place_by_position(factories):
    hunt = load_hunt_file(TINY, "tiny.yaml")
    first, second = hunt.puzzles.get(slug="two").hints.order_by("order")
    bought = HintUnlock.objects.create(team=factories.TeamFactory(hunt=hunt), hint=first, cost=5)

    text = edit('{text: "First hint", cost: 5}', '{text: "Clearer first hint", cost: 3}')
    load_hunt_file(edit('          - {text: "Second hint", after_minutes: 10}\n', "", text), "tiny.yaml")

    first.refresh_from_db()
    assert (first.text, first.cost, first.order) == ("Clearer first hint", 3, 0)
    assert HintUnlock.objects.get(pk=bought.pk).hint_id == first.pk
    assert not Hint.objects.filter(pk=second.pk).exists()


@pytest.mark.django_db
def test_removing_a_bought_hint_is_refused(factories):
    hunt = load_hunt_file(TINY, "tiny.yaml")
    first = hunt.puzzles.get(slug="two").hints.get(order=0)
    HintUnlock.objects.create(team=factories.TeamFactory(hunt=hunt), hint=first, cost=5)

    with pytest.raises(HuntFileError) as exc:
        load_hunt_file(
            edit("        hints:\n", "        hints: []\n").split("          - {text")[0], "tiny.yaml"
        )

    assert exc.value.messages == [
        "tiny.yaml:18:9: rounds[0].puzzles[1].hints: hint 1 was bought by a team: keep at least 1 hints "
        "(their text may change)"
    ]


@pytest.mark.django_db
def test_removing_a_puzzle_with_guesses_is_refused_and_nothing_changes(factories):
    hunt = load_hunt_file(TINY, "tiny.yaml")
    puzzle = hunt.puzzles.get(slug="one")
    Guess.objects.create(team=factories.TeamFactory(hunt=hunt), puzzle=puzzle, text="x", key="x")
    before = snapshot(hunt)
    without_one = edit(
        "      - slug: one\n        title: One\n        answers:\n          - {kind: exact, value: ONE}\n", ""
    )
    without_one = edit("unlock: {prerequisites: [one]}", "unlock: {solves: 1}", without_one)

    with pytest.raises(HuntFileError) as exc:
        load_hunt_file(edit("title: Tiny Hunt", "title: Renamed", without_one), "tiny.yaml")

    assert exc.value.messages == [
        "tiny.yaml:5:1: rounds: puzzle 'one' is missing, but teams have guessed at it; put it back in a round"
    ]
    assert snapshot(hunt) == before


@pytest.mark.django_db
def test_absent_rounds_puzzles_and_treasures_are_deleted_and_moved_puzzles_keep_their_id():
    hunt = load_hunt_file(TINY, "tiny.yaml")
    two = hunt.puzzles.get(slug="two")
    text = edit(
        "  - title: First\n    puzzles:\n      - slug: one\n        title: One\n",
        "  - title: Second\n    puzzles:\n      - slug: three\n        title: Three\n",
    )
    text = edit("unlock: {prerequisites: [one]}", "unlock: {prerequisites: [three]}", text)
    text = text.split("treasures:")[0]

    load_hunt_file(text, "tiny.yaml")

    assert list(hunt.rounds.values_list("title", flat=True)) == ["Second"]
    assert list(hunt.puzzles.order_by("order").values_list("slug", flat=True)) == ["three", "two"]
    assert hunt.puzzles.get(slug="two").pk == two.pk
    assert not hunt.treasures.exists()


@pytest.mark.django_db
def test_lowering_a_supply_below_the_finds_is_refused(factories):
    hunt = load_hunt_file(TINY, "tiny.yaml")
    coin = hunt.treasures.get()
    TreasureFind.objects.create(treasure=coin, team=factories.TeamFactory(hunt=hunt), rank=1)
    Treasure.objects.filter(pk=coin.pk).update(found_count=1)

    with pytest.raises(HuntFileError) as exc:
        load_hunt_file(edit("    code: COIN", "    code: COIN\n    supply: 0"), "tiny.yaml")

    assert exc.value.messages == [
        "tiny.yaml:25:13: treasures[0].supply: is 0, but 1 team(s) already found it"
    ]


@pytest.mark.django_db
def test_import_keeps_the_denormalized_flags_in_step():
    hunt = load_hunt_file(demo_text(), "demo.yaml")
    flags = {p.slug: (p.has_rules, p.all_exact) for p in hunt.puzzles.all()}

    assert flags["chalkboard"] == (False, True)
    assert flags["harbourmaster"] == (False, False)
    assert flags["morse"] == (True, False)
    assert flags["where-is-maud"] == (True, False)
    assert flags["bookshelf"] == (True, True)
    assert (
        hunt.treasures.get(slug="sixpence").code_key
        == treasure_code_key("Lucky sixpence!")
        == "luckysixpence"
    )
    assert treasure_code_key("") == ""


@pytest.mark.django_db
def test_demo_starts_open_and_later_puzzles_have_rules():
    spec = hunt_to_spec(load_hunt_file(demo_text(), "demo.yaml"))

    first, second = spec.rounds
    assert not any(p.unlock.has_rules for p in first.puzzles)
    assert all(p.unlock.has_rules for p in second.puzzles)
    assert {a.kind for p in spec.puzzles() for a in p.answers} == {"exact", "regex", "numeric", "set", "geo"}
    assert spec.ends_at - spec.starts_at == timedelta(hours=48)


@pytest.mark.django_db
def test_a_clue_corrected_after_it_went_out_goes_out_again():
    from hunts.models import Event
    from puzzles.services import release_due

    running = edit("ends_at: 2026-12-03T18:00:00Z", "ends_at: 2099-12-03T18:00:00Z", demo_text())
    hunt = load_hunt_file(running, "demo.yaml")
    at = hunt.treasures.get(slug="spyglass").clue_at
    sent = Event.objects.filter(hunt=hunt, kind="treasure.clue").order_by("seq")
    clues = lambda: list(sent.values_list("data__clue", flat=True))  # noqa: E731

    def release(minutes: int) -> None:
        release_due(hunt=Hunt.objects.get(pk=hunt.pk), now=at + timedelta(minutes=minutes))

    release(0)
    first = clues()
    assert first == [hunt.treasures.get(slug="spyglass").clue]
    assert first[0].endswith("then time the fog gun.")

    load_hunt_file(running, "demo.yaml")  # unchanged: the clue that went out stays out
    moved = edit("clue_at: 2026-12-01T21:00:00Z", "clue_at: 2026-12-02T09:00:00Z", running)
    load_hunt_file(moved, "demo.yaml")  # a new time for a clue already out: it is out
    load_hunt_file(edit("fog gun.", "fog   gun. ", moved), "demo.yaml")  # spaces alone: the same clue
    release(1)
    assert clues() == first
    assert hunt.treasures.get(slug="spyglass").clue_released

    load_hunt_file(edit("fog gun.", "fog horn.", running), "demo.yaml")
    assert not hunt.treasures.get(slug="spyglass").clue_released
    release(2)

    assert clues() == [*first, first[0].replace("fog gun", "fog horn")]
    assert hunt.treasures.get(slug="spyglass").clue_released
