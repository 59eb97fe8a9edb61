"""Admin wiring for hunts, teams and announcements: pages render, actions and forms call the services."""

from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME

from hunts.models import Announcement, Event, Membership, Team
from puzzles.models import Round
from testing.admin import admin_url as url

pytestmark = pytest.mark.django_db

HUNTS_MODELS = [m for m in apps.get_app_config("hunts").get_models() if admin.site.is_registered(m)]


@pytest.fixture
def hunt(factories):
    return factories.HuntFactory(slug="harbour", title="The Harbour")


@pytest.fixture
def team(factories, hunt):
    team = factories.TeamFactory(hunt=hunt, name="Gulls")
    factories.MembershipFactory(team=team)
    return team


def test_every_hunts_model_is_registered():
    assert {m.__name__ for m in HUNTS_MODELS} == {"Hunt", "Team", "Announcement", "Event"}


@pytest.mark.parametrize("model", HUNTS_MODELS, ids=lambda m: m.__name__)
def test_changelist_and_add_page_render(admin_client, admin_user, rf, team, model):
    Announcement.objects.create(hunt=team.hunt, text="Welcome")
    Event.objects.create(hunt=team.hunt, seq=1, kind="hunt.started")
    request = rf.get("/")
    request.user = admin_user

    assert admin_client.get(url(model, "changelist")).status_code == 200
    addable = admin.site.get_model_admin(model).has_add_permission(request)
    assert admin_client.get(url(model, "add")).status_code == (200 if addable else 403)
    obj = model.objects.first()
    assert admin_client.get(url(model, "change", obj.pk)).status_code == 200


def test_log_models_cannot_be_added_in_the_admin(admin_client):
    assert admin_client.get(url(Event, "add")).status_code == 403


def test_hunt_change_page_lists_rounds_and_announcements_read_only(admin_client, hunt):
    Round.objects.create(hunt=hunt, title="The Docks")
    Announcement.objects.create(hunt=hunt, text="Mind the tide")

    page = admin_client.get(url(type(hunt), "change", hunt.pk)).content.decode()

    assert 'value="The Docks"' in page
    assert "Mind the tide" in page
    assert 'name="announcements-0-text"' not in page  # shown, not editable


def test_hunt_that_ends_before_it_starts_is_a_form_error(admin_client, hunt):
    data = {
        "title": "Backwards",
        "slug": "backwards",
        "intro": "",
        "published": "on",
        "starts_at_0": "2030-01-02",
        "starts_at_1": "12:00:00",
        "ends_at_0": "2030-01-01",
        "ends_at_1": "12:00:00",
        "max_team_size": 4,
        "guess_limit_guesses": 20,
        "guess_limit_minutes": 10,
        **management_form("rounds"),
        **management_form("announcements"),
    }

    response = admin_client.post(url(type(hunt), "add"), data)

    assert response.status_code == 200
    assert "The hunt must end after it starts." in response.content.decode()
    assert not type(hunt).objects.filter(slug="backwards").exists()


def test_deleting_a_round_that_has_puzzles_from_the_hunt_page_is_refused(admin_client, factories, hunt):
    puzzle = factories.PuzzleFactory(hunt=hunt)
    data = hunt_change_data(hunt)
    data.update(
        {
            **management_form("rounds", total=1, initial=1),
            "rounds-0-id": puzzle.round_id,
            "rounds-0-hunt": hunt.pk,
            "rounds-0-title": puzzle.round.title,
            "rounds-0-order": 0,
            "rounds-0-DELETE": "on",
        }
    )

    response = admin_client.post(url(type(hunt), "change", hunt.pk), data)

    assert response.status_code == 200
    assert "still has puzzles" in response.content.decode()
    assert Round.objects.filter(pk=puzzle.round_id).exists()


