"""A socket's connect reads its user, hunt and team in one statement (hunts.services.stream_access): it must
return what the ORM reads it replaces return (hunts.middleware.user_for_token, get_hunt, team_of).
Runs on SQLite in the fast tier and on PostgreSQL in the integration tier.
"""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authtoken.models import Token

from hunts.errors import NotFound
from hunts.middleware import user_for_token
from hunts.models import Hunt, Team
from hunts.services import get_hunt, stream_access, team_of
from testing import factories

SLUGS = ["harbour", "backstage", "elsewhere", "nowhere"]


def build_world() -> SimpleNamespace:
    now = timezone.now()
    harbour = factories.HuntFactory(slug="harbour", intro="Welcome", guess_limit_guesses=None)
    backstage = factories.HuntFactory(slug="backstage", published=False)
    elsewhere = factories.HuntFactory(slug="elsewhere")
    team = factories.TeamFactory(
        hunt=harbour, name="Alpha", event_seq=7, score=30, solve_count=2, last_scored_at=now, hidden=True
    )
    users = {
        "member": factories.MembershipFactory(team=team).user,
        "stranger": factories.UserFactory(),
        "elsewhere": factories.MembershipFactory(team__hunt=elsewhere).user,
        "backstage-player": factories.MembershipFactory(team__hunt=backstage).user,
        "staff": factories.UserFactory(is_staff=True, first_name="Sam", email="sam@example.com"),
        "inactive": factories.UserFactory(is_active=False),
    }
    factories.MembershipFactory(team__hunt=backstage, user=users["staff"])
    factories.MembershipFactory(team__hunt=elsewhere, user=users["member"])
    factories.MembershipFactory(team__hunt=harbour, user=users["inactive"])
    tokens = {name: Token.objects.create(user=user).key for name, user in users.items()}
    return SimpleNamespace(harbour=harbour, backstage=backstage, team=team, users=users, tokens=tokens)


def orm_access(user, slug: str):
    """What the connect read before: the token's (or session's) user, get_hunt, team_of."""
    if not user.is_authenticated:
        return None, None, None
    try:
        hunt = get_hunt(slug=slug, user=user)
    except NotFound:
        return user, None, None
    return user, hunt, team_of(hunt=hunt, user=user)


def values(obj) -> dict | None:
    """Every column's value and its Python type, as the instance holds it."""
    if obj is None:
        return None
    return {
        f.attname: (getattr(obj, f.attname), type(getattr(obj, f.attname))) for f in obj._meta.concrete_fields
    }


def assert_same(found: tuple, expected: tuple, case) -> None:
    assert [type(obj) for obj in found] == [type(obj) for obj in expected], case
    assert [values(obj) for obj in found] == [values(obj) for obj in expected], case
    user, hunt, team = found
    if team is not None:
        assert team.hunt is hunt, case  # set from the same row: reading it costs no query


def one_statement(**kwargs) -> tuple:
    with CaptureQueriesContext(connection) as queries:
        found = stream_access(**kwargs)
    assert len(queries) == 1, [q["sql"] for q in queries]
    return found


def check_by_token_matches_the_orm():
    world = build_world()
    for name, key in [*world.tokens.items(), ("unknown", "0" * 40)]:
        for slug in SLUGS:
            found = one_statement(hunt_slug=slug, token_key=key)
            assert_same(found, orm_access(user_for_token(key), slug), (name, slug))


def check_by_session_user_matches_the_orm():
    world = build_world()
    User = get_user_model()
    for name, user in world.users.items():
        for slug in SLUGS:
            found = one_statement(hunt_slug=slug, user=User.objects.get(pk=user.pk))
            # Django's session backend gives no user for an inactive account (ModelBackend.get_user).
            session_user = user if user.is_active else AnonymousUser()
            assert_same(found, orm_access(session_user, slug), (name, slug))


