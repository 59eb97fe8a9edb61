"""REST API wiring of play: puzzles, guesses, hints, hint requests, leaderboard, treasures; query counts."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from hunts.models import Event
from puzzles import services
from puzzles.models import Answer, Guess, HintUnlock, TreasureFind
from testing.api import client_of

H = "/api/hunts/harbour"
GEO = {"lat": 48.8584, "lng": 2.2945, "radius_m": 150}


@pytest.fixture
def team(factories, hunt):
    return factories.TeamFactory(hunt=hunt, name="Gulls")


@pytest.fixture
def player(factories, team):
    return factories.MembershipFactory(team=team, user__username="ann").user


@pytest.fixture
def client(player):
    return client_of(player)


@pytest.fixture
def rival(factories, hunt):
    """Another team of the hunt, with its member."""
    membership = factories.MembershipFactory(team__hunt=hunt, team__name="Crabs", user__username="cy")
    return membership.team, membership.user


@pytest.fixture
def puzzle(factories, hunt):
    puzzle = factories.PuzzleFactory(hunt=hunt, slug="lighthouse", title="The Lighthouse", points=10)
    factories.AnswerFactory(puzzle=puzzle, parameters={"value": "BRIGHT BEAM"})
    return puzzle


@pytest.fixture
def geo_puzzle(factories, hunt):
    """A puzzle whose answer is `geo`: guesses wait for the judge task."""
    puzzle = factories.PuzzleFactory(hunt=hunt, slug="wreck", title="The Wreck", all_exact=False)
    factories.AnswerFactory(puzzle=puzzle, kind=Answer.Kind.GEO, parameters=GEO)
    return puzzle


@pytest.fixture
def locked(factories, hunt):
    """A puzzle that opens after one solve."""
    puzzle = factories.PuzzleFactory(hunt=hunt, slug="vault", has_rules=True, unlock_solves=1)
    factories.AnswerFactory(puzzle=puzzle, parameters={"value": "OPEN"})
    return puzzle


def post_guess(client, answer, slug="lighthouse", **extra):
    return client.post(f"{H}/puzzles/{slug}/guesses/", {"answer": answer, **extra}, format="json")


def solve(team, user, slug="lighthouse", answer="BRIGHT BEAM"):
    return services.submit_guess(team=team, user=user, puzzle_slug=slug, text=answer)[0]


GUESS_FIELDS = {
    "id", "puzzle", "answer", "status", "response", "user", "client_id", "created_at", "judged_at",
}  # fmt: skip


# --- Puzzles ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_puzzles_list_shows_the_unlocked_puzzles_paginated(client, team, player, puzzle, locked):
    response = client.get(f"{H}/puzzles/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert [p["slug"] for p in body["results"]] == ["lighthouse"]
    row = body["results"][0]
    assert set(row) == {"slug", "title", "round", "points", "meta", "solved", "solved_at", "unlocked_at"}
    assert row["solved"] is False and row["solved_at"] is None
    assert row["round"] == puzzle.round.title
    assert row["unlocked_at"] is not None

    solve(team, player)
    rows = {p["slug"]: p for p in client.get(f"{H}/puzzles/").json()["results"]}
    assert set(rows) == {"lighthouse", "vault"}
    assert rows["lighthouse"]["solved"] is True and rows["lighthouse"]["solved_at"]


@pytest.mark.django_db
def test_puzzles_need_a_team(user_factory, hunt, puzzle):
    response = client_of(user_factory()).get(f"{H}/puzzles/")
    assert response.status_code == 404
    assert response.json() == {"detail": "You are not on a team in this hunt."}


@pytest.mark.django_db
def test_puzzle_detail_renders_sanitized_markdown_and_hides_locked_hint_text(factories, client, puzzle):
    puzzle.body = "**Look** [here](https://example.org) <script>alert(1)</script> [x](javascript:alert(1))"
    puzzle.save()
    factories.HintFactory(puzzle=puzzle, order=1, text="Count the flashes.")
    factories.HintFactory(puzzle=puzzle, order=2, text="Morse.", cost=5)
    factories.HintFactory(puzzle=puzzle, order=3, text="Later.", after_minutes=600)
    response = client.get(f"{H}/puzzles/lighthouse/")
    assert response.status_code == 200
    body = response.json()
    assert "answer" not in body
    assert "<strong>Look</strong>" in body["body"]
    assert 'href="https://example.org" rel="noopener noreferrer"' in body["body"]
    assert "<script" not in body["body"] and "javascript:" not in body["body"]
    free, paid, timed = body["hints"]
    assert set(free) == {"id", "order", "cost", "available_at", "unlocked", "text"}
    assert free["unlocked"] is True and free["text"] == "Count the flashes."
    assert paid["unlocked"] is False and "text" not in paid and paid["cost"] == 5
    assert timed["unlocked"] is False and "text" not in timed and timed["available_at"] is not None


@pytest.mark.django_db
def test_puzzle_answer_is_shown_only_once_solved(client, team, player, puzzle):
    assert "answer" not in client.get(f"{H}/puzzles/lighthouse/").json()
    solve(team, player)
    assert client.get(f"{H}/puzzles/lighthouse/").json()["answer"] == "BRIGHT BEAM"


@pytest.mark.django_db
def test_locked_and_unknown_puzzles_are_404(client, locked):
    for slug in ["vault", "nowhere"]:
        response = client.get(f"{H}/puzzles/{slug}/")
        assert response.status_code == 404
        assert response.json() == {"detail": f"No puzzle '{slug}' is open for your team."}


# --- Guesses -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_correct_guess_is_201_and_judged(client, puzzle):
    response = post_guess(client, "bright beam", client_id="c-1")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == GUESS_FIELDS
    assert body["status"] == "correct" and body["puzzle"] == "lighthouse"
    assert body["answer"] == "bright beam" and body["user"] == "ann" and body["client_id"] == "c-1"
    assert body["judged_at"] is not None


@pytest.mark.django_db
def test_a_repeated_guess_returns_the_original_with_200(client, puzzle):
    first = post_guess(client, "WRONG", client_id="a")
    assert first.status_code == 201 and first.json()["status"] == "incorrect"
    same_text = post_guess(client, "wrong!")
    assert same_text.status_code == 200 and same_text.json()["id"] == first.json()["id"]
    same_client_id = post_guess(client, "other", client_id="a")
    assert same_client_id.status_code == 200 and same_client_id.json()["id"] == first.json()["id"]
    assert Guess.objects.count() == 1


@pytest.mark.django_db
def test_a_geo_guess_is_202_while_the_judge_has_not_run(client, geo_puzzle):
    response = post_guess(client, "48.8584, 2.2945", slug="wreck")
    assert response.status_code == 202
    assert response.json()["status"] == "pending" and response.json()["judged_at"] is None


@pytest.mark.django_db(transaction=True)
def test_a_geo_guess_is_201_when_the_judge_ran_on_commit(factories):
    hunt = factories.HuntFactory(slug="harbour")
    user = factories.MembershipFactory(team__hunt=hunt).user
    puzzle = factories.PuzzleFactory(hunt=hunt, slug="wreck", all_exact=False)
    factories.AnswerFactory(puzzle=puzzle, kind=Answer.Kind.GEO, parameters=GEO)
    response = post_guess(client_of(user), "48.8584, 2.2945", slug="wreck")
    assert response.status_code == 201
    assert response.json()["status"] == "correct"


@pytest.mark.django_db
def test_guess_input_errors_are_400_field_messages(client, puzzle):
    payloads = [{"answer": "   "}, {"answer": ["x"]}, {"answer": "x" * 100_000}, {}, {"answer": "x" * 501}]
    for payload in payloads:
        response = client.post(f"{H}/puzzles/lighthouse/guesses/", payload, format="json")
        assert response.status_code == 400, payload
        assert list(response.json()) == ["answer"], payload
    garbage = client.post(f"{H}/puzzles/lighthouse/guesses/", data="answer=", content_type="application/json")
    assert garbage.status_code == 400 and "detail" in garbage.json()
    wrong_type = client.post(f"{H}/puzzles/lighthouse/guesses/", data="x", content_type="text/plain")
    assert wrong_type.status_code == 415 and "detail" in wrong_type.json()


@pytest.mark.django_db
def test_guessing_a_solved_puzzle_or_outside_the_hunt_is_refused(
    factories, client, team, player, puzzle, hunt
):
    solve(team, player)
    solved = post_guess(client, "something else")
    assert solved.status_code == 400
    assert solved.json() == {"detail": "Already solved"}
    hunt.ends_at = timezone.now() - timedelta(minutes=1)
    hunt.starts_at = hunt.ends_at - timedelta(days=1)
    hunt.save()
    hunt.starts_at = timezone.now() + timedelta(hours=1)
    hunt.ends_at = hunt.starts_at + timedelta(days=1)
    hunt.save()
    early = post_guess(client, "early")
    assert early.status_code == 403
    assert "starts" in early.json()["detail"]


@pytest.mark.django_db
def test_guessing_a_locked_puzzle_is_404(client, locked):
    assert post_guess(client, "OPEN", slug="vault").status_code == 404


@pytest.mark.django_db
def test_the_guess_limit_is_429_with_retry_after(client, hunt, puzzle):
    hunt.guess_limit_guesses, hunt.guess_limit_minutes = 2, 10
    hunt.save()
    assert post_guess(client, "one").status_code == 201
    assert post_guess(client, "two").status_code == 201
    response = post_guess(client, "three")
    assert response.status_code == 429
    body = response.json()
    assert set(body) == {"detail", "retry_after"}
    assert 590 <= body["retry_after"] <= 600
    assert response["Retry-After"] == str(body["retry_after"])


@pytest.mark.django_db
def test_guesses_list_is_the_teams_own_filterable_by_puzzle(
    factories, client, team, player, puzzle, rival, hunt
):
    other = factories.PuzzleFactory(hunt=hunt, slug="beacon")
    factories.AnswerFactory(puzzle=other)
    rival_team, rival_user = rival
    solve(rival_team, rival_user, answer="nope")
    solve(team, player, answer="first")
    solve(team, player, slug="beacon", answer="second")
    body = client.get(f"{H}/guesses/").json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert [g["answer"] for g in body["results"]] == ["second", "first"]
    assert set(body["results"][0]) == GUESS_FIELDS
    filtered = client.get(f"{H}/guesses/?puzzle=lighthouse").json()["results"]
    assert [g["answer"] for g in filtered] == ["first"]
    bad = client.get(f"{H}/guesses/?puzzle=%00nul")
    assert bad.status_code == 400 and "puzzle" in bad.json()


@pytest.mark.django_db
def test_another_teams_guess_is_404(client, team, player, puzzle, rival):
    mine = solve(team, player, answer="mine")
    theirs = solve(*rival, answer="theirs")
    response = client.get(f"{H}/guesses/{mine.pk}/")
    assert response.status_code == 200 and response.json()["answer"] == "mine"
    hidden = client.get(f"{H}/guesses/{theirs.pk}/")
    assert hidden.status_code == 404
    assert hidden.json() == {"detail": "Your team has no such guess."}


@pytest.mark.django_db
def test_non_numeric_and_huge_guess_ids_are_json_404(client, puzzle):
    for guess_id in ["abc", "-1", "1.5", "9" * 40]:
        response = client.get(f"{H}/guesses/{guess_id}/")
        assert response.status_code == 404, guess_id
        assert "detail" in response.json()


# --- Hints and hint requests ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_buying_a_hint_is_201_then_200_and_charges_once(factories, client, team, puzzle):
    hint = factories.HintFactory(puzzle=puzzle, order=1, text="Morse.", cost=5)
    team.score = 12
    team.save()
    url = f"{H}/puzzles/lighthouse/hints/{hint.pk}/unlock/"
    bought = client.post(url)
    assert bought.status_code == 201
    assert bought.json() == {
        "id": hint.pk, "order": 1, "cost": 5, "available_at": None, "unlocked": True, "text": "Morse.",
    }  # fmt: skip
    again = client.post(url)
    assert again.status_code == 200 and again.json()["text"] == "Morse."
    team.refresh_from_db()
    assert team.score == 7
    assert HintUnlock.objects.filter(team=team).count() == 1


@pytest.mark.django_db
def test_a_hint_above_the_teams_score_is_400(factories, client, puzzle):
    hint = factories.HintFactory(puzzle=puzzle, cost=5)
    response = client.post(f"{H}/puzzles/lighthouse/hints/{hint.pk}/unlock/")
    assert response.status_code == 400
    assert "costs 5 points" in response.json()["detail"]


@pytest.mark.django_db
def test_hints_of_other_or_locked_puzzles_are_404(factories, client, puzzle, locked, hunt):
    elsewhere = factories.HintFactory(puzzle=factories.PuzzleFactory(hunt=hunt, slug="beacon"), cost=0)
    assert client.post(f"{H}/puzzles/lighthouse/hints/{elsewhere.pk}/unlock/").status_code == 404
    vault_hint = factories.HintFactory(puzzle=locked, cost=0)
    assert client.post(f"{H}/puzzles/vault/hints/{vault_hint.pk}/unlock/").status_code == 404
    assert client.post(f"{H}/puzzles/lighthouse/hints/abc/unlock/").status_code == 404


@pytest.mark.django_db
def test_hint_requests_are_created_and_listed_for_the_team_only(client, puzzle, rival):
    rival_team, rival_user = rival
    services.request_hint(team=rival_team, user=rival_user, puzzle_slug="lighthouse", question="Theirs?")
    created = client.post(
        f"{H}/puzzles/lighthouse/hint-requests/", {"question": "Is it Morse?"}, format="json"
    )
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"id", "puzzle", "question", "answer", "status", "created_at", "answered_at"}
    assert body["puzzle"] == "lighthouse" and body["status"] == "open" and body["answered_at"] is None
    listed = client.get(f"{H}/puzzles/lighthouse/hint-requests/").json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == body["id"]


@pytest.mark.django_db
def test_hint_request_errors(client, puzzle, locked, hunt):
    blank = client.post(f"{H}/puzzles/lighthouse/hint-requests/", {"question": " "}, format="json")
    assert blank.status_code == 400 and "question" in blank.json()
    assert client.get(f"{H}/puzzles/vault/hint-requests/").status_code == 404
    hunt.ends_at = timezone.now() - timedelta(minutes=1)
    hunt.starts_at = hunt.ends_at - timedelta(days=1)
    hunt.save()
    ended = client.post(f"{H}/puzzles/lighthouse/hint-requests/", {"question": "Still?"}, format="json")
    assert ended.status_code == 403


# --- Leaderboard -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_leaderboard_is_public_paginated_and_ranked(factories, team, player, puzzle, rival, hunt):
    factories.MembershipFactory(team__hunt=hunt, team__hidden=True)
    solve(team, player)
    response = APIClient().get(f"{H}/leaderboard/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 2
    first, second = body["results"]
    assert set(first) == {"rank", "team", "score", "solves", "last_scored_at"}
    assert first["team"] == {"slug": team.slug, "name": "Gulls"}
    assert (first["rank"], first["score"], first["solves"]) == (1, 10, 1)
    assert (second["rank"], second["score"], second["last_scored_at"]) == (2, 0, None)


@pytest.mark.django_db
def test_leaderboard_of_an_unpublished_hunt_is_404(factories):
    factories.HuntFactory(slug="draft", published=False)
    assert APIClient().get("/api/hunts/draft/leaderboard/").status_code == 404


# --- Treasures --------------------------------------------------------------------------------------------


@pytest.fixture
def coin(factories, hunt):
    return factories.TreasureFactory(
        hunt=hunt, slug="coin", name="Silver Coin", teaser="Somewhere.", reveal="Worth keeping.",
        code="SILVER-COIN-77", code_key="silvercoin77", supply=1, bonus=[5],
    )  # fmt: skip


@pytest.mark.django_db
def test_treasures_list_never_shows_code_or_requires_and_reveals_only_own_finds(
    factories, client, team, rival, coin, puzzle
):
    key = factories.TreasureFactory(hunt=coin.hunt, slug="key", reveal="Secret.")
    key.requires.add(puzzle)
    services.claim_treasure(team=rival[0], treasure=key)
    services.claim_treasure(team=team, treasure=coin)
    response = client.get(f"{H}/treasures/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    rows = {row["slug"]: row for row in body["results"]}
    mine, theirs = rows["coin"], rows["key"]
    assert set(mine) == {
        "slug", "name", "teaser", "supply", "remaining", "finders", "found", "rank", "points", "reveal",
    }  # fmt: skip
    assert (mine["found"], mine["rank"], mine["points"], mine["reveal"]) == (True, 1, 5, "Worth keeping.")
    assert (mine["supply"], mine["remaining"]) == (1, 0)
    assert mine["finders"][0]["team"] == {"slug": team.slug, "name": "Gulls"}
    assert set(mine["finders"][0]) == {"team", "rank", "found_at"}
    assert theirs["found"] is False and "reveal" not in theirs and "rank" not in theirs
    assert theirs["finders"][0]["team"]["name"] == "Crabs"
    assert "Secret." not in response.content.decode() and "SILVER" not in response.content.decode()


@pytest.mark.django_db
def test_claiming_by_code_is_201_then_200(client, coin):
    created = client.post(f"{H}/treasures/claim/", {"code": "silver coin 77"}, format="json")
    assert created.status_code == 201
    assert created.json() == {
        "treasure": {"slug": "coin", "name": "Silver Coin"},
        "rank": 1,
        "points": 5,
        "reveal": "Worth keeping.",
    }
    again = client.post(f"{H}/treasures/claim/", {"code": "SILVER-COIN-77"}, format="json")
    assert again.status_code == 200 and again.json() == created.json()


@pytest.mark.django_db
def test_claim_errors_are_400_403_409(factories, client, coin, puzzle, rival):
    wrong = client.post(f"{H}/treasures/claim/", {"code": "COPPER"}, format="json")
    assert wrong.status_code == 400
    assert wrong.json() == {"code": ["That code does not match any treasure."]}
    guarded = factories.TreasureFactory(hunt=coin.hunt, code="GATE", code_key="gate")
    guarded.requires.add(puzzle)
    unsolved = client.post(f"{H}/treasures/claim/", {"code": "gate"}, format="json")
    assert unsolved.status_code == 403 and "detail" in unsolved.json()
    services.claim_treasure(team=rival[0], treasure=coin)
    gone = client.post(f"{H}/treasures/claim/", {"code": "SILVER-COIN-77"}, format="json")
    assert gone.status_code == 409
    assert gone.json() == {"detail": "No Silver Coin left: all 1 were found."}
    assert not TreasureFind.objects.filter(team__name="Gulls").exists()


# --- Query counts ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_correct_guess_request_runs_a_constant_number_of_queries(
    factories, client, puzzle, hunt, django_assert_num_queries
):
    # Other teams, puzzles and guesses must not change the count.
    for n in range(3):
        other = factories.MembershipFactory(team__hunt=hunt).team
        factories.AnswerFactory(puzzle=factories.PuzzleFactory(hunt=hunt, slug=f"extra-{n}"))
        services.submit_guess(team=other, user=None, puzzle_slug="lighthouse", text=f"wrong {n}")
    with django_assert_num_queries(GUESS_POST_QUERIES):
        response = post_guess(client, "BRIGHT BEAM")
    assert response.status_code == 201 and response.json()["status"] == "correct"


# token with the hunt and the caller's team (one statement); submit_guess: savepoint, team lock, puzzle
# (+ repeats, guess limit, answers, whether a solve may claim or unlock: here neither, so no rule or treasure
# query), guess insert, solve insert, events, team update, release. A guess judged inline is not read again.
# (On SQLite; on PostgreSQL the events and the team update are one statement.)
GUESS_POST_QUERIES = 9


@pytest.mark.django_db
def test_a_wrong_guess_request_runs_eight_queries_and_its_repeat_returns_the_original(
    client, puzzle, django_assert_num_queries
):
    # token with hunt and team; submit_guess's 7 (wrong guess: no solve, unlocks or treasures; on SQLite).
    with django_assert_num_queries(8):
        first = post_guess(client, "WRONG ONE")
    assert first.status_code == 201 and first.json()["status"] == "incorrect"
    # token with hunt and team; savepoint, team lock, puzzle, the original with its puzzle and user, release.
    with django_assert_num_queries(6):
        repeat = post_guess(client, "wrong one")  # the original comes back whole
    assert repeat.status_code == 200 and repeat.json() == first.json()


@pytest.mark.parametrize("teams", [2, 12])
@pytest.mark.django_db
def test_the_leaderboard_runs_a_constant_number_of_queries(factories, hunt, teams, django_assert_num_queries):
    for _ in range(teams):
        factories.MembershipFactory(team__hunt=hunt)
    with django_assert_num_queries(2):  # the hunt, the board (then cached)
        response = APIClient().get(f"{H}/leaderboard/")
    assert response.json()["count"] == teams
    with django_assert_num_queries(1):
        APIClient().get(f"{H}/leaderboard/")


@pytest.mark.parametrize("puzzles", [2, 12])
@pytest.mark.django_db
def test_the_puzzles_list_runs_a_constant_number_of_queries(
    factories, client, hunt, team, puzzles, django_assert_num_queries
):
    for n in range(puzzles):
        factories.PuzzleFactory(hunt=hunt, slug=f"p-{n}")
    with django_assert_num_queries(3):  # token with the hunt and the caller's team, count, page
        response = client.get(f"{H}/puzzles/")
    assert response.json()["count"] == puzzles


@pytest.mark.django_db
def test_a_pattern_answer_shows_the_text_the_team_solved_with(factories, hunt, client, team, player):
    puzzle = factories.PuzzleFactory(hunt=hunt, slug="tower", all_exact=False)
    pattern = {"pattern": "(the )?eiffel tower"}
    factories.AnswerFactory(puzzle=puzzle, kind=Answer.Kind.REGEX, parameters=pattern)
    guess = solve(team, player, slug="tower", answer="Eiffel Tower")
    services.judge_guess(guess_id=guess.pk)  # a pattern waits for the judge task

    assert client.get(f"{H}/puzzles/tower/").json()["answer"] == "Eiffel Tower"
    solved = Event.objects.get(team=team, kind="puzzle.solved")
    assert solved.data["answer"] == "Eiffel Tower"