def test_post_announcement_action_asks_for_the_text_then_posts_through_the_service(admin_client, hunt):
    changelist = url(type(hunt), "changelist")
    chosen = {"action": "post_announcement", ACTION_CHECKBOX_NAME: [hunt.pk]}

    ask = admin_client.post(changelist, {**chosen, "index": 0})
    assert ask.status_code == 200
    assert 'name="text"' in ask.content.decode()
    assert not Announcement.objects.exists()

    posted = admin_client.post(changelist, {**chosen, "post": "yes", "text": "  Low tide at noon. "})

    assert posted.status_code == 302
    announcement = Announcement.objects.get()
    assert (announcement.hunt, announcement.text) == (hunt, "Low tide at noon.")
    event = Event.objects.get(kind="announcement.posted")
    assert (event.hunt_id, event.team_id, event.seq) == (hunt.pk, None, 1)
    assert event.data == {"id": announcement.pk, "text": "Low tide at noon."}


def test_post_announcement_with_empty_text_shows_the_service_error(admin_client, hunt):
    response = admin_client.post(
        url(type(hunt), "changelist"),
        {"action": "post_announcement", ACTION_CHECKBOX_NAME: [hunt.pk], "post": "yes", "text": "   "},
    )

    assert response.status_code == 200
    assert "Write the announcement text." in response.content.decode()
    assert not Announcement.objects.exists()
    assert not Event.objects.exists()


def test_announcement_add_page_posts_through_the_service(admin_client, hunt):
    response = admin_client.post(url(Announcement, "add"), {"hunt": hunt.pk, "text": "Hello, hunters"})

    assert response.status_code == 302
    announcement = Announcement.objects.get()
    assert Event.objects.get(kind="announcement.posted").data == {
        "id": announcement.pk,
        "text": "Hello, hunters",
    }


