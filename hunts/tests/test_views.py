"""Pages of the event and its people: hunt list, hunt home, team pages and the staff live view."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from hunts.models import Announcement, Hunt, Membership, Team
from puzzles.models import Guess, HintRequest, Solve, TreasureFind, Unlock

pytestmark = pytest.mark.django_db


def url(name, hunt="harbour", **kwargs):
    return reverse(f"hunts:{name}", kwargs={"hunt": hunt, **kwargs})


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def game(factories):
    hunt = factories.HuntFactory(slug="harbour", title="The Harbour", intro="Find **Maud**.", max_team_size=2)
    quay = factories.RoundFactory(hunt=hunt, title="The Quay", order=1)
    rock = factories.RoundFactory(hunt=hunt, title="Gull Rock", order=2)
    first = factories.PuzzleFactory(hunt=hunt, round=quay, slug="chalkboard", title="Chalkboard", points=10)
    second = factories.PuzzleFactory(hunt=hunt, round=rock, slug="morse", title="Flashes", points=15)
    locked = factories.PuzzleFactory(
        hunt=hunt, round=rock, slug="meta", title="Where Is Maud", points=40, has_rules=True, order=9
    )
    user = factories.UserFactory(username="ann")
    team = factories.MembershipFactory(team__hunt=hunt, team__name="Gulls", user=user).team
    return SimpleNamespace(hunt=hunt, first=first, second=second, locked=locked, user=user, team=team)


@pytest.fixture
def player(client, game):
    client.force_login(game.user)
    return client


# --- Hunt list ---------------------------------------------------------------------------------


def test_hunt_list_groups_hunts_by_state_with_links(client, factories):
    now = timezone.now()
    factories.HuntFactory(slug="soon", title="Soon Hunt", starts_at=now + timedelta(days=1))
    factories.HuntFactory(slug="live", title="Live Hunt")
    factories.HuntFactory(
        slug="over", title="Old Hunt", starts_at=now - timedelta(days=3), ends_at=now - timedelta(days=2)
    )
    factories.HuntFactory(slug="secret", title="Secret Hunt", published=False)

    response = client.get(reverse("hunts:list"))

    assert response.status_code == 200
    sections = {key: [h.slug for h in hunts] for key, _, hunts in response.context["sections"]}
    assert sections == {"running": ["live"], "upcoming": ["soon"], "ended": ["over"]}
    html = response.content.decode()
    assert f'href="{url("detail", "live")}"' in html
    assert "Secret Hunt" not in html


def test_staff_see_unpublished_hunts_in_the_list(client, factories):
    factories.HuntFactory(slug="secret", title="Secret Hunt", published=False)
    client.force_login(factories.UserFactory(is_staff=True))

    assert "Secret Hunt" in client.get(reverse("hunts:list")).content.decode()


# --- Hunt home ---------------------------------------------------------------------------------


def test_hunt_home_for_a_member_shows_team_panel_puzzles_by_round_and_live_hooks(player, factories, game):
    factories.MembershipFactory(team=game.team, user__username="bob")
    Solve.objects.create(team=game.team, puzzle=game.first, points=10)
    Team.objects.filter(pk=game.team.pk).update(score=10, solve_count=1, last_scored_at=timezone.now())
    treasure = factories.TreasureFactory(hunt=game.hunt, name="Silver Sixpence")
    TreasureFind.objects.create(treasure=treasure, team=game.team, rank=1, points=5)
    Announcement.objects.create(hunt=game.hunt, text="Welcome aboard!")

    response = player.get(url("detail"))

    assert response.status_code == 200
    html = response.content.decode()
    assert '<body data-hunt="harbour" data-ws="/ws/hunts/harbour/"' in html
    assert 'id="team-panel"' in html and 'id="puzzle-list"' in html and 'id="announcements"' in html
    assert response.context["members"] == ["ann", "bob"]
    assert game.team.join_code in html
    assert response.context["rank"] == 1
    assert 'data-field="score">10<' in html
    rounds = [(r["round"].title, [p.slug for p in r["puzzles"]]) for r in response.context["rounds"]]
    assert rounds == [("The Quay", ["chalkboard"]), ("Gull Rock", ["morse"])]
    assert 'data-puzzle="chalkboard" data-solved="true" data-points="10"' in html
    assert 'data-puzzle="morse" data-solved="false" data-points="15"' in html
    assert "Where Is Maud" not in html
    assert "Silver Sixpence" in html and "finder #1" in html
    assert "Welcome aboard!" in html
    assert "<strong>Maud</strong>" in html


def test_hunt_home_shows_a_puzzle_once_unlocked(player, game):
    Unlock.objects.create(team=game.team, puzzle=game.locked)

    assert 'data-puzzle="meta"' in player.get(url("detail")).content.decode()


def test_hunt_home_without_a_team_offers_create_and_join(client, factories, game):
    client.force_login(factories.UserFactory())

    response = client.get(url("detail"))

    html = response.content.decode()
    assert url("team_create") in html and url("team_join") in html
    assert 'id="team-panel"' not in html and "Chalkboard" not in html


def test_hunt_home_is_readable_anonymously(client, game):
    response = client.get(url("detail"))

    assert response.status_code == 200
    assert reverse("accounts:signup") in response.content.decode()


def test_upcoming_hunt_shows_a_server_rendered_countdown_and_no_puzzles(player, game):
    Hunt.objects.filter(pk=game.hunt.pk).update(
        starts_at=timezone.now() + timedelta(hours=2, minutes=5), ends_at=timezone.now() + timedelta(days=1)
    )

    response = player.get(url("detail"))

    html = response.content.decode()
    assert 'id="countdown"' in html
    assert "2 h 4 min" in html or "2 h 5 min" in html
    assert "Chalkboard" not in html
    assert "Puzzles open when the hunt starts." in html


def test_unknown_or_unpublished_hunt_is_404(client, factories):
    factories.HuntFactory(slug="secret", published=False)

    assert client.get(url("detail", "nope")).status_code == 404
    response = client.get(url("detail", "secret"))
    assert response.status_code == 404
    assert "No hunt &#x27;secret&#x27;." in response.content.decode()


# --- Team pages -----------------------------------------------------------------------------------


@pytest.fixture
def newcomer(client, factories, game):
    client.force_login(factories.UserFactory(username="cat"))
    return client


def test_team_pages_need_a_login(client, game):
    for name in ("team_create", "team_join", "team_leave"):
        response = client.get(url(name))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_create_team_redirects_to_the_hunt_with_the_new_team(newcomer, game):
    assert newcomer.get(url("team_create")).status_code == 200

    response = newcomer.post(url("team_create"), {"name": "Puffins"})

    assert response.status_code == 302
    assert response["Location"] == url("detail")
    team = Team.objects.get(name="Puffins")
    assert Membership.objects.filter(team=team, user__username="cat").exists()
    page = newcomer.get(response["Location"])
    assert f"Team Puffins is ready. Share the join code {team.join_code}." in messages_of(page)


def test_create_team_with_a_taken_name_is_a_field_error(newcomer, game):
    response = newcomer.post(url("team_create"), {"name": "gulls"})

    assert response.status_code == 400
    assert response.context["form"].errors["name"] == ["A team named gulls already exists in this hunt."]
    assert "already exists" in response.content.decode()


def test_create_team_with_a_blank_name_is_a_field_error(newcomer, game):
    response = newcomer.post(url("team_create"), {"name": ""})

    assert response.status_code == 400
    assert response.context["form"].errors["name"]


def test_join_with_a_wrong_code_is_a_field_error(newcomer, game):
    response = newcomer.post(url("team_join"), {"join_code": "ZZZZZZZZ"})

    assert response.status_code == 400
    assert response.context["form"].errors["join_code"] == ["No team in this hunt has that join code."]


def test_join_with_a_code_redirects_to_the_hunt(newcomer, game):
    response = newcomer.post(url("team_join"), {"join_code": game.team.join_code.lower()})

    assert response.status_code == 302
    assert Membership.objects.filter(team=game.team, user__username="cat").exists()


def test_join_link_fills_in_the_code(newcomer, game):
    response = newcomer.get(url("team_join") + f"?join_code={game.team.join_code}")

    assert f'value="{game.team.join_code}"' in response.content.decode()


def test_join_a_full_team_is_a_form_error(newcomer, factories, game):
    factories.MembershipFactory(team=game.team)

    response = newcomer.post(url("team_join"), {"join_code": game.team.join_code})

    assert response.status_code == 400
    assert response.context["form"].non_field_errors() == ["Team Gulls is full (2 members)."]


def test_second_team_in_the_same_hunt_is_refused(player, factories, game):
    other = factories.TeamFactory(hunt=game.hunt, name="Terns")
    page = player.get(url("team_join")).content.decode()
    assert "You are on team <strong>Gulls</strong> in this hunt." in page

    response = player.post(url("team_join"), {"join_code": other.join_code})

    assert response.status_code == 400
    assert response.context["form"].non_field_errors() == [
        "You are already on team Gulls in this hunt; leave it first."
    ]
    assert not Membership.objects.filter(team=other).exists()
    response = player.post(url("team_create"), {"name": "Puffins"})
    assert response.status_code == 400
    assert not Team.objects.filter(name="Puffins").exists()


def test_join_after_the_hunt_ended_is_refused_with_a_message(newcomer, game):
    Hunt.objects.filter(pk=game.hunt.pk).update(
        starts_at=timezone.now() - timedelta(days=2), ends_at=timezone.now() - timedelta(days=1)
    )

    response = newcomer.post(url("team_join"), {"join_code": game.team.join_code})

    assert response.status_code == 403
    assert messages_of(response)[0].startswith("The hunt ended at")


def test_leave_asks_to_confirm_then_leaves_on_post(player, game):
    page = player.get(url("team_leave"))
    assert page.status_code == 200
    assert "Leave Gulls?" in page.content.decode()

    response = player.post(url("team_leave"))

    assert response.status_code == 302
    assert not Membership.objects.filter(user=game.user).exists()
    assert "You left team Gulls." in messages_of(player.get(response["Location"]))


def test_non_member_cannot_see_the_leave_page(newcomer, game):
    assert newcomer.get(url("team_leave")).status_code == 404
    assert newcomer.post(url("team_leave")).status_code == 404


# --- Staff live view ---------------------------------------------------------------------------------


@pytest.fixture
def staff(client, factories, game):
    client.force_login(factories.UserFactory(username="sam", is_staff=True))
    return client


def test_staff_view_is_403_for_players_and_login_for_anonymous(client, player, game):
    assert player.get(url("staff")).status_code == 403
    assert player.post(url("staff_announce"), {"text": "Hi"}).status_code == 403
    assert not Announcement.objects.exists()
    player.logout()
    response = client.get(url("staff"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_staff_view_shows_guesses_queue_and_progress_grid(staff, factories, game):
    Guess.objects.create(team=game.team, puzzle=game.first, text="LANTERN", key="lantern", status="correct")
    Solve.objects.create(team=game.team, puzzle=game.first, points=10)
    HintRequest.objects.create(team=game.team, puzzle=game.second, user=game.user, question="Is it Morse?")

    response = staff.get(url("staff"))

    assert response.status_code == 200
    html = response.content.decode()
    assert "LANTERN" in html and "Is it Morse?" in html
    [row] = response.context["grid"]
    assert [c["state"] for c in row["cells"]] == ["solved", "open", "locked"]
    assert 'data-state="solved"' in html and 'data-state="locked"' in html


def test_staff_post_an_announcement(staff, game):
    response = staff.post(url("staff_announce"), {"text": "Fog tonight."})

    assert response.status_code == 302
    assert Announcement.objects.get().text == "Fog tonight."


def test_staff_empty_announcement_is_a_field_error(staff, game):
    response = staff.post(url("staff_announce"), {"text": ""})

    assert response.status_code == 400
    assert response.context["announcement_form"].errors["text"]


def test_staff_answer_a_hint_request(staff, game):
    request = HintRequest.objects.create(team=game.team, puzzle=game.second, question="Is it Morse?")

    response = staff.post(
        url("staff_answer_hint", request_id=request.pk), {f"r{request.pk}-answer": "It is."}
    )

    assert response.status_code == 302
    request.refresh_from_db()
    assert (request.status, request.answer) == ("answered", "It is.")
    assert staff.get(url("staff")).context["hint_requests"] == []


def test_staff_answer_without_text_is_a_field_error_on_that_request(staff, game):
    request = HintRequest.objects.create(team=game.team, puzzle=game.second, question="Is it Morse?")

    response = staff.post(url("staff_answer_hint", request_id=request.pk), {f"r{request.pk}-answer": ""})

    assert response.status_code == 400
    [shown] = response.context["hint_requests"]
    assert shown.form.errors["answer"]


def test_staff_answer_to_unknown_request_is_404(staff, game):
    assert staff.post(url("staff_answer_hint", request_id=999), {"r999-answer": "x"}).status_code == 404


# --- Query counts --------------------------------------------------------------------------------------

# session, user, hunt with the user's team (one statement), announcements, members, leaderboard (cold
# cache), puzzles, finds, errata.
HUNT_HOME_QUERIES = 9


@pytest.mark.parametrize("size", [0, 40], ids=["small", "large"])
def test_hunt_home_query_count_is_constant(player, factories, game, django_assert_num_queries, size):
    treasure = factories.TreasureFactory(hunt=game.hunt)
    TreasureFind.objects.create(treasure=treasure, team=game.team, rank=1)
    for n in range(size):
        team = factories.MembershipFactory(team__hunt=game.hunt).team
        Solve.objects.create(team=team, puzzle=game.first, points=10)
        Guess.objects.create(
            team=game.team, puzzle=game.second, text=f"g{n}", key=f"g{n}", status="incorrect"
        )
        Announcement.objects.create(hunt=game.hunt, text=f"News {n}")
        Unlock.objects.create(team=team, puzzle=game.locked)
    cache.clear()

    with django_assert_num_queries(HUNT_HOME_QUERIES):
        response = player.get(url("detail"))

    assert response.status_code == 200
    assert len(response.context["finds"]) == 1


# session, user, hunt with staff's team (one statement), team count, teams page, puzzles, unlocks, solves,
# open requests, latest guesses, announcements.
STAFF_VIEW_QUERIES = 11


@pytest.mark.parametrize("size", [0, 20], ids=["small", "large"])
def test_staff_view_query_count_is_constant(staff, factories, game, django_assert_num_queries, size):
    for n in range(size):
        team = factories.MembershipFactory(team__hunt=game.hunt).team
        Solve.objects.create(team=team, puzzle=game.first, points=10)
        Guess.objects.create(team=team, puzzle=game.first, text=f"g{n}", key=f"g{n}", status="incorrect")
        HintRequest.objects.create(team=team, puzzle=game.first, question=f"q{n}")

    with django_assert_num_queries(STAFF_VIEW_QUERIES):
        response = staff.get(url("staff"))

    assert len(response.context["grid"]) == size + 1
