"""Player pages of play: the puzzle page and its forms, treasures and the leaderboard (wiring, not rules)."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from hunts.events import mark_leaderboard_dirty
from hunts.models import Team
from puzzles.models import Guess, HintRequest, HintUnlock, ScoreAdjustment, Solve, TreasureFind, Unlock
from puzzles.normalize import exact_key
from puzzles.services import answer_hint_request, submit_guess

pytestmark = pytest.mark.django_db


@pytest.fixture
def game(factories):
    """A running hunt: an open puzzle, one that its solve unlocks, a player on a team, logged in."""
    hunt = factories.HuntFactory(
        slug="harbour", title="The Harbour", guess_limit_guesses=3, guess_limit_minutes=10
    )
    docks = factories.RoundFactory(hunt=hunt, title="The Docks", order=1)
    first = factories.PuzzleFactory(
        hunt=hunt,
        round=docks,
        slug="lighthouse",
        title="The Lighthouse",
        points=10,
        order=1,
        body="Count the **flashes**.\n\n<script>alert('x')</script>\n\n[bad](javascript:alert(1))",
    )
    factories.AnswerFactory(puzzle=first, parameters={"value": "BRIGHT BEAM"})
    factories.AnswerFactory(puzzle=first, parameters={"value": "BEAM"}, final=False, response="Keep going!")
    second = factories.PuzzleFactory(
        hunt=hunt,
        round=docks,
        slug="sunken-ship",
        title="The Sunken Ship",
        points=20,
        order=2,
        has_rules=True,
    )
    second.prerequisites.add(first)
    factories.AnswerFactory(puzzle=second, parameters={"value": "WRECK"})
    user = factories.UserFactory(username="ann")
    team = factories.MembershipFactory(
        team__hunt=hunt, team__name="Gulls", team__created_at=hunt.starts_at, user=user
    ).team
    return SimpleNamespace(hunt=hunt, first=first, second=second, user=user, team=team)


@pytest.fixture
def player(client, game):
    client.force_login(game.user)
    return client


def puzzle_url(slug="lighthouse", name="detail", **kwargs):
    return reverse(f"puzzles:{name}", kwargs={"hunt": "harbour", "puzzle": slug, **kwargs})


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


# --- Puzzle page ---------------------------------------------------------------------------


def test_puzzle_page_shows_sanitized_body_guess_form_and_live_hooks(player):
    response = player.get(puzzle_url())

    assert response.status_code == 200
    html = response.content.decode()
    assert "<strong>flashes</strong>" in html
    assert "<script>alert" not in html
    assert "javascript:" not in html
    assert 'id="guess-form"' in html
    assert 'name="answer"' in html
    assert 'data-hunt="harbour"' in html
    assert 'data-ws="/ws/hunts/harbour/"' in html
    for region in ('id="guess-log"', 'id="hints"', 'id="hint-requests"'):
        assert region in html


def test_locked_puzzle_is_404(player):
    assert player.get(puzzle_url("sunken-ship")).status_code == 404


def test_unknown_puzzle_is_404(player):
    assert player.get(puzzle_url("nope")).status_code == 404


def test_non_member_gets_404_on_puzzle_and_treasure_pages(client, factories, game):
    client.force_login(factories.UserFactory())

    assert client.get(puzzle_url()).status_code == 404
    assert client.get(reverse("puzzles:treasures", kwargs={"hunt": "harbour"})).status_code == 404
    response = client.post(puzzle_url(name="guess"), {"answer": "BRIGHT BEAM"})
    assert response.status_code == 404
    assert not Guess.objects.exists()


def test_anonymous_user_is_sent_to_login_from_team_pages(client, game):
    response = client.get(puzzle_url())

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_correct_guess_redirects_then_shows_solve_answer_and_unlocked_puzzle(player, game):
    response = player.post(puzzle_url(name="guess"), {"answer": "bright beam"})

    assert response.status_code == 302
    assert response["Location"] == puzzle_url() + "#guesses"
    page = player.get(response["Location"])
    assert "“bright beam” is correct! Puzzle solved." in messages_of(page)
    html = page.content.decode()
    assert 'data-solved="true"' in html
    assert "BRIGHT BEAM" in html  # the answer, shown once solved
    assert 'id="guess-form"' not in html
    home = player.get(reverse("hunts:detail", kwargs={"hunt": "harbour"}))
    assert 'data-puzzle="sunken-ship"' in home.content.decode()
    assert player.get(puzzle_url("sunken-ship")).status_code == 200


def test_guess_log_lists_the_teams_guesses_newest_first_with_verdict_and_response(player, game):
    player.post(puzzle_url(name="guess"), {"answer": "Foghorn"})
    response = player.post(puzzle_url(name="guess"), {"answer": "beam"}, follow=True)

    assert "“beam” is on the right track. Keep going!" in messages_of(response)
    guesses = response.context["guesses"]
    assert [g.text for g in guesses] == ["beam", "Foghorn"]
    html = response.content.decode()
    log = html[html.index('id="guess-log"') :]
    assert log.index("Foghorn") > log.index(">beam<")
    assert 'data-status="partial"' in html and 'data-status="incorrect"' in html
    assert "Keep going!" in html


def test_answer_is_not_shown_before_the_solve(player):
    html = player.get(puzzle_url()).content.decode()

    assert "BRIGHT BEAM" not in html


def test_repeated_guess_or_resubmitted_form_records_one_guess(player, game):
    player.post(puzzle_url(name="guess"), {"answer": "foghorn"})
    response = player.post(puzzle_url(name="guess"), {"answer": "Fog horn!"}, follow=True)

    assert Guess.objects.count() == 1
    assert "Your team already guessed “foghorn”: incorrect." in messages_of(response)


def test_empty_guess_is_a_field_error(player):
    response = player.post(puzzle_url(name="guess"), {"answer": "  "})

    assert response.status_code == 400
    assert response.context["guess_form"].errors["answer"]
    assert not Guess.objects.exists()


def test_guess_without_letters_shows_the_services_message_on_the_field(player):
    response = player.post(puzzle_url(name="guess"), {"answer": "!!!"})

    assert response.status_code == 400
    assert response.context["guess_form"].errors["answer"] == [
        "Enter an answer with at least one letter or digit."
    ]


def test_rate_limited_guess_says_when_to_retry(player, game):
    for text in ("one", "two", "three"):
        player.post(puzzle_url(name="guess"), {"answer": text})

    response = player.post(puzzle_url(name="guess"), {"answer": "four"})

    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 600
    message = messages_of(response)[-1]
    assert "try again in" in message and message.endswith(" s.")
    assert response.context["guess_form"]["answer"].value() == "four"


def test_guess_before_the_hunt_started_is_refused_with_a_message(player, game):
    game.hunt.starts_at = timezone.now() + timedelta(minutes=5)
    game.hunt.ends_at = timezone.now() + timedelta(days=2)
    game.hunt.save()
    Unlock.objects.create(team=game.team, puzzle=game.first)  # opened early by staff

    response = player.post(puzzle_url(name="guess"), {"answer": "bright beam"})

    assert response.status_code == 403
    assert messages_of(response)[0].startswith("The hunt starts at")
    assert not Guess.objects.exists()


def test_guess_on_locked_puzzle_is_404(player):
    response = player.post(puzzle_url("sunken-ship", name="guess"), {"answer": "wreck"})

    assert response.status_code == 404
    assert not Guess.objects.exists()


def test_get_on_a_post_only_url_is_405(player):
    assert player.get(puzzle_url(name="guess")).status_code == 405


# --- Hints and questions ---------------------------------------------------------------------


def test_hints_show_unlocked_text_buyable_cost_and_timed_availability(player, factories, game):
    free = factories.HintFactory(puzzle=game.first, order=1, text="Look at the lamp.")
    bought = factories.HintFactory(puzzle=game.first, order=2, text="Count in Morse.", cost=5)
    timed = factories.HintFactory(puzzle=game.first, order=3, text="Later hint.", after_minutes=600)

    html = player.get(puzzle_url()).content.decode()

    assert "Look at the lamp." in html
    assert "Count in Morse." not in html
    assert "Buy for 5 points" in html
    assert (
        reverse(
            "puzzles:hint_unlock", kwargs={"hunt": "harbour", "puzzle": "lighthouse", "hint_id": bought.pk}
        )
        in html
    )
    assert "Later hint." not in html
    assert f'id="hint-{timed.pk}"' in html and "Free at" in html
    assert f'id="hint-{free.pk}"' in html


def test_buying_a_hint_without_enough_points_is_refused_with_a_message(player, factories, game):
    hint = factories.HintFactory(puzzle=game.first, order=1, text="Count in Morse.", cost=5)

    response = player.post(puzzle_url(name="hint_unlock", hint_id=hint.pk))

    assert response.status_code == 400
    assert messages_of(response) == ["This hint costs 5 points; your team has 0."]
    assert not HintUnlock.objects.exists()


def test_buying_a_hint_charges_and_shows_its_text(player, factories, game):
    hint = factories.HintFactory(puzzle=game.first, order=1, text="Count in Morse.", cost=5)
    Team.objects.filter(pk=game.team.pk).update(score=12)

    response = player.post(puzzle_url(name="hint_unlock", hint_id=hint.pk))

    assert response.status_code == 302
    assert response["Location"].endswith(f"#hint-{hint.pk}")
    page = player.get(puzzle_url())
    assert "Count in Morse." in page.content.decode()
    assert Team.objects.get(pk=game.team.pk).score == 7


def test_question_to_staff_is_listed_and_shows_the_staff_answer(player, factories, game):
    response = player.post(puzzle_url(name="hint_request"), {"question": "Is it about lights?"})

    assert response.status_code == 302
    request = HintRequest.objects.get()
    page = player.get(puzzle_url()).content.decode()
    assert "Is it about lights?" in page and "Waiting for an organizer" in page
    answer_hint_request(
        request_id=request.pk, staff=factories.UserFactory(is_staff=True), answer="Yes, flashes."
    )
    page = player.get(puzzle_url()).content.decode()
    assert "Yes, flashes." in page


def test_empty_question_is_a_field_error(player):
    response = player.post(puzzle_url(name="hint_request"), {"question": ""})

    assert response.status_code == 400
    assert response.context["request_form"].errors["question"]


# --- Treasures -------------------------------------------------------------------------------


@pytest.fixture
def treasures(factories, game):
    coin = factories.TreasureFactory(
        hunt=game.hunt,
        slug="coin",
        name="Silver Coin",
        teaser="Somewhere in the text.",
        reveal="Worth keeping.",
        code="SILVER-COIN",
        code_key=exact_key("SILVER-COIN"),
        bonus=[5],
        order=1,
    )
    key = factories.TreasureFactory(
        hunt=game.hunt,
        slug="key",
        name="Golden Key",
        teaser="Where the beam meets the wreck.",
        reveal="Opens the chest.",
        supply=2,
        found_count=1,
        order=2,
    )
    key.requires.add(game.first)
    rival = factories.TeamFactory(hunt=game.hunt, name="Terns")
    TreasureFind.objects.create(treasure=key, team=rival, rank=1, points=50)
    return SimpleNamespace(coin=coin, key=key, rival=rival)


def treasures_url(name="treasures"):
    return reverse(f"puzzles:{name}", kwargs={"hunt": "harbour"})


def test_treasures_page_shows_teasers_supply_and_finders_but_no_reveal_before_finding(player, treasures):
    response = player.get(treasures_url())

    assert response.status_code == 200
    html = response.content.decode()
    assert "Somewhere in the text." in html and "Where the beam meets the wreck." in html
    assert "1 of 2 left." in html
    assert "Terns" in html
    assert "Worth keeping." not in html and "Opens the chest." not in html
    assert "SILVER-COIN" not in html
    assert 'id="treasures"' in html


def test_claim_by_code_finds_the_treasure_and_shows_its_reveal(player, game, treasures):
    response = player.post(treasures_url("treasure_claim"), {"code": "silver coin"})

    assert response.status_code == 302
    assert response["Location"].endswith("#treasure-coin")
    page = player.get(response["Location"])
    assert "You found Silver Coin! Finder #1, +5 points." in messages_of(page)
    assert "Worth keeping." in page.content.decode()
    assert TreasureFind.objects.filter(team=game.team, treasure=treasures.coin).exists()
    again = player.post(treasures_url("treasure_claim"), {"code": "SILVER-COIN"}, follow=True)
    assert "Your team already found Silver Coin." in messages_of(again)


def test_wrong_code_is_a_field_error(player, treasures):
    response = player.post(treasures_url("treasure_claim"), {"code": "copper"})

    assert response.status_code == 400
    assert response.context["claim_form"].errors["code"] == ["That code does not match any treasure."]


def test_code_before_the_required_puzzles_is_refused_with_a_message(player, factories, game, treasures):
    treasures.coin.requires.add(game.second)

    response = player.post(treasures_url("treasure_claim"), {"code": "SILVER-COIN"})

    assert response.status_code == 403
    assert messages_of(response) == ["Solve the puzzles that lead to Silver Coin first."]


def test_claim_when_none_left_is_a_conflict_message(player, factories, game, treasures):
    treasures.coin.supply = 1
    treasures.coin.found_count = 1
    treasures.coin.save()
    TreasureFind.objects.create(treasure=treasures.coin, team=treasures.rival, rank=1)

    response = player.post(treasures_url("treasure_claim"), {"code": "SILVER-COIN"})

    assert response.status_code == 409
    assert messages_of(response) == ["No Silver Coin left: all 1 were found."]


# --- Leaderboard -----------------------------------------------------------------------------


def leaderboard_url():
    return reverse("puzzles:leaderboard", kwargs={"hunt": "harbour"})


def test_leaderboard_is_public_with_ranks_scores_solves_and_chart(client, factories, game):
    rival = factories.MembershipFactory(team__hunt=game.hunt, team__name="Terns").team
    with_solve(game.team, game.first, minutes_ago=30)
    Team.objects.filter(pk=rival.pk).update(score=3, last_scored_at=timezone.now())
    ScoreAdjustment.objects.create(team=rival, points=3, reason="Style")

    response = client.get(leaderboard_url())

    assert response.status_code == 200
    rows = response.context["rows"]
    assert [(r["rank"], r["team"]["name"], r["score"], r["solves"]) for r in rows] == [
        (1, "Gulls", 10, 1),
        (2, "Terns", 3, 0),
    ]
    assert rows[0]["last_solve"] is not None and rows[1]["last_solve"] is None
    html = response.content.decode()
    assert "<svg" in html and html.count("<polyline") == 2
    assert 'id="leaderboard"' in html
    assert "Gulls: 10 points; Terns: 3 points" in html


def test_leaderboard_marks_the_viewers_team(player, game):
    response = player.get(leaderboard_url())

    assert 'class="mine"' in response.content.decode()


def test_leaderboard_of_unknown_hunt_is_404(client):
    assert client.get(reverse("puzzles:leaderboard", kwargs={"hunt": "nope"})).status_code == 404


# --- Query counts ------------------------------------------------------------------------------


def with_solve(team, puzzle, *, minutes_ago=10):
    at = timezone.now() - timedelta(minutes=minutes_ago)
    Solve.objects.create(team=team, puzzle=puzzle, solved_at=at, points=puzzle.points)
    Team.objects.filter(pk=team.pk).update(
        score=team.score + puzzle.points, solve_count=team.solve_count + 1, last_scored_at=at
    )
    team.refresh_from_db()


def crowd(factories, game, *, teams: int, guesses: int):
    """More teams with members, solves, finds and bought hints, and more guesses by the player's team."""
    treasure = factories.TreasureFactory(hunt=game.hunt, supply=None)
    hint = factories.HintFactory(puzzle=game.first, order=99, cost=1)
    for n in range(teams):
        team = factories.MembershipFactory(team__hunt=game.hunt).team
        with_solve(team, game.first, minutes_ago=n + 1)
        TreasureFind.objects.create(treasure=treasure, team=team, rank=n + 1, points=1)
        HintUnlock.objects.create(team=team, hint=hint, cost=1)
        Guess.objects.create(team=team, puzzle=game.first, text=f"x{n}", key=f"x{n}", status="incorrect")
    for n in range(guesses):
        Guess.objects.create(team=game.team, puzzle=game.first, text=f"g{n}", key=f"g{n}", status="incorrect")
    factories.HintFactory(puzzle=game.first, order=100, text="Free hint")
    HintRequest.objects.create(team=game.team, puzzle=game.first, question="Why?")


