"""Treasures: claims on solve and by code, exact ranks and bonuses, supply, events and clues."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from hunts.errors import Conflict
from hunts.models import Event, Team
from puzzles.models import Solve, TreasureFind
from puzzles.normalize import exact_key
from puzzles.services import claim_treasure, claim_treasure_by_code, release_due, submit_guess

pytestmark = pytest.mark.django_db


@pytest.fixture
def hunt(factories):
    return factories.HuntFactory()


@pytest.fixture
def team(factories, hunt):
    return factories.MembershipFactory(team__hunt=hunt, team__name="Finders", team__slug="finders").team


@pytest.fixture
def make_team(factories, hunt):
    return lambda: factories.MembershipFactory(team__hunt=hunt).team


@pytest.fixture
def puzzles(factories, hunt):
    made = []
    for slug in ("lighthouse", "wreck"):
        puzzle = factories.PuzzleFactory(hunt=hunt, slug=slug)
        factories.AnswerFactory(puzzle=puzzle, parameters={"value": slug})
        made.append(puzzle)
    return made


@pytest.fixture
def golden_key(factories, hunt, puzzles):
    treasure = factories.TreasureFactory(
        hunt=hunt,
        slug="golden-key",
        name="The Golden Key",
        reveal="It opens the chest.",
        supply=3,
        bonus=[50, 30, 10],
    )
    treasure.requires.set(puzzles)
    return treasure


@pytest.fixture
def coin(factories, hunt):
    return factories.TreasureFactory(
        hunt=hunt,
        slug="silver-coin",
        name="A Silver Coin",
        reveal="Worth keeping.",
        code="SILVER-COIN-77",
        code_key=exact_key("SILVER-COIN-77"),
        bonus=[5],
    )


def solve(team, slug):
    guess, _ = submit_guess(team=team, user=None, puzzle_slug=slug, text=slug)
    assert guess.status == "correct"


def test_solving_every_required_puzzle_claims_the_treasure_on_commit(
    django_capture_on_commit_callbacks, golden_key, team
):
    with django_capture_on_commit_callbacks(execute=True):
        solve(team, "lighthouse")
    assert not TreasureFind.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        solve(team, "wreck")
        assert not TreasureFind.objects.exists()

    find = TreasureFind.objects.get()
    assert (find.treasure, find.team, find.rank, find.points) == (golden_key, team, 1, 50)
    team.refresh_from_db()
    assert team.score == 10 + 10 + 50
    assert team.last_scored_at == find.found_at


def test_code_treasures_are_not_claimed_by_solving(django_capture_on_commit_callbacks, coin, puzzles, team):
    coin.requires.set(puzzles)

    with django_capture_on_commit_callbacks(execute=True):
        solve(team, "lighthouse")
        solve(team, "wreck")

    assert not TreasureFind.objects.exists()


def test_ranks_are_exact_and_bonuses_follow_them(factories, hunt, make_team):
    treasure = factories.TreasureFactory(hunt=hunt, bonus=[50, 30])
    teams = [make_team() for _ in range(3)]

    finds = [claim_treasure(team=t, treasure=treasure)[0] for t in teams]

    assert [(f.team, f.rank, f.points) for f in finds] == [
        (teams[0], 1, 50),
        (teams[1], 2, 30),
        (teams[2], 3, 0),
    ]
    assert [Team.objects.get(pk=t.pk).score for t in teams] == [50, 30, 0]
    # A find worth nothing is no score increase.
    assert Team.objects.get(pk=teams[2].pk).last_scored_at is None


def test_supply_is_never_exceeded(factories, hunt, make_team):
    treasure = factories.TreasureFactory(hunt=hunt, name="Crown", supply=2, bonus=[5, 5])
    first, second, third = make_team(), make_team(), make_team()
    claim_treasure(team=first, treasure=treasure)
    claim_treasure(team=second, treasure=treasure)

    with pytest.raises(Conflict, match="No Crown left"):
        claim_treasure(team=third, treasure=treasure)

    treasure.refresh_from_db()
    assert treasure.found_count == 2 and treasure.remaining == 0
    assert TreasureFind.objects.count() == 2
    assert Team.objects.get(pk=third.pk).score == 0


def test_claiming_twice_returns_the_first_find(factories, hunt, team):
    treasure = factories.TreasureFactory(hunt=hunt, bonus=[50])
    find, created = claim_treasure(team=team, treasure=treasure)

    again, again_created = claim_treasure(team=team, treasure=treasure)

    assert created and not again_created and again.pk == find.pk
    assert Team.objects.get(pk=team.pk).score == 50
    assert Event.objects.filter(kind="treasure.found").count() == 1


def test_finder_gets_the_reveal_and_everyone_gets_the_claim_without_it(golden_key, team):
    claim_treasure(team=team, treasure=golden_key)

    found = Event.objects.get(kind="treasure.found")
    assert found.team == team
    assert found.data == {
        "treasure": {"slug": "golden-key", "name": "The Golden Key", "reveal": "It opens the chest."},
        "rank": 1,
        "points": 50,
    }
    claimed = Event.objects.get(kind="treasure.claimed")
    assert claimed.team is None and claimed.hunt == golden_key.hunt
    assert claimed.data == {
        "treasure": {"slug": "golden-key", "name": "The Golden Key"},
        "team": {"slug": "finders", "name": "Finders"},
        "rank": 1,
        "remaining": 2,
    }


def test_unlimited_treasure_claims_have_no_remaining(coin, team):
    claim_treasure(team=team, treasure=coin)

    assert Event.objects.get(kind="treasure.claimed").data["remaining"] is None


def test_code_claim_reads_the_code_like_an_exact_answer(coin, team):
    find, created = claim_treasure_by_code(team=team, code="  silver coin 77 ")

    assert created and (find.treasure, find.rank, find.points) == (coin, 1, 5)


def test_wrong_code_is_a_validation_error(coin, team):
    with pytest.raises(ValidationError):
        claim_treasure_by_code(team=team, code="GOLD-COIN")
    with pytest.raises(ValidationError):
        claim_treasure_by_code(team=team, code=" -- ")


def test_code_of_another_hunts_treasure_is_wrong(factories, team):
    factories.TreasureFactory(code="ELSEWHERE", code_key="elsewhere")

    with pytest.raises(ValidationError):
        claim_treasure_by_code(team=team, code="elsewhere")


def test_code_claim_needs_the_required_puzzles_solved(coin, puzzles, team):
    coin.requires.set(puzzles)
    solve(team, "lighthouse")

    with pytest.raises(PermissionDenied):
        claim_treasure_by_code(team=team, code="SILVER-COIN-77")

    solve(team, "wreck")
    assert claim_treasure_by_code(team=team, code="SILVER-COIN-77")[1] is True


def test_repeated_code_claim_returns_the_existing_find(coin, team):
    find, _ = claim_treasure_by_code(team=team, code="SILVER-COIN-77")

    again, created = claim_treasure_by_code(team=team, code="silver-coin-77")

    assert not created and again.pk == find.pk
    assert Event.objects.filter(kind="treasure.claimed").count() == 1


def test_code_claim_after_the_supply_ran_out_is_a_conflict(coin, team, make_team):
    coin.supply = 1
    coin.save()
    claim_treasure_by_code(team=make_team(), code="SILVER-COIN-77")

    with pytest.raises(Conflict):
        claim_treasure_by_code(team=team, code="SILVER-COIN-77")


def test_clue_is_released_once_at_its_time(factories, hunt):
    at = hunt.starts_at + timedelta(hours=3)
    factories.TreasureFactory(
        hunt=hunt, slug="golden-key", name="The Golden Key", clue="Follow the light.", clue_at=at
    )

    release_due(hunt=hunt, now=at - timedelta(seconds=1))
    assert not Event.objects.filter(kind="treasure.clue").exists()

    release_due(hunt=hunt, now=at)
    release_due(hunt=hunt, now=at + timedelta(minutes=1))

    clue = Event.objects.get(kind="treasure.clue")
    assert clue.team is None
    assert clue.data == {
        "treasure": {"slug": "golden-key", "name": "The Golden Key"},
        "clue": "Follow the light.",
    }


def test_a_released_clue_reopens_only_for_a_corrected_text_while_the_hunt_runs(factories, hunt):
    from puzzles.services import reopen_edited_clue

    treasure = factories.TreasureFactory(hunt=hunt, clue="Follow the light.", clue_released=True)
    during, after = hunt.ends_at - timedelta(minutes=1), hunt.ends_at

    assert reopen_edited_clue(treasure, "Follow  the\r\nlight. ", now=during) == []  # whitespace alone
    assert reopen_edited_clue(treasure, "Follow the dark.", now=after) == []  # the clock sends no more
    assert treasure.clue_released
    assert reopen_edited_clue(treasure, "Follow the dark.", now=during) == ["clue_released"]
    assert not treasure.clue_released
    assert reopen_edited_clue(treasure, "Follow the dark.", now=during) == []  # not out: nothing to reopen


def test_only_the_solve_completing_the_requirements_enqueues_a_claim(monkeypatch, golden_key, team):
    enqueued = []
    monkeypatch.setattr("puzzles.services.enqueue", lambda name, *args: enqueued.append((name, args)))

    solve(team, "lighthouse")
    assert enqueued == []
    solve(team, "wreck")

    assert enqueued == [("puzzles.tasks.claim_treasures_task", (team.pk,))]
    assert Solve.objects.filter(team=team).count() == 2


def test_solve_after_the_supply_ran_out_claims_nothing(
    django_capture_on_commit_callbacks, golden_key, team, make_team
):
    golden_key.supply = 1
    golden_key.save()
    claim_treasure(team=make_team(), treasure=golden_key)

    with django_capture_on_commit_callbacks(execute=True):
        solve(team, "lighthouse")
        solve(team, "wreck")

    assert not TreasureFind.objects.filter(team=team).exists()
    assert Team.objects.get(pk=team.pk).score == 20


def test_a_puzzle_judged_by_the_task_can_complete_a_treasure(
    django_capture_on_commit_callbacks, factories, hunt, team
):
    wreck = factories.PuzzleFactory(hunt=hunt, slug="sunken", all_exact=False)
    factories.AnswerFactory(puzzle=wreck, kind="numeric", parameters={"value": 42, "tolerance": 0})
    treasure = factories.TreasureFactory(hunt=hunt, bonus=[7])
    treasure.requires.set([wreck])

    with django_capture_on_commit_callbacks(execute=True):
        guess, _ = submit_guess(team=team, user=None, puzzle_slug="sunken", text="42 m")
        assert guess.status == "pending"

    guess.refresh_from_db()
    assert guess.status == "correct"
    assert TreasureFind.objects.get().points == 7
    assert Team.objects.get(pk=team.pk).score == 10 + 7


def test_solves_completing_two_treasures_claim_both(
    django_capture_on_commit_callbacks, factories, hunt, puzzles, team
):
    first = factories.TreasureFactory(hunt=hunt, bonus=[1])
    second = factories.TreasureFactory(hunt=hunt, bonus=[2])
    first.requires.set(puzzles[:1])
    second.requires.set(puzzles)

    with django_capture_on_commit_callbacks(execute=True):
        solve(team, "lighthouse")
        solve(team, "wreck")

    assert sorted(TreasureFind.objects.values_list("treasure__pk", "rank")) == [(first.pk, 1), (second.pk, 1)]
    assert Team.objects.get(pk=team.pk).score == 20 + 1 + 2


def test_the_database_refuses_a_find_past_the_supply(factories, hunt, team):
    treasure = factories.TreasureFactory(hunt=hunt, supply=1)
    claim_treasure(team=team, treasure=treasure)

    with pytest.raises(IntegrityError), transaction.atomic():
        type(treasure).objects.filter(pk=treasure.pk).update(found_count=2)
    with pytest.raises(IntegrityError), transaction.atomic():
        TreasureFind.objects.create(treasure=treasure, team=factories.TeamFactory(hunt=hunt), rank=1)


# Real commits: an eager task's own transaction commits (and pushes) inside the outer on-commit callback.
@pytest.mark.django_db(transaction=True)
def test_solve_is_pushed_before_the_treasure_it_completes(monkeypatch, golden_key, team):
    pushed = []
    monkeypatch.setattr("hunts.events.send_frames", pushed.extend)
    solve(team, "lighthouse")
    pushed.clear()

    solve(team, "wreck")

    team_frames = [(frame["seq"], frame["type"]) for group, frame in pushed if group == f"team.{team.pk}"]
    assert team_frames == [(3, "guess.judged"), (4, "puzzle.solved"), (5, "treasure.found")]
