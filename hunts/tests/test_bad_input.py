"""Hostile input: socket fuzzing, hostile Markdown and hunt files, hostile JSON on the API, login throttling.

The socket tests go through the whole ASGI stack (origin rule, auth, router) with WebsocketCommunicator.
Every bad frame is answered with an error frame, or with a clean close for a flood, and other sockets keep
working throughout. Markdown and hunt files are checked with an HTML parser and the hunt file reader.
"""

import json
import random
import re
import time
from html.parser import HTMLParser
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from hunts import consumers
from puzzles.authoring import HuntFileError, parse_hunt_file
from puzzles.models import Guess
from puzzles.rendering import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, render_markdown
from testing.factories import AnswerFactory, HuntFactory, MembershipFactory, PuzzleFactory, TeamFactory
from treasurehunt.asgi import application

H = "harbour"
TIMEOUT = 3

# --- WebSocket fuzzing ---------------------------------------------------------------------------


def make_world() -> SimpleNamespace:
    hunt = HuntFactory(slug=H, guess_limit_guesses=None)
    puzzle = PuzzleFactory(hunt=hunt, slug="lighthouse")
    AnswerFactory(puzzle=puzzle, parameters={"value": "BRIGHT BEAM"})
    team = TeamFactory(hunt=hunt, name="Alpha")
    ann = MembershipFactory(team=team, user__username="ann").user
    bob = MembershipFactory(team=team, user__username="bob").user
    return SimpleNamespace(
        hunt=hunt, team=team, tokens={u.username: Token.objects.create(user=u).key for u in (ann, bob)}
    )


@pytest.fixture
async def fresh_layer():
    await get_channel_layer().flush()
    yield
    await get_channel_layer().flush()


async def open_socket(token: str) -> WebsocketCommunicator:
    headers = [(b"host", b"testserver"), (b"authorization", f"Token {token}".encode())]
    socket = WebsocketCommunicator(application, f"/ws/hunts/{H}/", headers=headers)
    connected, _ = await socket.connect(timeout=TIMEOUT)
    assert connected
    assert (await socket.receive_json_from(timeout=TIMEOUT))["type"] == "hello"
    return socket


async def next_message(socket, *, logged: bool = True) -> dict:
    """The next frame that is not presence (nor, with logged=False, a logged frame); a close as type close."""
    while True:
        message = await socket.receive_output(timeout=TIMEOUT)
        if message["type"] == "websocket.close":
            return {"type": "close", "code": message.get("code")}
        frame = json.loads(message["text"])
        if frame["type"] != "presence" and (logged or "stream" not in frame):
            return frame


VALID = [
    {"type": "ping"},
    {"type": "resume", "team_seq": 0, "hunt_seq": 0},
    {"type": "guess.submit", "puzzle": "lighthouse", "answer": "dim beam", "id": "g1"},
]
WEIRD_VALUES = [
    None, True, False, 0, -1, 1.5, 10**30, -(10**30), "", " ", "\x00", "\ud800", "\u202e", "💥" * 50,
    "a" * 5000, [], {}, [1, [2, [3]]], {"$gt": ""}, "'; DROP TABLE hunts_team; --", "../../etc/passwd",
    "<script>alert(1)</script>", "NaN", "1e400",
]  # fmt: skip
RAW_TEXT = [
    "", " ", "null", "true", "1", '"ping"', "[]", "[{}]", "{", "}", '{"type": "ping"', '{"type": ping}',
    "{'type': 'ping'}", '{"type": "ping"} trailing', '{"type": NaN}', '{"type": Infinity}',
    '{"type": "ping", "type": 5}', "\ufeff{}", "[" * 10_000, '{"a":' * 3_000, '"' + "\\" * 9_999 + '"',
    '{"type": "' + "x" * 100_000 + '"}', json.dumps({"type": "ping", "pad": "é" * 8_000}),
]  # fmt: skip
RAW_BYTES = [b"", b"\x00", b"\xff\xfe\xfd", json.dumps({"type": "ping"}).encode(), b"x" * 20_000]


