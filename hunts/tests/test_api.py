"""REST API wiring of hunts: token and login throttle, hunts, teams, announcements, events, errors, schema."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from hunts import services
from hunts.errors import RateLimited
from hunts.models import Membership
from hunts.throttling import login_attempt
from testing.api import client_of

TOKEN_URL = "/api/auth/token/"


@pytest.fixture
def team(factories, hunt):
    return factories.TeamFactory(hunt=hunt, name="Gulls")


@pytest.fixture
def member(factories, team):
    return factories.MembershipFactory(team=team).user


@pytest.fixture
def staff(factories):
    return factories.UserFactory(is_staff=True)


def login(client, username, password, address="10.0.0.1"):
    return client.post(
        TOKEN_URL, {"username": username, "password": password}, format="json", REMOTE_ADDR=address
    )


# --- Token and the failed-login throttle ----------------------------------------------------


@pytest.mark.django_db
def test_token_endpoint_returns_the_same_token_for_each_login(user_factory):
    user = user_factory(username="ann")
    first = login(APIClient(), "ann", "pw")
    second = login(APIClient(), "ann", "pw")
    assert first.status_code == 200 and second.status_code == 200
    assert first.json() == {"token": Token.objects.get(user=user).key} == second.json()


@pytest.mark.django_db
def test_token_authenticates_api_requests(user_factory):
    user_factory(username="ann")
    token = login(APIClient(), "ann", "pw").json()["token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/hunts/").status_code == 200


@pytest.mark.django_db
def test_wrong_password_is_400_with_a_detail(user_factory):
    user_factory(username="ann")
    response = login(APIClient(), "ann", "nope")
    assert response.status_code == 400
    assert response.json() == {"detail": "Wrong username or password."}


@pytest.mark.django_db
def test_token_endpoint_rejects_missing_fields_and_non_json(user_factory):
    client = APIClient()
    missing = client.post(TOKEN_URL, {"username": "ann"}, format="json")
    assert missing.status_code == 400
    assert "password" in missing.json()
    garbage = client.post(TOKEN_URL, data="{not json", content_type="application/json")
    assert garbage.status_code == 400
    assert "detail" in garbage.json()


@pytest.mark.django_db
def test_eleventh_failure_for_a_pair_is_429_even_with_the_right_password(user_factory):
    user_factory(username="ann")
    client = APIClient()
    for _ in range(10):
        assert login(client, "ann", "wrong").status_code == 400
    response = login(client, "ann", "pw")
    assert response.status_code == 429
    body = response.json()
    assert body["retry_after"] >= 1
    assert int(response["Retry-After"]) == body["retry_after"]
    assert set(body) == {"detail", "retry_after"}
    # Another address is another pair.
    assert login(client, "ann", "pw", address="10.0.0.2").status_code == 200


@pytest.mark.django_db
def test_forty_different_users_from_one_address_all_sign_in(user_factory):
    client = APIClient()
    for n in range(40):
        user_factory(username=f"walker{n}")
        assert login(client, f"walker{n}", "pw").status_code == 200


@pytest.mark.django_db
def test_failures_across_usernames_from_one_address_are_capped(user_factory, settings):
    user_factory(username="ann")
    client = APIClient()
    for n in range(settings.LOGIN_FAILURES_PER_ADDRESS):
        assert login(client, f"guess{n}", "x").status_code == 400
    assert login(client, "ann", "pw").status_code == 429
    assert login(client, "ann", "pw", address="10.0.0.2").status_code == 200


@pytest.mark.django_db
def test_throttled_pair_is_let_in_again_after_the_window(user_factory, monkeypatch):
    user_factory(username="ann")
    client = APIClient()
    clock = {"now": 1_000_000 * 900.0}  # the start of a window: the worst case
    monkeypatch.setattr("hunts.throttling._now", lambda: clock["now"])
    for _ in range(10):
        login(client, "ann", "wrong")
    response = login(client, "ann", "pw")
    assert response.status_code == 429
    clock["now"] += response.json()["retry_after"] - 1
    assert login(client, "ann", "pw").status_code == 429
    clock["now"] += 1
    assert login(client, "ann", "pw").status_code == 200


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("LocMemCache", id="locmem"),
        pytest.param("RedisCache", id="redis", marks=pytest.mark.integration),
    ],
)
def test_attempts_sent_in_parallel_past_the_limit_are_refused_before_their_password_is_checked(
    settings, backend
):
    """Ten wrong passwords at once for a pair allowed three: three are checked, seven refused with 429."""
    # The tier's cache: in memory, or Redis as in production.
    assert type(caches["default"]).__name__ == backend
    settings.LOGIN_FAILURES_PER_PAIR = 3
    together = threading.Barrier(10)
    checked = []

    def attempt() -> int:
        together.wait()
        try:
            with login_attempt("ann", "10.0.0.9") as current:
                checked.append(1)
                time.sleep(0.2)  # the password's hash, while the others arrive
                current.failed()
        except RateLimited:
            return 429
        return 400

    with ThreadPoolExecutor(10) as pool:
        codes = sorted(pool.map(lambda _: attempt(), range(10)))

    assert codes == [400] * 3 + [429] * 7
    assert len(checked) == 3


def test_only_wrong_passwords_stay_counted(settings):
    settings.LOGIN_FAILURES_PER_PAIR = 2
    address = "10.0.0.8"
    with login_attempt("ann", address):
        pass  # the right password
    with pytest.raises(ZeroDivisionError), login_attempt("ann", address):
        1 / 0  # an error while checking it
    for _ in range(2):
        with login_attempt("ann", address) as current:
            current.failed()

    with pytest.raises(RateLimited), login_attempt("ann", address):
        pytest.fail("a throttled attempt's body must not run")


def test_an_attempt_refused_only_for_attempts_still_being_checked_may_retry_in_a_second(settings):
    """One failure short of the limit, a second attempt while the first is checked waits 1 s, not a window."""
    settings.LOGIN_FAILURES_PER_PAIR = 2
    address = "10.0.0.7"
    with login_attempt("ann", address) as current:
        current.failed()

    # The right password, being checked, and meanwhile another attempt.
    with login_attempt("ann", address), pytest.raises(RateLimited) as refused, login_attempt("ann", address):
        pytest.fail("refused: the attempt being checked may still fail")
    assert refused.value.retry_after == 1

    with login_attempt("ann", address):
        pass  # the first one was right: the pair is one failure short again


def test_a_cache_failing_while_an_attempt_ends_does_not_fail_the_sign_in(settings, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise ConnectionError("cache down")

    with login_attempt("ann", "10.0.0.6"):
        monkeypatch.setattr(caches["default"], "decr", broken)
    assert "could not give back" in caplog.text


def test_an_attempt_that_fails_to_start_leaves_nothing_counted(settings, monkeypatch):
    settings.LOGIN_FAILURES_PER_PAIR = 1
    real = caches["default"].get_many

    def broken(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(caches["default"], "get_many", broken)
    with pytest.raises(ConnectionError), login_attempt("ann", "10.0.0.5"):
        pass
    monkeypatch.setattr(caches["default"], "get_many", real)

    with login_attempt("ann", "10.0.0.5"):
        pass  # not refused: the failed start left no attempt being checked


# --- Anonymous, unknown paths, bad input ---------------------------------------------------------


@pytest.mark.django_db
def test_anonymous_callers_get_401_everywhere_but_the_leaderboard(hunt):
    client = APIClient()
    h = "/api/hunts/harbour"
    p = f"{h}/puzzles/lighthouse"
    endpoints = [
        ("get", "/api/hunts/"),
        ("get", f"{h}/"),
        ("post", f"{h}/teams/"),
        ("post", f"{h}/teams/join/"),
        ("get", f"{h}/team/"),
        ("post", f"{h}/team/leave/"),
        ("get", f"{h}/puzzles/"),
        ("get", f"{p}/"),
        ("post", f"{p}/guesses/"),
        ("get", f"{h}/guesses/"),
        ("get", f"{h}/guesses/1/"),
        ("post", f"{p}/hints/1/unlock/"),
        ("get", f"{p}/hint-requests/"),
        ("post", f"{p}/hint-requests/"),
        ("get", f"{h}/treasures/"),
        ("post", f"{h}/treasures/claim/"),
        ("get", f"{h}/announcements/"),
        ("post", f"{h}/announcements/"),
        ("get", f"{h}/events/"),
    ]
    for method, url in endpoints:
        response = getattr(client, method)(url, {}, format="json")
        assert response.status_code == 401, (method, url)
        assert "detail" in response.json()
        assert response["WWW-Authenticate"].startswith("Token")
    assert client.get(f"{h}/leaderboard/").status_code == 200


@pytest.mark.django_db
def test_a_bad_token_is_401_even_on_the_public_leaderboard(hunt):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token nonsense")
    assert client.get("/api/hunts/harbour/leaderboard/").status_code == 401


@pytest.mark.django_db
def test_unknown_api_paths_are_json_404(member):
    client = client_of(member)
    for url in ["/api/nothing/", "/api/hunts/harbour/guesses/abc/", "/api/hunts/Not A Slug/"]:
        response = client.get(url)
        assert response.status_code == 404
        assert response.json() == {"detail": "Not found."}
    csrf_checking = APIClient(enforce_csrf_checks=True)
    response = csrf_checking.post("/api/hunts/harbour/teams", {"name": "x"}, format="json")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


# --- Hunts ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_hunts_list_is_paginated_and_shows_the_callers_team(factories, hunt, team, member):
    factories.HuntFactory(slug="draft", published=False)
    other = factories.HuntFactory(slug="other")
    response = client_of(member).get("/api/hunts/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 2
    rows = {row["slug"]: row for row in body["results"]}
    assert set(rows) == {"harbour", other.slug}
    assert set(rows["harbour"]) == {
        "slug", "title", "starts_at", "ends_at", "freeze_at", "state", "max_team_size", "guess_limit", "team",
    }  # fmt: skip
    assert rows["harbour"]["team"] == {"slug": team.slug, "name": "Gulls"}
    assert rows["harbour"]["state"] == "running"
    assert rows["harbour"]["guess_limit"] == {"guesses": 20, "minutes": 10}
    assert rows[other.slug]["team"] is None


@pytest.mark.django_db
def test_hunt_detail_and_unpublished_hunts_are_404_for_players(factories, hunt, member, staff):
    factories.HuntFactory(slug="draft", published=False)
    client = client_of(member)
    detail = client.get("/api/hunts/harbour/")
    assert detail.status_code == 200
    assert detail.json()["slug"] == "harbour"
    hidden = client.get("/api/hunts/draft/")
    assert hidden.status_code == 404
    assert "detail" in hidden.json()
    assert client_of(staff).get("/api/hunts/draft/").status_code == 200
    assert client_of(staff).get("/api/hunts/").json()["count"] == 2


# --- Teams ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_creating_a_team_returns_201_and_the_caller_joins(hunt, user_factory):
    user = user_factory(username="ann")
    response = client_of(user).post("/api/hunts/harbour/teams/", {"name": "The Gulls"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"slug", "name", "join_code", "members", "score", "rank"}
    assert body["name"] == "The Gulls" and body["slug"] == "the-gulls"
    assert body["members"] == [{"username": "ann"}]
    assert body["score"] == 0 and body["rank"] == 1
    assert len(body["join_code"]) == 8


@pytest.mark.django_db
def test_team_creation_errors_are_field_messages(hunt, team, member, user_factory):
    client = client_of(user_factory())
    blank = client.post("/api/hunts/harbour/teams/", {"name": "  "}, format="json")
    assert blank.status_code == 400
    assert list(blank.json()) == ["name"]
    taken = client.post("/api/hunts/harbour/teams/", {"name": "gulls"}, format="json")
    assert taken.status_code == 400 and "name" in taken.json()
    wrong_type = client.post("/api/hunts/harbour/teams/", {"name": ["x"]}, format="json")
    assert wrong_type.status_code == 400 and "name" in wrong_type.json()
    huge = client.post("/api/hunts/harbour/teams/", {"name": "x" * 100_000}, format="json")
    assert huge.status_code == 400 and "name" in huge.json()
    second = client_of(member).post("/api/hunts/harbour/teams/", {"name": "Second"}, format="json")
    assert second.status_code == 400 and "detail" in second.json()


@pytest.mark.django_db
def test_creating_a_team_after_the_hunt_ended_is_403(factories, user_factory):
    factories.HuntFactory(slug="old", starts_at=timezone.now() - timedelta(days=3))
    response = client_of(user_factory()).post("/api/hunts/old/teams/", {"name": "Late"}, format="json")
    assert response.status_code == 403
    assert "ended" in response.json()["detail"]


@pytest.mark.django_db
def test_joining_returns_200_and_full_or_second_teams_are_400(factories, hunt, team, member, user_factory):
    hunt.max_team_size = 2
    hunt.save()
    joiner = user_factory(username="bo")
    response = client_of(joiner).post(
        "/api/hunts/harbour/teams/join/", {"join_code": team.join_code.lower()}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["members"] == [{"username": member.username}, {"username": "bo"}]
    full = client_of(user_factory()).post(
        "/api/hunts/harbour/teams/join/", {"join_code": team.join_code}, format="json"
    )
    assert full.status_code == 400 and "full" in full.json()["detail"]
    other = factories.TeamFactory(hunt=hunt)
    second = client_of(joiner).post(
        "/api/hunts/harbour/teams/join/", {"join_code": other.join_code}, format="json"
    )
    assert second.status_code == 400 and "already" in second.json()["detail"]
    wrong = client_of(user_factory()).post(
        "/api/hunts/harbour/teams/join/", {"join_code": "ZZZZ"}, format="json"
    )
    assert wrong.status_code == 400 and "join_code" in wrong.json()


@pytest.mark.django_db
def test_team_detail_includes_solves_and_is_404_without_a_team(hunt, team, member, user_factory):
    response = client_of(member).get("/api/hunts/harbour/team/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"slug", "name", "join_code", "members", "score", "rank", "solves"}
    assert body["solves"] == 0
    missing = client_of(user_factory()).get("/api/hunts/harbour/team/")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "You are not on a team in this hunt."}


@pytest.mark.django_db
def test_leaving_a_team_is_204_then_404(hunt, team, member):
    client = client_of(member)
    response = client.post("/api/hunts/harbour/team/leave/")
    assert response.status_code == 204
    assert not Membership.objects.filter(user=member).exists()
    assert client.post("/api/hunts/harbour/team/leave/").status_code == 404


# --- Announcements ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_announcements_are_listed_to_members_and_staff_only(hunt, member, staff, user_factory):
    services.post_announcement(hunt=hunt, text="Welcome!")
    response = client_of(member).get("/api/hunts/harbour/announcements/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    assert set(body["results"][0]) == {"id", "text", "created_at"}
    assert body["results"][0]["text"] == "Welcome!"
    assert client_of(staff).get("/api/hunts/harbour/announcements/").status_code == 200
    assert client_of(user_factory()).get("/api/hunts/harbour/announcements/").status_code == 404


@pytest.mark.django_db
def test_only_staff_post_announcements(hunt, member, staff):
    refused = client_of(member).post("/api/hunts/harbour/announcements/", {"text": "Hi"}, format="json")
    assert refused.status_code == 403
    assert "detail" in refused.json()
    posted = client_of(staff).post("/api/hunts/harbour/announcements/", {"text": "Clue soon"}, format="json")
    assert posted.status_code == 201
    assert set(posted.json()) == {"id", "text", "created_at"}
    blank = client_of(staff).post("/api/hunts/harbour/announcements/", {"text": " "}, format="json")
    assert blank.status_code == 400 and "text" in blank.json()


# --- Events ------------------------------------------------------------------------------------


@pytest.fixture
def logged(hunt, user_factory):
    """A team with two team events and a hunt with two hunt events."""
    ann = user_factory(username="ann")
    team = services.create_team(hunt=hunt, user=ann, name="Gulls")
    services.join_team(hunt=hunt, user=user_factory(username="bo"), join_code=team.join_code)
    services.post_announcement(hunt=hunt, text="one")
    services.post_announcement(hunt=hunt, text="two")
    return ann


def frames(response) -> list[tuple[str, int]]:
    return [(f["stream"], f["seq"]) for f in response.json()["results"]]


@pytest.mark.django_db
def test_events_without_seqs_replay_both_streams_hunt_first(logged):
    response = client_of(logged).get("/api/hunts/harbour/events/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert frames(response) == [("hunt", 1), ("hunt", 2), ("team", 1), ("team", 2)]
    first = body["results"][0]
    assert set(first) == {"type", "stream", "seq", "at", "data"}
    assert first["type"] == "announcement.posted" and first["data"]["text"] == "one"
    assert body["results"][2]["type"] == "member.joined"


@pytest.mark.django_db
def test_events_replay_only_the_streams_given_after_their_seq(logged):
    client = client_of(logged)
    assert frames(client.get("/api/hunts/harbour/events/?team_seq=1")) == [("team", 2)]
    assert frames(client.get("/api/hunts/harbour/events/?hunt_seq=1")) == [("hunt", 2)]
    assert frames(client.get("/api/hunts/harbour/events/?hunt_seq=2&team_seq=0")) == [
        ("team", 1),
        ("team", 2),
    ]
    assert frames(client.get("/api/hunts/harbour/events/?team_seq=&hunt_seq=2")) == []


@pytest.mark.django_db
def test_events_refuse_seqs_above_the_head_negative_or_not_integers(logged):
    client = client_of(logged)
    above = client.get("/api/hunts/harbour/events/?team_seq=3")
    assert above.status_code == 400
    assert above.json() == {
        "team_seq": ["team_seq 3 is above the team stream's head (2); resume from a seq you received."]
    }
    assert "hunt_seq" in client.get("/api/hunts/harbour/events/?hunt_seq=9").json()
    for bad in ["-1", "abc", "1e999", "99999999999999999999999"]:
        response = client.get(f"/api/hunts/harbour/events/?hunt_seq={bad}")
        assert response.status_code == 400, bad
        assert "hunt_seq" in response.json()


@pytest.mark.django_db
def test_staff_without_a_team_get_the_hunt_stream_only(logged, staff, user_factory):
    client = client_of(staff)
    assert frames(client.get("/api/hunts/harbour/events/")) == [("hunt", 1), ("hunt", 2)]
    assert client.get("/api/hunts/harbour/events/?team_seq=0").status_code == 400
    assert client_of(user_factory()).get("/api/hunts/harbour/events/").status_code == 404


# --- Schema --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_openapi_schema_is_valid_without_warnings(tmp_path):
    schema = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(schema))
    text = schema.read_text()
    for path in ["/api/auth/token/", "/api/hunts/{hunt}/events/", "/api/hunts/{hunt}/treasures/claim/"]:
        assert f"  {path}:" in text
    assert "RateLimited" in text and "Retry-After" in text