def check_the_rules_of_who_gets_what():
    world = build_world()
    tokens, users, harbour, backstage = world.tokens, world.users, world.harbour, world.backstage

    def pks(found):
        return tuple(obj and obj.pk for obj in found)

    assert stream_access(hunt_slug="harbour", token_key="0" * 40) == (None, None, None)
    assert stream_access(hunt_slug="harbour", token_key=tokens["inactive"]) == (None, None, None)
    assert stream_access(hunt_slug="harbour", user=users["inactive"]) == (None, None, None)
    assert stream_access(hunt_slug="harbour", user=AnonymousUser()) == (None, None, None)
    assert stream_access(hunt_slug="harbour") == (None, None, None)
    assert pks(stream_access(hunt_slug="nowhere", token_key=tokens["member"])) == (
        users["member"].pk,
        None,
        None,
    )
    assert pks(stream_access(hunt_slug="backstage", token_key=tokens["backstage-player"])) == (
        users["backstage-player"].pk,
        None,
        None,
    )
    staff_team = Team.objects.get(hunt=backstage, memberships__user=users["staff"])
    assert pks(stream_access(hunt_slug="backstage", token_key=tokens["staff"])) == (
        users["staff"].pk,
        backstage.pk,
        staff_team.pk,
    )
    assert pks(stream_access(hunt_slug="harbour", token_key=tokens["staff"])) == (
        users["staff"].pk,
        harbour.pk,
        None,
    )
    assert pks(stream_access(hunt_slug="harbour", token_key=tokens["stranger"])) == (
        users["stranger"].pk,
        harbour.pk,
        None,
    )
    assert pks(stream_access(hunt_slug="harbour", token_key=tokens["elsewhere"])) == (
        users["elsewhere"].pk,
        harbour.pk,
        None,
    )
    user, hunt, team = stream_access(hunt_slug="harbour", token_key=tokens["member"])
    assert (user.pk, hunt.pk, team.pk) == (users["member"].pk, harbour.pk, world.team.pk)
    assert (team.name, team.slug, team.event_seq, team.score, team.solve_count, team.hidden) == (
        "Alpha",
        "alpha",
        7,
        30,
        2,
        True,
    )
    assert team.last_scored_at == world.team.last_scored_at
    assert isinstance(hunt, Hunt) and hunt.intro == "Welcome" and hunt.guess_limit_guesses is None
    assert (hunt.ends_at - hunt.starts_at) == timedelta(days=1, hours=1)


@pytest.mark.django_db
def test_by_token_matches_the_orm():
    check_by_token_matches_the_orm()


@pytest.mark.django_db
def test_by_session_user_matches_the_orm():
    check_by_session_user_matches_the_orm()


@pytest.mark.django_db
def test_the_rules_of_who_gets_what():
    check_the_rules_of_who_gets_what()


@pytest.mark.integration
@pytest.mark.django_db
@pytest.mark.parametrize(
    "check",
    [check_by_token_matches_the_orm, check_by_session_user_matches_the_orm, check_the_rules_of_who_gets_what],
)
def test_stream_access_matches_the_orm_on_postgresql(check):
    assert connection.vendor == "postgresql"
    check()


STOCK_TOKEN_AUTH = "rest_framework.authentication.TokenAuthentication"
API_PATHS = ["/api/hunts/", "/api/hunts/{slug}/", "/api/hunts/{slug}/team/", "/api/hunts/{slug}/puzzles/"]


def api_answers(world, settings, authentication: str) -> dict:
    from rest_framework.test import APIClient

    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_AUTHENTICATION_CLASSES": [authentication]}
    answers = {}
    for name, key in [*world.tokens.items(), ("unknown", "f" * 40)]:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        for path in API_PATHS:
            for slug in SLUGS:
                response = client.get(path.format(slug=slug))
                answers[(name, path, slug)] = (response.status_code, response.json())
    return answers


def check_token_authentication_answers_as_drfs_own(settings):
    """hunts.authentication reads the caller with the hunt and team (services.token_access): every API
    answer, for every caller and hunt of the world, must be what DRF's own TokenAuthentication gives."""
    world = build_world()
    ours = api_answers(world, settings, "hunts.authentication.TokenAuthentication")
    stock = api_answers(world, settings, STOCK_TOKEN_AUTH)
    assert ours == stock
    assert ours[("inactive", "/api/hunts/", "harbour")] == (401, {"detail": "User inactive or deleted."})
    assert ours[("unknown", "/api/hunts/{slug}/", "harbour")] == (401, {"detail": "Invalid token."})
    assert ours[("member", "/api/hunts/{slug}/team/", "harbour")][0] == 200
    assert ours[("stranger", "/api/hunts/{slug}/team/", "harbour")][0] == 404


@pytest.mark.django_db
def test_token_authentication_answers_as_drfs_own(settings):
    check_token_authentication_answers_as_drfs_own(settings)


@pytest.mark.integration
@pytest.mark.django_db
def test_token_authentication_answers_as_drfs_own_on_postgresql(settings):
    check_token_authentication_answers_as_drfs_own(settings)


@pytest.mark.django_db
def test_a_hunt_scoped_request_reads_caller_hunt_and_team_in_one_statement():
    from rest_framework.test import APIClient

    world = build_world()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {world.tokens['member']}")
    with CaptureQueriesContext(connection) as queries:
        response = api.get("/api/hunts/harbour/team/")
    assert response.status_code == 200 and response.json()["name"] == "Alpha"
    token_table = Token._meta.db_table
    assert sum(token_table in q["sql"] for q in queries) == 1
    assert sum(Team._meta.db_table in q["sql"] for q in queries) >= 1
    assert token_table in queries[0]["sql"] and Team._meta.db_table in queries[0]["sql"]