def fuzz_corpus(seed: int, n: int) -> list[tuple[str, str | bytes]]:
    """Malformed frames: raw texts and bytes, and valid frames with fields dropped, retyped or added."""
    rng = random.Random(seed)
    corpus: list[tuple[str, str | bytes]] = [("text", t) for t in RAW_TEXT] + [
        ("bytes", b) for b in RAW_BYTES
    ]
    while len(corpus) < n:
        frame = dict(rng.choice(VALID))
        for _ in range(rng.randint(1, 3)):
            key = rng.choice([*frame, "type", "id", "answer", "puzzle", "team_seq", "hunt_seq", "extra"])
            if rng.random() < 0.2:
                frame.pop(key, None)
            else:
                frame[key] = rng.choice(WEIRD_VALUES)
        corpus.append(("text", json.dumps(frame)))
    return corpus


@pytest.mark.django_db(transaction=True)
async def test_fuzzed_frames_get_error_frames_and_the_socket_and_its_neighbours_keep_working(
    fresh_layer, monkeypatch
):
    """200 malformed frames, paced under the flood limit: one answer each, never a close or a server error."""
    monkeypatch.setattr(consumers, "FLOOD_RATE", 10_000.0)  # pacing is not what this test is about
    world = await database_sync_to_async(make_world)()
    fuzzed, neighbour = await open_socket(world.tokens["ann"]), await open_socket(world.tokens["bob"])
    await fuzzed.receive_nothing(timeout=0.2)
    answers: dict[str, int] = {}
    for kind, payload in fuzz_corpus(seed=7, n=200):
        # send_input, not send_to: empty frames are part of the corpus.
        await fuzzed.send_input({"type": "websocket.receive", kind: payload})
        # The answer to this frame (a resume's replayed frames and an accepted guess's pushes are skipped).
        reply = await next_message(fuzzed, logged=False)
        assert reply["type"] != "close", (payload[:80], reply)
        code = reply["code"] if reply["type"] == "error" else reply["type"]
        answers[code] = answers.get(code, 0) + 1
        if reply["type"] == "guess.accepted" and reply["created"]:
            # A fuzzed guess that was valid reaches the teammate as a logged frame.
            assert (await next_message(neighbour))["type"] == "guess.judged"

    assert "server_error" not in answers, answers
    assert set(answers) <= {
        "invalid_json", "invalid_frame", "unknown_type", "too_large", "invalid", "not_found", "bad_seq",
        "pong", "resume.done", "guess.accepted",
    }  # fmt: skip
    assert answers["invalid_json"] > 5 and answers["invalid_frame"] > 5 and answers["too_large"] >= 3
    for socket in (fuzzed, neighbour):
        await socket.send_json_to({"type": "ping"})
        assert (await next_message(socket))["type"] == "pong"
    await fuzzed.disconnect()
    await neighbour.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "answer", ["a\x00b", "a\ud800b", "\udfff"], ids=["nul", "lone-high-surrogate", "lone-low-surrogate"]
)
async def test_unstorable_guess_text_over_the_socket_is_invalid_not_a_server_error(fresh_layer, answer):
    world = await database_sync_to_async(make_world)()
    socket = await open_socket(world.tokens["ann"])
    await socket.receive_nothing(timeout=0.1)

    await socket.send_json_to({"type": "guess.submit", "puzzle": "lighthouse", "answer": answer, "id": "g"})
    reply = await next_message(socket)

    assert (reply["type"], reply.get("code"), reply.get("id")) == ("error", "invalid", "g")
    assert await database_sync_to_async(Guess.objects.count)() == 0
    await socket.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_flood_closes_only_the_flooding_socket_with_4429(fresh_layer):
    world = await database_sync_to_async(make_world)()
    flooder, neighbour = await open_socket(world.tokens["ann"]), await open_socket(world.tokens["bob"])
    await flooder.receive_nothing(timeout=0.2)
    await neighbour.receive_nothing(timeout=0.2)

    for _ in range(consumers.FLOOD_BURST + 20):
        await flooder.send_to(text_data='{"type": "ping"}')
    replies = []
    while (reply := await next_message(flooder))["type"] != "close":
        replies.append(reply)

    assert reply["code"] == consumers.CLOSE_FLOODING
    # The bucket refills at FLOOD_RATE while the frames are handled: a few more than the burst pass.
    assert consumers.FLOOD_BURST <= len(replies) <= consumers.FLOOD_BURST + 10
    await neighbour.send_json_to({"type": "ping"})
    assert (await next_message(neighbour))["type"] == "pong"
    await neighbour.disconnect()


