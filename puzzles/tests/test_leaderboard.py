"""The leaderboard: competition ranks, tie-breaks, who is on it, caching and its query cost."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from hunts.events import leaderboard_dirty_key, mark_leaderboard_dirty
from hunts.models import Team
from hunts.services import leave_team
from puzzles import leaderboard as board_module
from puzzles.leaderboard import leaderboard, public_rows, public_top, rank_of
from puzzles.services import submit_guess

pytestmark = pytest.mark.django_db

T0 = timezone.now() - timedelta(hours=1)


@pytest.fixture
def hunt(factories):
    return factories.HuntFactory()


@pytest.fixture
def make_team(factories, hunt):
    """A team with one member, a score, the time of its last score increase and a creation time."""

    def make(name, score=0, scored_minute=None, created_minute=0):
        team = factories.TeamFactory(
            hunt=hunt,
            name=name,
            score=score,
            last_scored_at=None if scored_minute is None else T0 + timedelta(minutes=scored_minute),
            created_at=T0 - timedelta(days=1) + timedelta(minutes=created_minute),
        )
        factories.MembershipFactory(team=team)
        return team

    return make


def ranks(hunt):
    return [(row["rank"], row["team"]["name"]) for row in leaderboard(hunt)]


def test_ranks_are_competition_ranks(hunt, make_team):
    make_team("D", 10, 4)
    make_team("A", 30, 1)
    make_team("B", 20, 2)
    make_team("C", 20, 2)

    assert ranks(hunt) == [(1, "A"), (2, "B"), (2, "C"), (4, "D")]


def test_equal_scores_are_ranked_by_the_earlier_last_score(hunt, make_team):
    make_team("Late", 20, 9)
    make_team("Early", 20, 3)

    assert ranks(hunt) == [(1, "Early"), (2, "Late")]


def test_teams_equal_on_score_and_time_share_a_rank_listed_by_creation(hunt, make_team):
    make_team("Second", 20, 5, created_minute=2)
    make_team("First", 20, 5, created_minute=1)
    make_team("Nothing", 0)
    make_team("Nothing either", 0, created_minute=-1)

    assert ranks(hunt) == [(1, "First"), (1, "Second"), (3, "Nothing either"), (3, "Nothing")]


def test_hidden_teams_and_teams_without_members_are_left_out(factories, hunt, make_team):
    make_team("Player", 10, 1)
    hidden = make_team("Staff", 99, 1)
    hidden.hidden = True
    hidden.save()
    factories.TeamFactory(hunt=hunt, name="Empty", score=50)
    factories.MembershipFactory()  # a team of another hunt

    assert ranks(hunt) == [(1, "Player")]
    assert rank_of(hunt, hidden) is None


def test_rows_carry_the_public_fields(hunt, make_team):
    team = make_team("A", 30, 1)
    team.solve_count = 3
    team.save()

    assert public_rows(leaderboard(hunt)) == [
        {
            "rank": 1,
            "team": {"slug": team.slug, "name": "A"},
            "score": 30,
            "solves": 3,
            "last_scored_at": (T0 + timedelta(minutes=1))
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
        }
    ]
    assert leaderboard(hunt)[0]["team_id"] == team.pk


def test_rank_of_a_team(hunt, make_team):
    make_team("A", 30, 1)
    b = make_team("B", 20, 1)

    assert rank_of(hunt, b) == 2


def test_board_is_cached_until_a_solve_commits(
    django_capture_on_commit_callbacks, factories, hunt, make_team
):
    team = make_team("A")
    make_team("B", 5, 1)
    puzzle = factories.PuzzleFactory(hunt=hunt, points=10)
    factories.AnswerFactory(puzzle=puzzle)
    assert ranks(hunt) == [(1, "B"), (2, "A")]

    with django_capture_on_commit_callbacks(execute=True):
        submit_guess(team=team, user=None, puzzle_slug=puzzle.slug, text="answer")
        assert ranks(hunt) == [(1, "B"), (2, "A")]  # not before the commit

    assert ranks(hunt) == [(1, "A"), (2, "B")]
    assert leaderboard(hunt)[0]["score"] == 10


def test_leaving_the_last_member_drops_the_team_from_the_cached_board(
    django_capture_on_commit_callbacks, hunt, make_team
):
    make_team("A", 10, 1)
    team = make_team("B", 5, 1)
    assert len(leaderboard(hunt)) == 2

    with django_capture_on_commit_callbacks(execute=True):
        leave_team(hunt=hunt, user=team.memberships.get().user)

    assert ranks(hunt) == [(1, "A")]


@pytest.mark.parametrize("teams", [3, 60])
def test_board_costs_one_query_whatever_the_number_of_teams(
    django_assert_num_queries, hunt, make_team, teams
):
    for n in range(teams):
        make_team(f"T{n}", n % 7, n % 5)

    with django_assert_num_queries(1):
        board = leaderboard(hunt)
    assert len(board) == teams

    with django_assert_num_queries(0):
        assert leaderboard(hunt) == board


def test_the_top_is_the_boards_first_rows_with_their_ranks_when_it_cuts_through_a_tie(hunt, make_team):
    make_team("Third", 20, 5, created_minute=3)
    make_team("Leader", 30, 1)
    make_team("Second", 20, 5, created_minute=2)
    make_team("Later", 20, 6)
    make_team("Nothing", 0)

    top = public_top(hunt, 3)

    assert [(row["rank"], row["team"]["name"]) for row in top] == [(1, "Leader"), (2, "Second"), (2, "Third")]
    assert top == leaderboard(hunt)[:3]


@pytest.mark.parametrize("teams", [3, 60])
def test_the_top_costs_one_query_of_its_rows_whatever_the_number_of_teams(
    django_assert_num_queries, hunt, make_team, teams
):
    for n in range(teams):
        make_team(f"T{n}", n % 7, n % 5)
    board = leaderboard(hunt)

    with django_assert_num_queries(1) as queries:
        top = public_top(hunt, 10)

    assert top == board[:10]
    assert "LIMIT 10" in queries.captured_queries[0]["sql"]


def test_the_clocks_push_reads_only_the_top_rows_not_the_whole_board(
    django_assert_num_queries, hunt, make_team
):
    for n in range(12):
        make_team(f"T{n}", n, n)
    cache.set(leaderboard_dirty_key(hunt.pk), 1)

    with django_assert_num_queries(1) as queries:
        assert board_module.push_if_changed(hunt)

    assert "LIMIT 10" in queries.captured_queries[0]["sql"]
    assert cache.get(f"lb:top:{hunt.pk}") == public_rows(leaderboard(hunt)[:10])


def test_a_board_computed_while_a_score_change_commits_is_not_served_afterwards(
    monkeypatch, django_capture_on_commit_callbacks, hunt, make_team
):
    team = make_team("A")
    make_team("B", 5, 1)
    compute = board_module.compute

    def compute_while_a_solve_commits(of_hunt):
        board = compute(of_hunt)
        with django_capture_on_commit_callbacks(execute=True):
            Team.objects.filter(pk=team.pk).update(score=10, last_scored_at=T0)
            mark_leaderboard_dirty(of_hunt.pk)
        return board

    monkeypatch.setattr(board_module, "compute", compute_while_a_solve_commits)
    assert ranks(hunt) == [(1, "B"), (2, "A")]  # read before the change committed
    monkeypatch.setattr(board_module, "compute", compute)

    assert ranks(hunt) == [(1, "A"), (2, "B")]
