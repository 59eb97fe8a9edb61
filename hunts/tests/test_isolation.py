"""Isolation and leaks: an IDOR matrix over every API endpoint, page and socket message, with canaries.

Actors: alpha (a member of team A), bravo (team B), lou (signed in, no team), anon, staff (no team).
Canaries are strings that appear in exactly one place in the database: a response or frame that contains
one its reader may not see (yet) is a leak. Objects of another team, locked puzzles and their hints, and
unpublished hunts must look exactly like objects that do not exist: same status, same body.
"""

import json
import re
from types import SimpleNamespace

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.authtoken.models import Token

from puzzles import services as play
from puzzles.models import HintRequest
from puzzles.normalize import exact_key
from testing.factories import (
    AnswerFactory,
    HintFactory,
    HuntFactory,
    MembershipFactory,
    PuzzleFactory,
    TeamFactory,
    TreasureFactory,
    UserFactory,
)
from treasurehunt.asgi import application

H = "harbour"
ACTORS = ["alpha", "bravo", "lou", "anon", "staff"]

# Secret to every player, for the whole hunt (the locked puzzle, its hint and answer, a treasure behind it,
# a hint nobody unlocked, a treasure code, and a hunt that is not published).
LOCKED = {
    "VAULTTITLECANARY",  # the locked puzzle's title
    "vault-canary",  # its slug
    "LOCKEDBODYCANARY",
    "LOCKEDANSWERCANARY",
    "LOCKEDHINTCANARY",
    "LOCKEDREVEALCANARY",
    "TIMEDHINTCANARY",
    "COINCODECANARY",
    "UNPUBLISHEDCANARY",
}
# Team A's secrets: never shown to anyone else; to A only once A solved, bought, found, asked or guessed.
ANSWER = "QUOKKAANSWERCANARY"
REVEAL = "COINREVEALCANARY"
PAID_HINT = "PAIDHINTCANARY"
A_GUESS = "AGUESSCANARY"
A_QUESTION = "AQUESTIONCANARY"
A_SECRETS = {ANSWER, REVEAL, PAID_HINT, A_GUESS, A_QUESTION}


def leaks(text: str, canaries: set[str]) -> set[str]:
    folded = text.casefold()
    return {c for c in canaries if c.casefold() in folded}


def make_world() -> SimpleNamespace:
    hunt = HuntFactory(slug=H, guess_limit_guesses=None)
    HuntFactory(slug="unpublished", title="UNPUBLISHEDCANARY", published=False)
    beacon = PuzzleFactory(hunt=hunt, slug="beacon", title="The Beacon", points=10, order=1)
    AnswerFactory(puzzle=beacon, parameters={"value": ANSWER})
    warmup = PuzzleFactory(hunt=hunt, round=beacon.round, slug="warmup", title="Warm-up", points=20, order=2)
    AnswerFactory(puzzle=warmup, parameters={"value": "WARM"})
    vault = PuzzleFactory(
        hunt=hunt,
        round=beacon.round,
        slug="vault-canary",
        title="VAULTTITLECANARY",
        body="LOCKEDBODYCANARY",
        has_rules=True,
        unlock_solves=10,
        order=3,
    )
    AnswerFactory(puzzle=vault, parameters={"value": "LOCKEDANSWERCANARY"})
    locked_hint = HintFactory(puzzle=vault, text="LOCKEDHINTCANARY")
    free_hint = HintFactory(puzzle=beacon, order=1, text="Count the flashes.")
    timed_hint = HintFactory(puzzle=beacon, order=2, text="TIMEDHINTCANARY", after_minutes=600)
    paid_hint = HintFactory(puzzle=beacon, order=3, text=PAID_HINT, cost=5)
    chest = TreasureFactory(hunt=hunt, slug="chest", name="Chest", reveal="LOCKEDREVEALCANARY")
    chest.requires.add(vault)
    TreasureFactory(
        hunt=hunt,
        slug="coin",
        name="Coin",
        reveal=REVEAL,
        code="COINCODECANARY",
        code_key=exact_key("COINCODECANARY"),
    )
    alpha_team = TeamFactory(hunt=hunt, name="Alpha", join_code="AAAAAAAA")
    bravo_team = TeamFactory(hunt=hunt, name="Bravo", join_code="BBBBBBBB")
    users = {
        "alpha": MembershipFactory(team=alpha_team, user__username="ann").user,
        "bravo": MembershipFactory(team=bravo_team, user__username="bob").user,
        "lou": UserFactory(username="lou"),
        "staff": UserFactory(username="sam", is_staff=True, is_superuser=True),
    }
    # Team B has activity of its own, so "B sees nothing of A" is not true only because B has nothing.
    play.submit_guess(team=bravo_team, user=users["bravo"], puzzle_slug="beacon", text="bravo guess")
    bravo_request = play.request_hint(
        team=bravo_team, user=users["bravo"], puzzle_slug="beacon", question="bravo question"
    )
    return SimpleNamespace(
        hunt=hunt,
        alpha_team=alpha_team,
        bravo_team=bravo_team,
        users=users,
        tokens={name: Token.objects.create(user=user).key for name, user in users.items()},
        locked_hint=locked_hint,
        free_hint=free_hint,
        timed_hint=timed_hint,
        paid_hint=paid_hint,
        bravo_request=bravo_request,
        a_guess=None,
        a_request=None,
    )