# --- Hostile JSON on the REST API ---------------------------------------------------------------


@pytest.fixture
def player(db):
    world = make_world()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {world.tokens['ann']}")
    return client


@pytest.mark.parametrize(
    "body",
    [
        "[" * 5_000,
        '{"answer":' * 3_000,
        '{"answer": "x"',
        "\ufeff{}",
        '{"answer": NaN}',
        '{"answer": {"$ne": null}}',
        '{"answer": ["a", "b"]}',
        '{"answer": "a\\u0000b"}',
        '{"answer": "\\ud800"}',
        '{"answer": "ok", "client_id": "\\udfff"}',
        '{"answer": "' + "x" * 100_000 + '"}',
    ],
    ids=lambda body: body[:24],
)
def test_hostile_json_bodies_are_400_never_500(player, body):
    response = player.post(
        f"/api/hunts/{H}/puzzles/lighthouse/guesses/", data=body, content_type="application/json"
    )

    assert response.status_code == 400, response.content[:300]
    assert "detail" in response.json() or "answer" in response.json() or "client_id" in response.json()
    assert Guess.objects.count() == 0


# --- Hostile Markdown -------------------------------------------------------------------------------

SAFE_SCHEMES = {"http", "https", "mailto", ""}


class Inspector(HTMLParser):
    """Records every tag, attribute and URL of sanitized HTML."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in ALLOWED_TAGS:
            self.problems.append(f"tag <{tag}>")
        for name, value in attrs:
            if name not in ALLOWED_ATTRIBUTES.get(tag, set()) and not (tag == "a" and name == "rel"):
                self.problems.append(f"attribute {name} on <{tag}>")
            if name in ("href", "src"):
                scheme = urlsplit(re.sub(r"[\x00-\x20]", "", value or "")).scheme.lower()
                if scheme not in SAFE_SCHEMES:
                    self.problems.append(f"{name}={value!r}")

    handle_startendtag = handle_starttag


def problems_in(html: str) -> list[str]:
    inspector = Inspector()
    inspector.feed(html)
    inspector.close()
    return inspector.problems


HOSTILE_MARKDOWN = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    "<img src=x onerror=alert(1)>",
    '<img src="javascript:alert(1)">',
    "<svg onload=alert(1)><circle/></svg>",
    "<iframe src=https://evil.example></iframe>",
    '<a href="javascript:alert(1)">click</a>',
    '<a href="jav&#x09;ascript:alert(1)">tab</a>',
    '<a href="&#106;avascript:alert(1)">entity</a>',
    '<a href=" JaVaScRiPt:alert(1)">case</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">data</a>',
    '<a href="vbscript:msgbox(1)">vb</a>',
    "[click](javascript:alert(1))",
    "[click](javascript&#58;alert(1))",
    "![x](javascript:alert(1))",
    '![x](x "title" onerror="alert(1)")',
    "[ref]\n\n[ref]: javascript:alert(1)",
    "<javascript:alert(1)>",
    '<div style="background:url(javascript:alert(1))">styled</div>',
    '<p onclick="alert(1)" onmouseover=alert(1)>handlers</p>',
    "<form action=https://evil.example><input name=password></form>",
    "<object data=x.swf></object><embed src=x.swf>",
    "<base href=https://evil.example/>",
    '<meta http-equiv="refresh" content="0;url=https://evil.example">',
    "<link rel=stylesheet href=https://evil.example/x.css>",
    "<style>body{display:none}</style>",
    "<!--<script>alert(1)</script>-->",
    "<math><mi xlink:href=javascript:alert(1)>x</mi></math>",
    "```html\n<script>alert(1)</script>\n```",
    "`<img src=x onerror=alert(1)>`",
    '<table><tr><td background="javascript:alert(1)">t</td></tr></table>',
    "<details open ontoggle=alert(1)><summary>x</summary></details>",
]


@pytest.mark.parametrize("markdown", HOSTILE_MARKDOWN)
def test_hostile_markdown_is_stripped_by_the_sanitizer(markdown):
    html = render_markdown(markdown)

    assert problems_in(html) == []
    assert "<script" not in html.lower()


def test_the_inspector_does_catch_what_the_sanitizer_removes():
    """The checks above can fail: raw hostile HTML is full of problems for the same inspector."""
    assert all(problems_in(m) for m in HOSTILE_MARKDOWN if m.startswith("<") and "<!--" not in m)


MARKDOWN_BITS = [
    "**bold**", "*em*", "# Title", "> quote", "- item", "1. one", "| a | b |\n|---|---|\n| c | d |", "\n\n",
    "`code`", "[ok](https://example.org)", "<b>", "</b>", "<a href=", '"', "'", ">", "&#", "javascript:",
]  # fmt: skip
FRAGMENTS = st.sampled_from([*HOSTILE_MARKDOWN, *MARKDOWN_BITS])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(FRAGMENTS | st.text(max_size=12), max_size=8).map("".join))
def test_any_mix_of_markdown_and_hostile_html_renders_only_allowed_tags_attributes_and_schemes(markdown):
    assert problems_in(render_markdown(markdown)) == []


@pytest.mark.django_db
def test_hostile_markdown_in_a_puzzle_reaches_the_page_and_the_api_sanitized(client, django_user_model):
    world = make_world()
    puzzle = world.hunt.puzzles.get()
    puzzle.body = "\n\n".join(HOSTILE_MARKDOWN)
    puzzle.save()
    client.force_login(django_user_model.objects.get(username="ann"))
    page = client.get(f"/hunts/{H}/puzzles/lighthouse/").content.decode()
    api = APIClient()
    api.force_authenticate(django_user_model.objects.get(username="ann"))
    body = api.get(f"/api/hunts/{H}/puzzles/lighthouse/").json()["body"]

    assert problems_in(body) == []
    start = page.index('class="card puzzle-body"')
    rendered = page[page.index(">", start) + 1 : page.index("</article>", start)]
    assert problems_in(rendered) == []


# --- Hostile hunt files ---------------------------------------------------------------------------

MINIMAL = """\
slug: hostile
title: Hostile
starts_at: 2026-12-01T18:00:00Z
ends_at: 2026-12-03T18:00:00Z
rounds:
  - title: R
    puzzles:
      - slug: p
        title: P
        body: {body}
        answers:
          - {answer}