# Solved: session, user, hunt with the user's team (one statement), puzzle (with solved/unlocked times),
# guesses, hints, questions, errata, answer.
PUZZLE_PAGE_QUERIES = 9
LEADERBOARD_QUERIES = 9  # session, user, hunt with team, board (cold cache), last solves, 4 chart sources


@pytest.mark.parametrize("size", [(0, 0), (30, 60)], ids=["small", "large"])
def test_puzzle_page_query_count_is_constant(player, factories, game, django_assert_num_queries, size):
    submit_guess(team=game.team, user=game.user, puzzle_slug="lighthouse", text="first")
    crowd(factories, game, teams=size[0], guesses=size[1])
    cache.clear()

    with django_assert_num_queries(PUZZLE_PAGE_QUERIES - 1):
        response = player.get(puzzle_url())

    assert response.status_code == 200
    assert len(response.context["guesses"]) == size[1] + 1


@pytest.mark.parametrize("size", [(0, 0), (30, 60)], ids=["small", "large"])
def test_solved_puzzle_page_query_count_is_constant(player, factories, game, django_assert_num_queries, size):
    crowd(factories, game, teams=size[0], guesses=size[1])
    with_solve(game.team, game.first)
    cache.clear()

    with django_assert_num_queries(PUZZLE_PAGE_QUERIES):
        response = player.get(puzzle_url())

    assert response.context["answer"] == "BRIGHT BEAM"