@pytest.fixture
def world(db):
    return make_world()


def play_as_alpha(world) -> None:
    """Team A solves both open puzzles, buys the paid hint, finds the coin, guesses and asks a question."""
    team, ann = world.alpha_team, world.users["alpha"]
    world.a_guess, _ = play.submit_guess(team=team, user=ann, puzzle_slug="beacon", text=A_GUESS)
    world.a_request = play.request_hint(team=team, user=ann, puzzle_slug="beacon", question=A_QUESTION)
    play.submit_guess(team=team, user=ann, puzzle_slug="warmup", text="warm")
    play.unlock_hint(team=team, puzzle_slug="beacon", hint_id=world.paid_hint.pk)
    play.submit_guess(team=team, user=ann, puzzle_slug="beacon", text=ANSWER)
    play.claim_treasure_by_code(team=team, code="coin code canary")


# --- The HTTP matrix ---------------------------------------------------------------------------

NO_GUESS = 987_654_321


def routes(world) -> dict[str, list[tuple[str, str]]]:
    """Per URL name, the (method, path) requests the matrix makes: every route of the site but the admin.

    Ids and slugs of team A's objects, of locked puzzles and of other hunts are used by every actor.
    """
    a_guess = world.a_guess.pk if world.a_guess else NO_GUESS
    a_request = world.a_request.pk if world.a_request else world.bravo_request.pk
    api, page = f"/api/hunts/{H}", f"/hunts/{H}"
    puzzles = ["beacon", "vault-canary", "no-such-puzzle"]
    hints = [world.free_hint.pk, world.paid_hint.pk, world.timed_hint.pk, world.locked_hint.pk, NO_GUESS]
    return {
        "healthz": [("GET", "/healthz")],
        "favicon": [("GET", "/favicon.ico")],
        "schema": [("GET", "/api/schema/")],
        "swagger-ui": [("GET", "/api/docs/")],
        "api:token": [("POST", "/api/auth/token/")],
        "api:hunts": [("GET", "/api/hunts/")],
        "api:hunt": [("GET", f"/api/hunts/{slug}/") for slug in (H, "unpublished", "no-such-hunt")],
        # Writes that would change who is on which team go to the unpublished hunt (404 for players).
        "api:team-create": [("POST", "/api/hunts/unpublished/teams/")],
        "api:team-join": [("POST", f"{api}/teams/join/")],
        "api:team": [("GET", f"{api}/team/")],
        "api:team-leave": [("POST", "/api/hunts/unpublished/team/leave/")],
        "api:puzzles": [("GET", f"{api}/puzzles/")],
        "api:puzzle": [("GET", f"{api}/puzzles/{p}/") for p in puzzles],
        "api:guess-create": [("POST", f"{api}/puzzles/{p}/guesses/") for p in puzzles],
        "api:hint-unlock": [("POST", f"{api}/puzzles/{p}/hints/{h}/unlock/") for p in puzzles for h in hints],
        "api:hint-requests": [
            (m, f"{api}/puzzles/{p}/hint-requests/") for p in puzzles for m in ("GET", "POST")
        ],
        "api:guesses": [("GET", f"{api}/guesses/"), ("GET", f"{api}/guesses/?puzzle=vault-canary")],
        "api:guess": [("GET", f"{api}/guesses/{g}/") for g in (a_guess, NO_GUESS)],
        "api:leaderboard": [("GET", f"{api}/leaderboard/"), ("GET", "/api/hunts/unpublished/leaderboard/")],
        "api:treasures": [("GET", f"{api}/treasures/")],
        "api:treasure-claim": [("POST", f"{api}/treasures/claim/")],
        "api:announcements": [("GET", f"{api}/announcements/"), ("POST", f"{api}/announcements/")],
        "api:events": [("GET", f"{api}/events/"), ("GET", f"{api}/events/?team_seq=0&hunt_seq=0")],
        "api:public-events": [
            ("GET", f"{api}/public-events/"),
            ("GET", "/api/hunts/unpublished/public-events/"),
        ],
        "api:leaderboard-chart": [("GET", f"{api}/leaderboard/chart/")],
        # Staff controls (on the locked puzzle and an unknown one): writes that change nothing (an unknown
        # team, an empty text), and reads.
        "api:staff-unlock": [("POST", f"{api}/staff/puzzles/{p}/unlock/") for p in puzzles[1:]],
        "api:staff-lock": [("POST", f"{api}/staff/puzzles/{p}/lock/") for p in puzzles[1:]],
        "api:staff-rejudge": [("GET", f"{api}/staff/puzzles/{p}/rejudge/") for p in puzzles[1:]],
        "api:staff-errata": [("POST", f"{api}/staff/puzzles/{p}/errata/") for p in puzzles[1:]],
        "api:staff-erratum": [("GET", f"{api}/staff/errata/{NO_GUESS}/")],
        "api:staff-adjust": [("POST", f"{api}/staff/teams/alpha/score-adjustments/")],
        "api:staff-team-hidden": [("POST", f"{api}/staff/teams/alpha/hidden/")],
        "api:staff-join-code": [("POST", f"{api}/staff/teams/no-such-team/join-code/")],
        "api:staff-team-member": [("GET", f"{api}/staff/teams/alpha/members/ann/")],
        "api:staff-end": [("POST", f"{api}/staff/end/")],
        "api:staff-leaderboard": [("GET", f"{api}/staff/leaderboard/")],
        "api:staff-export": [
            ("GET", f"{api}/staff/exports/{what}/?as=json") for what in ("results", "guesses")
        ],
        "api:None": [("GET", "/api/no-such-endpoint/")],
        "login": [("GET", "/accounts/login/")],
        "logout": [],  # ends the session: covered by its own tests
        "password_change": [("GET", "/accounts/password_change/")],
        "password_change_done": [("GET", "/accounts/password_change/done/")],
        "password_reset": [("GET", "/accounts/password_reset/")],
        "password_reset_done": [("GET", "/accounts/password_reset/done/")],
        "password_reset_confirm": [("GET", "/accounts/reset/MQ/bad-token/")],
        "password_reset_complete": [("GET", "/accounts/reset/done/")],
        "accounts:signup": [("GET", "/accounts/signup/")],
        "accounts:profile": [("GET", "/accounts/profile/")],
        "accounts:token_create": [("GET", "/accounts/profile/token/")],
        "accounts:token_regenerate": [("GET", "/accounts/profile/token/regenerate/")],
        "hunts:list": [("GET", "/")],
        "hunts:detail": [("GET", f"/hunts/{slug}/") for slug in (H, "unpublished", "no-such-hunt")],
        "hunts:team_create": [("GET", f"{page}/team/new/")],
        "hunts:team_join": [("GET", f"{page}/team/join/")],
        "hunts:team_leave": [("GET", f"{page}/team/leave/")],
        "hunts:staff": [("GET", f"/staff/hunts/{H}/")],
        "hunts:staff_announce": [("POST", f"/staff/hunts/{H}/announcements/")],
        "hunts:staff_answer_hint": [("POST", f"/staff/hunts/{H}/hint-requests/{a_request}/answer/")],
        "hunts:staff_control": [("POST", f"/staff/hunts/{H}/controls/{c}/") for c in ("unlock", "erratum")],
        "hunts:staff_rejudge": [("GET", f"/staff/hunts/{H}/puzzles/{p}/rejudge/") for p in puzzles[1:]],
        "hunts:spectate": [("GET", f"{page}/spectate/"), ("GET", "/hunts/unpublished/spectate/")],
        "puzzles:detail": [("GET", f"{page}/puzzles/{p}/") for p in puzzles],
        "puzzles:guess": [("POST", f"{page}/puzzles/{p}/guess/") for p in puzzles],
        "puzzles:hint_unlock": [
            ("POST", f"{page}/puzzles/{p}/hints/{h}/unlock/") for p in puzzles for h in hints
        ],
        "puzzles:hint_request": [("POST", f"{page}/puzzles/{p}/questions/") for p in puzzles],
        "puzzles:treasures": [("GET", f"{page}/treasures/")],
        "puzzles:treasure_claim": [("POST", f"{page}/treasures/claim/")],
        "puzzles:leaderboard": [("GET", f"{page}/leaderboard/"), ("GET", "/hunts/unpublished/leaderboard/")],
    }


