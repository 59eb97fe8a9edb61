"""submit_guess and judge_guess: the steps of DESIGN section 5 in order, judging and solves."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from hunts import events as hunt_events
from hunts.errors import NotFound, RateLimited
from hunts.models import Event
from puzzles.models import Answer, Guess, Puzzle, Solve
from puzzles.services import judge_guess, submit_guess

pytestmark = pytest.mark.django_db


@pytest.fixture
def hunt(factories):
    return factories.HuntFactory(guess_limit_guesses=3, guess_limit_minutes=10)


@pytest.fixture
def player(factories):
    return factories.UserFactory(username="ann")


@pytest.fixture
def team(factories, hunt, player):
    return factories.MembershipFactory(team__hunt=hunt, user=player).team


@pytest.fixture
def puzzle(factories, hunt):
    puzzle = factories.PuzzleFactory(hunt=hunt, slug="lighthouse", title="The Lighthouse", points=10)
    factories.AnswerFactory(puzzle=puzzle, parameters={"value": "BRIGHT BEAM"}, order=1)
    return puzzle


@pytest.fixture
def geo_puzzle(factories, hunt):
    """A puzzle judged by the task: a geo final answer and an exact final answer."""
    puzzle = factories.PuzzleFactory(hunt=hunt, slug="wreck", title="The Wreck", points=20, all_exact=False)
    factories.AnswerFactory(
        puzzle=puzzle, kind=Answer.Kind.GEO, parameters={"lat": 48.8584, "lng": 2.2945, "radius_m": 150}
    )
    factories.AnswerFactory(puzzle=puzzle, parameters={"value": "EIFFEL TOWER"}, order=1)
    return puzzle


def guess(team, user, text, slug="lighthouse", client_id=None):
    return submit_guess(team=team, user=user, puzzle_slug=slug, text=text, client_id=client_id)


def kinds(team):
    return list(Event.objects.filter(team=team).order_by("seq").values_list("kind", flat=True))


def freeze(monkeypatch, at):
    monkeypatch.setattr(timezone, "now", lambda: at)


def incorrect_guesses_before(now, team, puzzle, unit, ages):
    """Incorrect guesses made `ages` (in `unit`: "minutes" or "seconds") before `now`."""
    for age in ages:
        Guess.objects.create(
            team=team,
            puzzle=puzzle,
            text=f"g{age}",
            key=f"g{age}",
            status=Guess.Status.INCORRECT,
            created_at=now - timedelta(**{unit: age}),
        )


# --- 1. the hunt must be running ----------------------------------------------------------


def test_guess_before_the_start_is_refused_with_the_start_time(factories, player):
    hunt = factories.HuntFactory(starts_at=timezone.now() + timedelta(hours=2))
    team = factories.MembershipFactory(team__hunt=hunt, user=player).team

    with pytest.raises(PermissionDenied) as exc:
        guess(team, player, "anything", slug="unknown")

    assert str(exc.value) == f"The hunt starts at {hunt.starts_at:%Y-%m-%d %H:%M} UTC."


def test_guess_after_the_end_is_judged_but_scores_nothing(factories, player):
    hunt = factories.HuntFactory(starts_at=timezone.now() - timedelta(days=3))
    team = factories.MembershipFactory(team__hunt=hunt, user=player).team
    puzzle = factories.PuzzleFactory(hunt=hunt, slug="lighthouse", points=10)
    factories.AnswerFactory(puzzle=puzzle, parameters={"value": "BRIGHT BEAM"})

    judged, created = guess(team, player, "bright beam")

    team.refresh_from_db()
    assert created and judged.status == Guess.Status.CORRECT
    assert list(Solve.objects.values_list("points", "post_hunt")) == [(0, True)]
    assert (team.score, team.solve_count, team.last_scored_at) == (0, 0, None)


# --- 2. the puzzle must be unlocked -------------------------------------------------------


def test_guess_on_an_unknown_puzzle_is_not_found(team, player):
    with pytest.raises(NotFound):
        guess(team, player, "x", slug="nope")


def test_guess_on_a_locked_puzzle_is_not_found_before_the_answer_is_checked(factories, hunt, team, player):
    factories.PuzzleFactory(hunt=hunt, slug="locked", has_rules=True, unlock_solves=5)

    with pytest.raises(NotFound):
        guess(team, player, "", slug="locked")
    assert not Guess.objects.exists()


def test_guess_on_another_hunts_puzzle_is_not_found(factories, team, player):
    factories.PuzzleFactory(slug="elsewhere")

    with pytest.raises(NotFound):
        guess(team, player, "x", slug="elsewhere")


# --- 3. the answer's length ---------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "x" * 501])
def test_empty_or_too_long_answers_are_refused(puzzle, team, player, text):
    with pytest.raises(ValidationError):
        guess(team, player, text)
    assert not Guess.objects.exists()


def test_an_answer_of_500_characters_is_accepted(puzzle, team, player):
    g, created = guess(team, player, "x" * 500)

    assert created and g.status == Guess.Status.INCORRECT


# --- 4. and 5. repeats ----------------------------------------------------------------------


def test_repeated_client_id_returns_the_original_guess(puzzle, team, player):
    first, created = guess(team, player, "LAMP", client_id="c1")

    again, again_created = guess(team, player, "something else", client_id="c1")

    assert created and not again_created
    assert again.pk == first.pk and again.text == "LAMP"
    assert Guess.objects.count() == 1
    assert kinds(team).count("guess.judged") == 1


def test_repeated_client_id_wins_over_already_solved(puzzle, team, player):
    first, _ = guess(team, player, "bright beam", client_id="c1")

    again, created = guess(team, player, "bright beam", client_id="c1")

    assert not created and again.pk == first.pk


def test_repeated_dedupe_key_returns_the_original_guess(puzzle, team, player):
    first, _ = guess(team, player, "Lamp House")

    again, created = guess(team, player, "lamp-house!")

    assert not created and again.pk == first.pk
    assert Guess.objects.count() == 1


def test_repeated_guesses_cost_nothing_against_the_limit(puzzle, team, player):
    for _ in range(5):
        guess(team, player, "one")
    guess(team, player, "two")
    guess(team, player, "three")

    # The limit (3) is reached by three distinct guesses; a repeat still returns its original.
    assert guess(team, player, "ONE")[1] is False
    with pytest.raises(RateLimited):
        guess(team, player, "four")


def test_pending_guess_is_returned_on_repeat(geo_puzzle, team, player):
    first, _ = guess(team, player, "48.8584, 2.2945", slug="wreck")

    again, created = guess(team, player, "48.8584,  2.2945 ", slug="wreck")

    assert not created and again.pk == first.pk and again.status == Guess.Status.PENDING


def test_light_key_keeps_signs_apart_on_non_exact_puzzles(geo_puzzle, team, player):
    guess(team, player, "51.5, -0.1", slug="wreck")

    assert guess(team, player, "51.5, 0.1", slug="wreck")[1] is True


# --- 6. already solved --------------------------------------------------------------------


def test_new_guess_on_a_solved_puzzle_is_refused(puzzle, team, player):
    guess(team, player, "bright beam")

    with pytest.raises(ValidationError) as exc:
        guess(team, player, "another guess")

    assert exc.value.messages == ["Already solved"]


def test_already_solved_is_checked_before_the_limit(puzzle, team, player):
    guess(team, player, "one")
    guess(team, player, "two")
    guess(team, player, "bright beam")  # the third and last guess of the window

    with pytest.raises(ValidationError, match="Already solved"):
        guess(team, player, "four")


# --- 7. the guess limit -------------------------------------------------------------------


def test_limit_reached_gives_the_seconds_until_the_oldest_guess_leaves_the_window(
    monkeypatch, puzzle, team, player
):
    now = timezone.now()
    incorrect_guesses_before(now, team, puzzle, "minutes", (9, 5, 1))
    freeze(monkeypatch, now)

    with pytest.raises(RateLimited) as exc:
        guess(team, player, "late")

    assert exc.value.retry_after == 60
    assert "try again in 60 s" in exc.value.message


def test_the_wait_is_never_longer_than_the_window(monkeypatch, puzzle, team, player):
    """Teammates' guesses that took the lock first may carry a time just after this request's own."""
    now = timezone.now()
    incorrect_guesses_before(now, team, puzzle, "seconds", (-0.5, -0.4, -0.3))
    freeze(monkeypatch, now)

    with pytest.raises(RateLimited) as exc:
        guess(team, player, "late")

    assert exc.value.retry_after == 600
    assert "try again in 600 s" in exc.value.message


def test_after_the_limit_was_lowered_the_wait_lasts_until_a_slot_frees(monkeypatch, puzzle, team, player):
    now = timezone.now()
    incorrect_guesses_before(now, team, puzzle, "minutes", (9, 8, 5, 1))
    freeze(monkeypatch, now)

    with pytest.raises(RateLimited) as exc:
        guess(team, player, "late")

    # Four guesses against a limit of three: two must leave, the second of them 2 minutes from now.
    assert exc.value.retry_after == 120


def test_a_limit_of_zero_guesses_pauses_guessing(puzzle, team, player):
    puzzle.hunt.guess_limit_guesses = 0
    puzzle.hunt.save()

    with pytest.raises(RateLimited) as exc:
        guess(team, player, "anything")

    assert exc.value.retry_after == 600
    assert not Guess.objects.exists()


def test_the_wait_in_the_message_is_the_retry_after(monkeypatch, puzzle, team, player):
    now = timezone.now()
    incorrect_guesses_before(now, team, puzzle, "seconds", (540.6, 300, 60))
    freeze(monkeypatch, now)

    with pytest.raises(RateLimited) as exc:
        guess(team, player, "late")

    assert exc.value.retry_after == 60
    assert exc.value.message.endswith("try again in 60 s.")


def test_guesses_older_than_the_window_do_not_count(monkeypatch, puzzle, team, player):
    now = timezone.now()
    incorrect_guesses_before(now, team, puzzle, "minutes", (30, 11, 10))
    freeze(monkeypatch, now)

    assert guess(team, player, "fresh")[1] is True


def test_limit_counts_per_puzzle(factories, hunt, puzzle, team, player):
    factories.PuzzleFactory(hunt=hunt, slug="other")
    for text in ("a", "b", "c"):
        guess(team, player, text, slug="other")

    assert guess(team, player, "a")[1] is True


def test_limit_counts_per_team(factories, hunt, puzzle, team, player):
    other = factories.MembershipFactory(team__hunt=hunt).team
    for text in ("a", "b", "c"):
        guess(other, None, text)

    assert guess(team, player, "a")[1] is True


def test_hunt_without_limit_takes_any_number_of_guesses(puzzle, team, player):
    puzzle.hunt.guess_limit_guesses = None
    puzzle.hunt.save()

    for n in range(8):
        guess(team, player, f"guess {n}")

    assert Guess.objects.count() == 8


# --- 8. insert and judge ------------------------------------------------------------------


def test_exact_puzzle_guess_is_judged_inline(puzzle, team, player):
    g, created = guess(team, player, "lamp")

    g.refresh_from_db()
    assert created and g.status == Guess.Status.INCORRECT and g.judged_at is not None
    assert g.user == player and g.key == "lamp"
    assert kinds(team) == ["guess.judged"]


def test_correct_guess_solves_the_puzzle(puzzle, team, player):
    g, _ = guess(team, player, "  bright   BEAM! ")

    assert g.status == Guess.Status.CORRECT and g.response == "Correct!"
    solve = Solve.objects.get(team=team, puzzle=puzzle)
    assert solve.points == 10 and solve.solved_at == g.created_at


def test_solve_updates_points_solve_count_and_last_scored_at(puzzle, team, player):
    g, _ = guess(team, player, "bright beam")

    team.refresh_from_db()
    assert (team.score, team.solve_count, team.last_scored_at) == (10, 1, g.created_at)


def test_solve_appends_puzzle_solved_with_the_answer_and_the_solver(factories, puzzle, team, player):
    factories.AnswerFactory(puzzle=puzzle, final=False, parameters={"value": "BEAM"}, order=0)

    guess(team, player, "bright beam")

    event = Event.objects.get(team=team, kind="puzzle.solved")
    assert event.data == {
        "puzzle": {"slug": "lighthouse", "title": "The Lighthouse"},
        "points": 10,
        "answer": "BRIGHT BEAM",
        "by": "ann",
    }


def test_zero_point_solve_does_not_move_last_scored_at(factories, hunt, team, player):
    puzzle = factories.PuzzleFactory(hunt=hunt, slug="free", points=0)
    factories.AnswerFactory(puzzle=puzzle)

    guess(team, player, "answer", slug="free")

    team.refresh_from_db()
    assert (team.score, team.solve_count, team.last_scored_at) == (0, 1, None)


def test_second_correct_guess_does_not_score_twice(factories, puzzle, team, player):
    factories.AnswerFactory(puzzle=puzzle, parameters={"value": "LIGHT BEAM"}, order=2)
    guess(team, player, "bright beam")

    with pytest.raises(ValidationError):
        guess(team, player, "light beam")

    team.refresh_from_db()
    assert team.score == 10 and team.solve_count == 1
    assert Solve.objects.count() == 1


def test_two_pending_correct_guesses_score_once(geo_puzzle, team, player):
    first, _ = guess(team, player, "48.8584, 2.2945", slug="wreck")
    second, _ = guess(team, player, "48.8585 2.2946", slug="wreck")

    judge_guess(guess_id=first.pk)
    judge_guess(guess_id=second.pk)

    team.refresh_from_db()
    assert [g.status for g in Guess.objects.order_by("pk")] == [Guess.Status.CORRECT] * 2
    assert team.score == 20 and team.solve_count == 1
    assert kinds(team).count("puzzle.solved") == 1


def test_near_miss_on_an_exact_puzzle_says_very_close(puzzle, team, player):
    g, _ = guess(team, player, "bright beem")

    assert (g.status, g.response) == (Guess.Status.INCORRECT, "Very close!")


def test_partial_answer_gives_its_response_and_does_not_solve(factories, puzzle, team, player):
    factories.AnswerFactory(
        puzzle=puzzle, final=False, parameters={"value": "BEAM"}, response="Keep going: what kind of beam?"
    )

    g, _ = guess(team, player, "beam")

    assert (g.status, g.response) == (Guess.Status.PARTIAL, "Keep going: what kind of beam?")
    assert not Solve.objects.exists()


def test_final_answer_beats_a_matching_partial(factories, puzzle, team, player):
    factories.AnswerFactory(puzzle=puzzle, final=False, parameters={"value": "Bright beam"}, order=0)

    g, _ = guess(team, player, "bright beam")

    assert g.status == Guess.Status.CORRECT
    assert Solve.objects.filter(team=team, puzzle=puzzle).exists()


def test_non_exact_guess_is_pending_then_judged_by_the_task_on_commit(
    django_capture_on_commit_callbacks, geo_puzzle, team, player
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        g, created = guess(team, player, "48.8590, 2.2950", slug="wreck")
        assert g.status == Guess.Status.PENDING and g.judged_at is None
        assert "guess.judged" not in kinds(team)

    assert created and callbacks
    g.refresh_from_db()
    assert g.status == Guess.Status.CORRECT and g.judged_at is not None
    assert Event.objects.filter(team=team, kind="guess.pending", data__guess__id=g.pk).count() == 1
    judged = Event.objects.filter(team=team, kind="guess.judged", data__guess__id=g.pk)
    assert judged.count() == 1
    assert judged.get().data["guess"]["status"] == "correct"
    assert Solve.objects.filter(team=team, puzzle=geo_puzzle).exists()


def test_pending_guess_event_carries_the_guess_object(geo_puzzle, team, player):
    g, _ = guess(team, player, "1, 2", slug="wreck", client_id="abc")

    event = Event.objects.get(team=team, kind="guess.pending")
    assert event.data == {
        "guess": {
            "id": g.pk,
            "puzzle": "wreck",
            "answer": "1, 2",
            "status": "pending",
            "response": "",
            "user": "ann",
            "client_id": "abc",
            "created_at": hunt_events.iso(g.created_at),
            "judged_at": None,
        }
    }


def test_mixed_puzzle_with_a_matching_exact_final_is_judged_inline(geo_puzzle, team, player):
    g, _ = guess(team, player, "Eiffel tower", slug="wreck")

    assert g.status == Guess.Status.CORRECT
    assert "guess.pending" not in kinds(team)
    assert kinds(team).count("guess.judged") == 1
    assert Solve.objects.filter(team=team, puzzle=geo_puzzle).exists()


def test_judging_a_guess_twice_has_one_effect(geo_puzzle, team, player):
    g, _ = guess(team, player, "48.8584, 2.2945", slug="wreck")

    first = judge_guess(guess_id=g.pk)
    second = judge_guess(guess_id=g.pk)

    assert first.judged_at == second.judged_at
    assert kinds(team).count("guess.judged") == 1
    assert kinds(team).count("puzzle.solved") == 1
    team.refresh_from_db()
    assert team.score == 20


def test_judging_an_unknown_guess_does_nothing():
    assert judge_guess(guess_id=12345) is None


def test_committed_guess_pushes_its_events_to_the_team_and_staff(
    monkeypatch, django_capture_on_commit_callbacks, puzzle, team, player
):
    pushed = []
    monkeypatch.setattr(hunt_events, "send_frames", pushed.extend)

    with django_capture_on_commit_callbacks(execute=True):
        guess(team, player, "bright beam")
        assert pushed == []

    by_group = [(group, frame["type"]) for group, frame in pushed]
    assert by_group == [
        (f"team.{team.pk}", "guess.judged"),
        (f"team.{team.pk}", "puzzle.solved"),
        (f"staff.{team.hunt_id}", "guess.judged"),
    ]
    assert [frame["seq"] for _, frame in pushed[:2]] == [1, 2]


# --- query budget -------------------------------------------------------------------------

# SAVEPOINT, team lock (+ hunt, membership), puzzle (+ solved, repeats, the limit's n-th guess, whether a
# solve may claim a treasure or unlock a puzzle, its answers), INSERT guess, INSERT solve, locked rules,
# their prerequisites, the team's solves, INSERT unlock, unlocked puzzles for the events, INSERT events, one
# UPDATE of the team, RELEASE SAVEPOINT. No auto-claimed treasure requires the puzzle: no treasure query.
# On SQLite; on PostgreSQL the events and the team's UPDATE are one statement (hotsql.insert_and_update).
CORRECT_GUESS_QUERIES = 13


def _team_with_a_puzzle_that_unlocks_another(factories, hunt):
    team = factories.MembershipFactory(team__hunt=hunt).team
    first = factories.PuzzleFactory(hunt=hunt)
    factories.AnswerFactory(puzzle=first)
    second = factories.PuzzleFactory(hunt=hunt, has_rules=True)
    second.prerequisites.add(first)
    return team, first, second


def test_correct_guess_costs_a_constant_number_of_queries(django_assert_num_queries, factories, hunt):
    hunt.guess_limit_guesses = 20
    hunt.save()
    team, first, second = _team_with_a_puzzle_that_unlocks_another(factories, hunt)

    with django_assert_num_queries(CORRECT_GUESS_QUERIES):
        submit_guess(team=team, user=None, puzzle_slug=first.slug, text="answer")
    assert second in Puzzle.objects.unlocked_for(team)

    teams = [factories.MembershipFactory(team__hunt=hunt).team for _ in range(50)]
    puzzles = [factories.PuzzleFactory(hunt=hunt, has_rules=n % 2 == 0, unlock_solves=5) for n in range(30)]
    for puzzle in puzzles[:5]:
        puzzle.prerequisites.add(first)
    Guess.objects.bulk_create(
        Guess(team=teams[n % 50], puzzle=puzzles[n % 30], text=f"g{n}", key=f"g{n}") for n in range(200)
    )
    team, first, second = _team_with_a_puzzle_that_unlocks_another(factories, hunt)
    Guess.objects.bulk_create(Guess(team=team, puzzle=first, text=f"g{n}", key=f"g{n}") for n in range(10))

    with django_assert_num_queries(CORRECT_GUESS_QUERIES):
        submit_guess(team=team, user=None, puzzle_slug=first.slug, text="answer")
    assert second in Puzzle.objects.unlocked_for(team)


# SAVEPOINT, team lock (+ hunt, membership), puzzle (+ solved, repeats, the limit's n-th guess, answers),
# INSERT guess, INSERT event, UPDATE of the team's head, RELEASE SAVEPOINT: the most common guess of all
# (on SQLite; PostgreSQL writes the event and the head in one statement).
WRONG_GUESS_QUERIES = 7


def test_wrong_guess_costs_a_constant_number_of_queries(django_assert_num_queries, factories, hunt):
    hunt.guess_limit_guesses = 20
    hunt.save()
    team, first, _ = _team_with_a_puzzle_that_unlocks_another(factories, hunt)
    user = factories.MembershipFactory(team=team).user
    with django_assert_num_queries(WRONG_GUESS_QUERIES):
        guess, created = submit_guess(
            team=team, user=user, puzzle_slug=first.slug, text="wrong", client_id="c1"
        )
    assert created and guess.status == Guess.Status.INCORRECT
    Guess.objects.bulk_create(Guess(team=team, puzzle=first, text=f"g{n}", key=f"g{n}") for n in range(10))
    with django_assert_num_queries(WRONG_GUESS_QUERIES):
        submit_guess(team=team, user=user, puzzle_slug=first.slug, text="wrong again", client_id="c2")


# Real commits: an eager task's own transaction commits (and pushes) inside the outer on-commit callback.
@pytest.mark.django_db(transaction=True)
def test_pending_guess_is_pushed_before_its_verdict(monkeypatch, geo_puzzle, team, player):
    pushed = []
    monkeypatch.setattr(hunt_events, "send_frames", pushed.extend)

    guess(team, player, "48.8584, 2.2945", slug="wreck")

    team_frames = [(frame["seq"], frame["type"]) for group, frame in pushed if group == f"team.{team.pk}"]
    assert team_frames == [(1, "guess.pending"), (2, "guess.judged"), (3, "puzzle.solved")]


def test_a_regex_answer_is_shown_as_the_text_the_team_solved_with(factories, hunt, team, player):
    from puzzles.selectors import final_answer

    puzzle = factories.PuzzleFactory(hunt=hunt, slug="tower", title="The Tower", points=5, all_exact=False)
    factories.AnswerFactory(puzzle=puzzle, kind="regex", parameters={"pattern": "(the )?eiffel( tower)?"})
    other = factories.MembershipFactory(team__hunt=hunt).team

    pending, _ = guess(team, player, "The Eiffel Tower", slug="tower")
    judge_guess(guess_id=pending.pk)  # a pattern waits for the judge task

    assert Event.objects.get(team=team, kind="puzzle.solved").data["answer"] == "The Eiffel Tower"
    assert final_answer(puzzle, team) == "The Eiffel Tower"
    # A team that did not solve it (the solution published after the end) sees the pattern.
    assert final_answer(puzzle, other) == "(the )?eiffel( tower)?"
    assert final_answer(puzzle) == "(the )?eiffel( tower)?"


def test_beside_a_pattern_the_final_answer_matched_is_shown_as_written(factories, hunt, team, player):
    from puzzles.selectors import final_answer

    puzzle = factories.PuzzleFactory(hunt=hunt, slug="tower", title="The Tower", points=5, all_exact=False)
    factories.AnswerFactory(puzzle=puzzle, kind="regex", parameters={"pattern": "tour eiffel"}, order=0)
    factories.AnswerFactory(puzzle=puzzle, parameters={"value": "EIFFEL TOWER"}, order=1)

    guess(team, player, "eiffel   tower!", slug="tower")  # an exact final answer matches: judged at once

    assert Event.objects.get(team=team, kind="puzzle.solved").data["answer"] == "EIFFEL TOWER"
    assert final_answer(puzzle, team) == "EIFFEL TOWER"


def test_an_exact_answer_is_shown_as_written_whatever_the_team_typed(puzzle, team, player):
    from puzzles.selectors import final_answer

    guess(team, player, "bright   beam!")

    assert Event.objects.get(team=team, kind="puzzle.solved").data["answer"] == "BRIGHT BEAM"
    assert final_answer(puzzle, team) == "BRIGHT BEAM"