"""


def hunt_file(body: str = '"ok"', answer: str = "{kind: exact, value: X}") -> str:
    return MINIMAL.format(body=body, answer=answer)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("!!python/object/apply:os.system ['touch /tmp/pwned']", "(file)"),
        (hunt_file(body="!!python/object/apply:os.system ['echo pwned']"), "string"),
        (hunt_file(body="!!binary aGVsbG8="), "string"),
        (hunt_file(answer="{kind: regex, pattern: '(a+'}"), "pattern"),
        (hunt_file(answer="{kind: exec, value: X}"), "kind"),
        (hunt_file().replace("slug: p\n", "slug: ../../etc/passwd\n"), "slug"),
        (hunt_file().replace("slug: hostile", "slug: <script>"), "slug"),
        ("a: &a [*a, *a]\n" + hunt_file(), ""),
        ("\x00\x01binary", "invalid YAML"),
        ("x: " + "[" * 1_000, "nested too deeply"),
    ],
    ids=[
        "python-tag-root",
        "python-tag-body",
        "binary-tag",
        "bad-regex",
        "unknown-kind",
        "traversal-slug",
        "html-slug",
        "recursive-alias",
        "binary-bytes",
        "deep-nesting",
    ],  # fmt: skip
)
def test_hostile_hunt_files_are_refused_with_a_positioned_message(text, message, tmp_path):
    marker = tmp_path / "pwned"
    started = time.monotonic()
    with pytest.raises(HuntFileError) as refused:
        parse_hunt_file(text.replace("/tmp/pwned", str(marker)), "hostile.yaml")

    assert time.monotonic() - started < 20  # a functional bound: no exponential blow-up
    assert all(re.match(r"hostile\.yaml:\d+:\d+: ", line) for line in refused.value.messages), refused.value
    assert message in str(refused.value)
    assert not marker.exists()


def test_a_billion_laughs_hunt_file_is_refused_quickly():
    laughs = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    laughs += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    text = "\n".join(laughs) + "\n" + hunt_file(body="*a9")
    started = time.monotonic()
    with pytest.raises(HuntFileError):
        parse_hunt_file(text, "laughs.yaml")
    assert time.monotonic() - started < 20


def test_hostile_markdown_in_a_hunt_file_is_stored_verbatim_and_rendered_sanitized():
    """Authors may write HTML; the sanitizer, not the importer, decides what reaches players."""
    spec = parse_hunt_file(hunt_file(body=json.dumps("\n\n".join(HOSTILE_MARKDOWN))), "ok.yaml")
    body = spec.rounds[0].puzzles[0].body

    assert "<script>alert(1)</script>" in body
    assert problems_in(render_markdown(body)) == []


# --- Login throttling ---------------------------------------------------------------------------


@pytest.fixture
def users(django_user_model, db):
    return [django_user_model.objects.create_user(f"player{i}", password=f"pw-{i}-secret") for i in range(40)]


def token_login(client: Client, username: str, password: str, **extra) -> int:
    body = {"username": username, "password": password}
    return client.post("/api/auth/token/", body, content_type="application/json", **extra).status_code


def page_login(client: Client, username: str, password: str) -> int:
    return client.post("/accounts/login/", {"username": username, "password": password}).status_code


def test_failures_on_the_page_and_the_token_endpoint_share_one_budget_per_username(users):
    """Alternating the two ways in does not double a guesser's attempts; the case of the name neither."""
    client = Client()
    for i in range(10):
        login = token_login if i % 2 else page_login
        assert login(client, ["player0", "PLAYER0", "Player0"][i % 3], "wrong") in (200, 400)

    assert token_login(client, "player0", "pw-0-secret") == 429
    assert page_login(client, "player0", "pw-0-secret") == 429
    assert token_login(client, "player1", "pw-1-secret") == 200


def test_a_forged_forwarded_for_header_does_not_reset_the_address_budget(users, settings):
    settings.LOGIN_FAILURES_PER_ADDRESS = 20
    client = Client()
    for i in range(20):
        forged = {"HTTP_X_FORWARDED_FOR": f"10.0.{i}.1", "HTTP_X_REAL_IP": f"10.1.{i}.1"}
        assert token_login(client, f"nobody{i}", "wrong", **forged) == 400

    response = client.post(
        "/api/auth/token/",
        {"username": "player5", "password": "pw-5-secret"},
        content_type="application/json",
        HTTP_X_FORWARDED_FOR="192.0.2.99",
    )
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0


def test_forty_players_behind_one_address_who_each_mistype_once_all_get_in(users):
    """A school or a hotel: one address, 40 players, each with one typo first."""
    client = Client()
    outcomes = []
    for i, user in enumerate(users):
        token_login(client, user.username, "typo")
        login = token_login if i % 2 else page_login
        outcomes.append(login(client, user.username, f"pw-{i}-secret"))

    # The token endpoint answers 200; the login page redirects (302) on success.
    assert outcomes == [302 if i % 2 == 0 else 200 for i in range(40)]