def url_names() -> set[str]:
    """Every named route of the site outside the admin (whose pages are staff-only as a whole)."""
    names = set()

    def walk(patterns, namespace=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if pattern.app_name == "admin":
                    continue
                inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
                walk(pattern.url_patterns, inner)
            elif isinstance(pattern, URLPattern):
                names.add(f"{namespace}{pattern.name}")

    walk(get_resolver().url_patterns)
    return names


# What a write sends: harmless input that passes form validation, so the request reaches the rule.
BODIES = {
    "api:token": {"username": "ann", "password": "wrong"},
    "api:team-create": {"name": "Intruders"},
    "api:team-join": {"join_code": "ZZZZZZZZ"},
    "api:guess-create": {"answer": "probe"},
    "api:hint-requests": {"question": "probe"},
    "api:treasure-claim": {"code": "probe"},
    "api:announcements": {"text": "probe"},
    "puzzles:guess": {"answer": "probe"},
    "puzzles:hint_request": {"question": "probe"},
    "puzzles:treasure_claim": {"code": "probe"},
    "hunts:staff_announce": {"text": "probe"},
    "api:staff-unlock": {"team": "no-such-team"},
    "api:staff-lock": {"team": "no-such-team"},
    "api:staff-errata": {"text": ""},
    "api:staff-adjust": {"points": 0, "reason": ""},
    "hunts:staff_control": {"puzzle": "no-such-puzzle", "text": "probe"},
}


def client_for(world, actor: str, *, api: bool) -> Client:
    client = Client(raise_request_exception=True)
    if actor != "anon":
        if api:
            client.defaults["HTTP_AUTHORIZATION"] = f"Token {world.tokens[actor]}"
        else:
            client.force_login(world.users[actor])
    return client


def fetch_all(world, actor: str) -> list[tuple[str, str, int, str]]:
    """(name, request, status, body and headers) for every request of the matrix, as this actor."""
    api_client, page_client = client_for(world, actor, api=True), client_for(world, actor, api=False)
    results = []
    for name, requests in routes(world).items():
        for method, path in requests:
            is_api = path.startswith("/api/")
            client = api_client if is_api else page_client
            if method == "GET":
                response = client.get(path)
            elif is_api:
                response = client.post(path, BODIES.get(name, {}), content_type="application/json")
            else:
                response = client.post(path, BODIES.get(name, {}))
            text = response.content.decode() + repr(sorted(response.headers.items()))
            results.append((name, f"{method} {path}", response.status_code, text))
    return results


def test_the_matrix_covers_every_route_of_the_site(world):
    """A route added without a row here fails this test: add it to `routes` with A's ids and locked ones."""
    assert url_names() - set(routes(world)) == set()


def entitled(actor: str, *, played: bool) -> set[str]:
    """The canaries this actor may see: staff see everything; A its own secrets once it played."""
    if actor == "staff":
        return LOCKED | A_SECRETS
    if actor == "alpha" and played:
        return A_SECRETS
    return set()


@pytest.mark.parametrize("played", [False, True], ids=["before-A-played", "after-A-played"])
def test_no_page_or_api_response_leaks_a_canary_to_anyone_not_entitled(world, played):
    if played:
        play_as_alpha(world)
    found = []
    for actor in ACTORS:
        forbidden = (LOCKED | A_SECRETS) - entitled(actor, played=played)
        for _name, request, status, text in fetch_all(world, actor):
            assert status < 500, f"{actor} {request}: {status}"
            leaked = leaks(text, forbidden)
            # A slug the request itself names may be echoed ("No puzzle 'vault-canary'...", ?next=...).
            if "vault-canary" in request:
                leaked -= {"vault-canary"}
            if leaked:
                found.append((actor, request, status, sorted(leaked)))
    assert found == []


def test_alpha_sees_its_secrets_once_it_played_so_the_canaries_can_be_found(world):
    """The canary scan can fail: after playing, team A's own pages show each of its secrets."""
    play_as_alpha(world)
    seen = set()
    for _, _, status, text in fetch_all(world, "alpha"):
        if status < 400:
            seen |= leaks(text, A_SECRETS)
    assert seen == A_SECRETS


def normalized(text: str, *values) -> str:
    for value in values:
        text = text.replace(str(value), "<ID>")
    return re.sub(r"csrfmiddlewaretoken\" value=\"[^\"]+|csrftoken=[^;']+", "<CSRF>", text)


@pytest.mark.parametrize("actor", ["bravo", "lou", "anon"])
def test_other_teams_objects_and_locked_ones_look_exactly_like_missing_ones(world, actor):
    """By id: team A's guess, a locked puzzle, a hint of a locked puzzle and an unpublished hunt are
    answered exactly as an id or slug that never existed."""
    play_as_alpha(world)
    api, page = f"/api/hunts/{H}", f"/hunts/{H}"
    pairs = [
        (f"{api}/guesses/{world.a_guess.pk}/", f"{api}/guesses/{NO_GUESS}/"),
        (f"{api}/puzzles/vault-canary/", f"{api}/puzzles/no-such-puzzl/"),
        (f"{api}/puzzles/vault-canary/hint-requests/", f"{api}/puzzles/no-such-puzzl/hint-requests/"),
        (f"{page}/puzzles/vault-canary/", f"{page}/puzzles/no-such-puzzl/"),
        ("/api/hunts/unpublished/", "/api/hunts/no-such-hun/"),
        ("/hunts/unpublished/", "/hunts/no-such-hun/"),
        ("/api/hunts/unpublished/leaderboard/", "/api/hunts/no-such-hun/leaderboard/"),
    ]
    posts = [
        (
            f"{api}/puzzles/beacon/hints/{world.locked_hint.pk}/unlock/",
            f"{api}/puzzles/beacon/hints/{NO_GUESS}/unlock/",
        ),
        (f"{api}/puzzles/vault-canary/guesses/", f"{api}/puzzles/no-such-puzzl/guesses/"),
        (
            f"{page}/puzzles/beacon/hints/{world.locked_hint.pk}/unlock/",
            f"{page}/puzzles/beacon/hints/{NO_GUESS}/unlock/",
        ),
        (f"{page}/puzzles/vault-canary/guess/", f"{page}/puzzles/no-such-puzzl/guess/"),
    ]
    api_client, page_client = client_for(world, actor, api=True), client_for(world, actor, api=False)
    ids = (
        world.a_guess.pk,
        NO_GUESS,
        world.locked_hint.pk,
        "vault-canary",
        "no-such-puzzl",
        "unpublished",
        "no-such-hun",
    )
    for method, group in (("GET", pairs), ("POST", posts)):
        for secret, missing in group:
            client = api_client if secret.startswith("/api/") else page_client
            if method == "GET":
                send = client.get
            elif secret.startswith("/api/"):
                send = lambda p, c=client: c.post(p, {"answer": "x"}, content_type="application/json")  # noqa: E731
            else:
                send = lambda p, c=client: c.post(p, {"answer": "x"})  # noqa: E731
            a, b = send(secret), send(missing)
            assert a.status_code == b.status_code, (secret, a.status_code, b.status_code)
            assert a.status_code in (401, 404) or (a.status_code == 302 and actor == "anon"), (
                secret,
                a.status_code,
            )
            assert normalized(a.content.decode(), *ids) == normalized(b.content.decode(), *ids), secret


def test_locked_puzzles_and_hints_do_not_leak_by_count(world):
    """Lists and counts are the team's own: B's puzzle list, hints and events count only what B may see."""
    play_as_alpha(world)
    bravo = client_for(world, "bravo", api=True)
    puzzles = bravo.get(f"/api/hunts/{H}/puzzles/").json()
    assert (puzzles["count"], [p["slug"] for p in puzzles["results"]]) == (2, ["beacon", "warmup"])
    detail = bravo.get(f"/api/hunts/{H}/puzzles/beacon/").json()
    assert [h["id"] for h in detail["hints"]] == [world.free_hint.pk, world.timed_hint.pk, world.paid_hint.pk]
    assert [("text" in h) for h in detail["hints"]] == [True, False, False]
    guesses = bravo.get(f"/api/hunts/{H}/guesses/").json()
    assert [g["answer"] for g in guesses["results"]] == ["bravo guess"]
    events = bravo.get(f"/api/hunts/{H}/events/").json()
    bravo_team_events = world.bravo_team.events.count()
    hunt_events = world.hunt.events.filter(team__isnull=True).count()
    assert events["count"] == bravo_team_events + hunt_events
    treasures = bravo.get(f"/api/hunts/{H}/treasures/").json()["results"]
    assert all(
        set(t) <= {"slug", "name", "teaser", "supply", "remaining", "finders", "found"} for t in treasures
    )
    requests = bravo.get(f"/api/hunts/{H}/puzzles/beacon/hint-requests/").json()
    assert [r["question"] for r in requests["results"]] == ["bravo question"]


def test_staff_answering_a_request_through_another_hunts_url_is_refused(world):
    other = HuntFactory(slug="other")
    client = client_for(world, "staff", api=False)
    request = world.bravo_request
    response = client.post(
        f"/staff/hunts/{other.slug}/hint-requests/{request.pk}/answer/", {f"r{request.pk}-answer": "x"}
    )
    assert response.status_code == 404
    request.refresh_from_db()
    assert request.status == HintRequest.Status.OPEN


# --- The socket matrix ---------------------------------------------------------------------


@pytest.fixture
async def fresh_layer():
    await get_channel_layer().flush()
    yield
    await get_channel_layer().flush()


async def open_socket(token: str | None) -> WebsocketCommunicator:
    headers = [(b"host", b"testserver"), (b"origin", b"http://testserver")]
    if token:
        headers.append((b"authorization", f"Token {token}".encode()))
    socket = WebsocketCommunicator(application, f"/ws/hunts/{H}/", headers=headers)
    await socket.connect(timeout=3)
    return socket


async def frames_of(socket, seconds: float = 0.1) -> list[dict]:
    """Every frame queued for the socket (and its close, as a frame of type "close")."""
    frames = []
    while not await socket.receive_nothing(timeout=seconds):
        message = await socket.receive_output(timeout=3)
        if message["type"] == "websocket.close":
            frames.append({"type": "close", "code": message.get("code")})
            break
        frames.append(json.loads(message["text"]))
    return frames


PROBES = [
    {"type": "resume", "team_seq": 0, "hunt_seq": 0},
    {"type": "guess.submit", "puzzle": "vault-canary", "answer": "LOCKEDANSWERCANARY", "id": "p1"},
    {"type": "guess.submit", "puzzle": "no-such-puzzle", "answer": "x", "id": "p2"},
    {"type": "ping"},
]


@pytest.mark.django_db(transaction=True)
async def test_no_socket_frame_leaks_a_canary_and_locked_puzzles_look_missing(fresh_layer):
    world = await database_sync_to_async(make_world)()
    sockets = {actor: await open_socket(world.tokens.get(actor)) for actor in ACTORS}
    before = {actor: await frames_of(socket) for actor, socket in sockets.items()}
    await database_sync_to_async(play_as_alpha)(world)
    live = {actor: await frames_of(socket) for actor, socket in sockets.items()}
    probed = {}
    for actor, socket in sockets.items():
        probed[actor] = []
        if before[actor] and before[actor][-1]["type"] == "close":
            continue
        for probe in PROBES:
            await socket.send_json_to(probe)
            probed[actor] += await frames_of(socket)

    # The probes above sent the locked answer as a guess text: an echo of it is the actor's own text.
    found = []
    for actor in ACTORS:
        for phase, frames, played in (
            ("before", before, False),
            ("live", live, True),
            ("probe", probed, True),
        ):
            forbidden = (LOCKED | A_SECRETS) - entitled(actor, played=played)
            for frame in frames[actor]:
                leaked = leaks(json.dumps(frame), forbidden)
                if frame.get("code") == "not_found":
                    leaked -= {"vault-canary"}
                if leaked:
                    found.append((actor, phase, frame["type"], sorted(leaked)))
    assert found == []

    assert before["anon"] == [{"type": "close", "code": 4401}]
    assert before["lou"] == [{"type": "close", "code": 4403}]
    # Team B heard that the coin was claimed, never what it revealed; A got the reveal and the answer.
    assert [f["type"] for f in live["bravo"] if f.get("stream") == "team"] == []
    assert "treasure.claimed" in [f["type"] for f in live["bravo"]]
    assert {f["type"] for f in live["alpha"]} >= {"puzzle.solved", "treasure.found", "hint.unlocked"}
    # The locked puzzle is answered like one that does not exist, for a team member and for staff.
    for actor in ("alpha", "bravo", "staff"):
        errors = [f for f in probed[actor] if f["type"] == "error" and "id" in f]
        assert [(e["id"], e["code"]) for e in errors] == [("p1", "not_found"), ("p2", "not_found")]
        first, second = (re.sub(r"'[^']*'", "''", e["message"]) for e in errors)
        assert first == second
    replayed = [f for f in probed["bravo"] if f.get("stream") == "team"]
    assert {f["type"] for f in replayed} <= {"guess.judged", "member.joined"}
    for socket in sockets.values():
        await socket.disconnect()