@pytest.mark.parametrize("size", [(0, 0), (30, 60)], ids=["small", "large"])
def test_solved_pattern_puzzle_page_reads_the_solving_text_in_one_query(
    player, factories, game, django_assert_num_queries, size
):
    # A pattern's answer is shown as the text the team solved with: one more query, whatever the guesses.
    game.first.answers.filter(final=True).update(kind="regex", parameters={"pattern": "bright( beam)?"})
    crowd(factories, game, teams=size[0], guesses=size[1])
    Guess.objects.create(
        team=game.team,
        puzzle=game.first,
        text="Bright Beam",
        key="brightbeam",
        status="correct",
        judged_at=timezone.now(),
    )
    with_solve(game.team, game.first)
    cache.clear()

    with django_assert_num_queries(PUZZLE_PAGE_QUERIES + 1):
        response = player.get(puzzle_url())

    assert response.context["answer"] == "Bright Beam"
    assert "Bright Beam" in response.content.decode()


@pytest.mark.parametrize("teams", [0, 40], ids=["small", "large"])
def test_leaderboard_query_count_is_constant(player, factories, game, django_assert_num_queries, teams):
    with_solve(game.team, game.first)
    crowd(factories, game, teams=teams, guesses=teams)
    cache.clear()

    with django_assert_num_queries(LEADERBOARD_QUERIES):
        response = player.get(leaderboard_url())

    assert len(response.context["rows"]) == teams + 1
    assert len(response.context["series"]) == min(10, teams + 1)
    with django_assert_num_queries(LEADERBOARD_QUERIES - 5):  # warm: no board, no chart queries
        player.get(leaderboard_url())


def test_leaderboard_chart_follows_a_score_change_at_once(
    client, factories, game, django_capture_on_commit_callbacks
):
    with_solve(game.team, game.first, minutes_ago=30)
    assert "Gulls: 10 points" in client.get(leaderboard_url()).content.decode()

    ScoreAdjustment.objects.create(team=game.team, points=5, reason="Style")
    Team.objects.filter(pk=game.team.pk).update(score=15)
    with django_capture_on_commit_callbacks(execute=True):
        mark_leaderboard_dirty(game.hunt.pk)  # as every score change does

    assert "Gulls: 15 points" in client.get(leaderboard_url()).content.decode()