def test_export_action_downloads_the_hunt_file(admin_client, hunt):
    response = admin_client.post(
        url(type(hunt), "changelist"),
        {"action": "export_hunt_file", ACTION_CHECKBOX_NAME: [hunt.pk], "index": 0},
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/yaml")
    assert response["Content-Disposition"] == 'attachment; filename="harbour.yaml"'
    assert response.content.decode().startswith("slug:")
    assert "harbour" in response.content.decode().splitlines()[0]


def test_export_action_with_two_hunts_selected_asks_for_one(admin_client, factories, hunt):
    other = factories.HuntFactory()

    response = admin_client.post(
        url(type(hunt), "changelist"),
        {"action": "export_hunt_file", ACTION_CHECKBOX_NAME: [hunt.pk, other.pk], "index": 0},
        follow=True,
    )

    assert "Select exactly one hunt to export." in response.content.decode()


def test_rotate_join_code_action_gives_the_team_a_new_code(admin_client, team):
    old = team.join_code

    response = admin_client.post(
        url(Team, "changelist"), {"action": "rotate_join_code", ACTION_CHECKBOX_NAME: [team.pk], "index": 0}
    )

    assert response.status_code == 302
    team.refresh_from_db()
    assert team.join_code != old
    assert len(team.join_code) == 8


def test_adding_a_team_creates_it_with_its_first_member(admin_client, user_factory, hunt):
    ann = user_factory(username="ann")

    response = admin_client.post(
        url(Team, "add"),
        {"hunt": hunt.pk, "name": "  Test   Solvers ", "first_member": "ann", "hidden": "on"},
    )

    assert response.status_code == 302
    team = Team.objects.get()
    assert (team.name, team.slug, team.hidden) == ("Test Solvers", "test-solvers", True)
    assert len(team.join_code) == 8
    assert list(team.memberships.values_list("user", flat=True)) == [ann.pk]
    assert Event.objects.get(team=team).kind == "member.joined"


def test_adding_a_team_whose_name_is_taken_shows_the_service_error(admin_client, user_factory, team):
    user_factory(username="bob")

    response = admin_client.post(
        url(Team, "add"), {"hunt": team.hunt_id, "name": "GULLS", "first_member": "bob"}
    )

    assert response.status_code == 200
    assert "A team named GULLS already exists in this hunt." in response.content.decode()
    assert Team.objects.count() == 1


def test_adding_a_team_for_an_unknown_user_is_a_form_error(admin_client, hunt):
    response = admin_client.post(
        url(Team, "add"), {"hunt": hunt.pk, "name": "Ghosts", "first_member": "nobody"}
    )

    assert response.status_code == 200
    assert "No user named “nobody”." in response.content.decode()
    assert not Team.objects.exists()


def test_renaming_a_team_to_a_taken_name_is_a_form_error(admin_client, factories, team):
    other = factories.TeamFactory(hunt=team.hunt, name="Terns")

    response = admin_client.post(url(Team, "change", other.pk), team_change_data(other, name="gulls"))

    assert response.status_code == 200
    assert "A team named gulls already exists in this hunt." in response.content.decode()
    other.refresh_from_db()
    assert other.name == "Terns"


def test_team_cannot_be_moved_to_another_hunt(admin_client, factories, team):
    elsewhere = factories.HuntFactory()

    response = admin_client.post(url(Team, "change", team.pk), team_change_data(team, hunt=elsewhere.pk))

    assert response.status_code == 302
    team.refresh_from_db()
    assert team.hunt_id != elsewhere.pk


def test_removing_a_member_on_the_team_page_goes_through_leave_team(admin_client, team):
    membership = team.memberships.get()
    data = team_change_data(team)
    data.update(
        {
            **management_form("memberships", total=1, initial=1),
            "memberships-0-id": membership.pk,
            "memberships-0-team": team.pk,
            "memberships-0-DELETE": "on",
        }
    )

    response = admin_client.post(url(Team, "change", team.pk), data)

    assert response.status_code == 302
    assert not Membership.objects.exists()
    event = Event.objects.get(team=team)
    assert (event.kind, event.data) == ("member.left", {"user": membership.user.username})


def test_team_scores_and_join_code_are_read_only(admin_client, team):
    page = admin_client.get(url(Team, "change", team.pk)).content.decode()

    assert team.join_code in page
    for field in ("score", "solve_count", "join_code", "event_seq", "last_scored_at"):
        assert f'name="{field}"' not in page


def management_form(prefix: str, *, total: int = 0, initial: int = 0) -> dict:
    return {
        f"{prefix}-TOTAL_FORMS": total,
        f"{prefix}-INITIAL_FORMS": initial,
        f"{prefix}-MIN_NUM_FORMS": 0,
        f"{prefix}-MAX_NUM_FORMS": 1000,
    }


def hunt_change_data(hunt) -> dict:
    starts, ends = hunt.starts_at, hunt.ends_at or hunt.starts_at + timedelta(days=1)
    return {
        "title": hunt.title,
        "slug": hunt.slug,
        "intro": hunt.intro,
        "published": "on",
        "starts_at_0": starts.strftime("%Y-%m-%d"),
        "starts_at_1": starts.strftime("%H:%M:%S"),
        "ends_at_0": ends.strftime("%Y-%m-%d"),
        "ends_at_1": ends.strftime("%H:%M:%S"),
        "max_team_size": hunt.max_team_size,
        "guess_limit_guesses": hunt.guess_limit_guesses,
        "guess_limit_minutes": hunt.guess_limit_minutes,
        **management_form("rounds"),
        **management_form(
            "announcements", total=hunt.announcements.count(), initial=hunt.announcements.count()
        ),
    }


def team_change_data(team, **changes) -> dict:
    data = {"hunt": team.hunt_id, "name": team.name, **management_form("memberships")}
    if team.hidden:
        data["hidden"] = "on"
    memberships = list(team.memberships.all())
    data.update(management_form("memberships", total=len(memberships), initial=len(memberships)))
    for i, membership in enumerate(memberships):
        data[f"memberships-{i}-id"] = membership.pk
        data[f"memberships-{i}-team"] = team.pk
    data.update(changes)
    return data
