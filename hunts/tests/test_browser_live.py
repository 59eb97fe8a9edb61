"""static/js/live.js in a real headless Chromium against a real daphne (pytest-django's live_server has no
websockets): two teammates' pages, a guess in one shows in the other without a reload, and the live
indicator says "reconnecting" while the server is down and "live" once it is back.

daphne runs the embedded default (in-memory layer) on an SQLite file made for the test with `migrate` and
`seed_demo` (ann and bob are on the same team). Screenshots go to test-artifacts/.
"""

import json
import os
import subprocess
import sys
import time

import pytest
from django.conf import settings

from testing.browser import ARTIFACTS, TIMEOUT_MS
from testing.processes import BIN, Process, free_port

pytestmark = pytest.mark.browser

RECONNECT_MS = 45_000  # backoff doubles from 1 s: a few attempts while daphne starts again
PUZZLE = "/hunts/harbour-lights/puzzles/chalkboard/"
SOCKET_FAILED = "WebSocket connection to"


@pytest.fixture
def server(tmp_path):
    """daphne on a free port, serving a fresh SQLite database seeded with the demo hunt; restartable."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "treasurehunt.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'live.sqlite3'}",
        "REDIS_URL": "",
        "DJANGO_DEBUG": "1",
        "EMBEDDED_CLOCK": "0",
        "PYTHONUNBUFFERED": "1",
    }
    for command in (["migrate", "--noinput", "-v", "0"], ["seed_demo"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=settings.BASE_DIR, env=env, check=True,
                       capture_output=True)  # fmt: skip
    port = free_port()
    argv = [str(BIN / "daphne"), "-e", f"tcp:port={port}:interface=127.0.0.1:backlog=4096",
            "--websocket_timeout", "-1", "--websocket_connect_timeout", "30",
            "treasurehunt.asgi:application"]  # fmt: skip
    process = Process("daphne", argv, env=env, log_path=tmp_path / "daphne.log", port=port)
    process.start()
    process.wait_for_port(timeout=30)
    process.url = f"http://127.0.0.1:{port}"
    yield process
    process.kill()


class Player:
    """One user's page (own browser context and session), with every console error and uncaught exception."""

    def __init__(self, browser, server, username: str, path: str = PUZZLE, *, route=None):
        self.context = browser.new_context(viewport={"width": 1200, "height": 900})
        self.context.set_default_timeout(TIMEOUT_MS)
        if route is not None:
            self.context.route_web_socket("**/ws/hunts/**", route)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", self.console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        self.page.goto(f"{server.url}/accounts/login/?next={path}")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(f"demo-{username}-1234")
        self.page.get_by_role("button", name="Log in").click()
        self.page.wait_for_url(f"**{path}")
        self.mark()

    def mark(self) -> None:
        """Set in the page: still there after an update only if the page was never reloaded."""
        self.page.evaluate("window.sameDocument = true")

    def not_reloaded(self) -> bool:
        return self.page.evaluate("window.sameDocument === true")

    def console(self, message) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} ({message.location.get('url')})")

    def status(self, state: str, timeout: int = TIMEOUT_MS):
        self.page.locator(f"#live-status[data-state='{state}']").wait_for(timeout=timeout)

    def guess(self, answer: str) -> None:
        self.page.get_by_label("Your answer").fill(answer)
        self.page.get_by_role("button", name="Submit").click()

    def guess_row(self, answer: str):
        return self.page.locator("#guesses li", has=self.page.locator(".text", has_text=answer))

    def score(self, points: int) -> None:
        self.page.locator("#header-team [data-field='score']").get_by_text(str(points), exact=True).wait_for()

    def shot(self, name: str) -> None:
        self.page.screenshot(path=ARTIFACTS / name, full_page=True)


def test_teammates_see_each_others_play_live_and_the_indicator_follows_the_server(server, browser):
    ann = Player(browser, server, "ann")
    bob = Player(browser, server, "bob")
    home = Player(browser, server, "bob", "/hunts/harbour-lights/")  # bob's second tab: the hunt home
    players = (ann, bob, home)
    for player in players:
        player.status("live")
        assert player.page.locator("#live-status").get_attribute("aria-live") == "polite"
    for name in ("ann", "bob"):
        home.page.locator(f"#team-members [data-member='{name}'][data-online='true']").wait_for()

    # ann's guess goes over the socket: her page shows the verdict without a form post; bob's gets the row.
    ann.guess("lamp")
    ann.page.locator(".messages").get_by_text("“lamp” is on the right track.").wait_for()
    row = bob.guess_row("lamp")
    row.wait_for()
    assert row.get_attribute("data-status") == "partial"
    assert row.locator(".pill").inner_text() == "Partial"
    assert "Close in spirit!" in row.inner_text()
    assert ann.guess_row("lamp").count() == 1
    assert ann.page.get_by_label("Your answer").input_value() == ""
    assert ann.not_reloaded() and bob.not_reloaded()
    bob.shot("live-1-teammate-guess.png")

    outage_started = [len(p.errors) for p in players]
    server.kill()
    for player in players:
        player.status("reconnecting")
    bob.shot("live-2-reconnecting.png")

    server.start()
    server.wait_for_port(timeout=30)
    for player in players:
        player.status("live", timeout=RECONNECT_MS)
    outage = [(start, len(p.errors)) for start, p in zip(outage_started, players, strict=True)]

    # Live again: bob solves it; ann's page shows his guess and the solved puzzle, the hunt home the solve.
    bob.guess("lantern")
    ann.guess_row("lantern").wait_for()
    ann.page.locator("#solution .solved-banner").get_by_text("Answer:").wait_for()
    assert ann.page.locator("#guess-form").count() == 0
    assert ann.page.locator("#solution .answer").inner_text() == "LANTERN"
    home.page.locator("#puzzle-list li[data-puzzle='chalkboard'][data-solved='true']").wait_for()
    for player in players:
        player.score(10)  # from the team API, once the solve arrives
    ann.shot("live-3-recovered-and-solved.png")

    # A hunt-wide announcement from the staff view.
    staff = Player(browser, server, "staff", "/staff/hunts/harbour-lights/")
    staff.page.get_by_role("textbox", name="Announcement").fill("The fog is lifting <b>now</b>.")
    staff.page.get_by_role("button", name="Post to every player").click()
    home.page.locator("#announcements li[data-announcement-id]").get_by_text(
        "The fog is lifting <b>now</b>."  # inserted as text, never as markup
    ).wait_for()
    ann.page.locator("#live-toasts").get_by_text("Announcement: The fog is lifting").wait_for()

    # ann's second solve opens a new puzzle: it appears on bob's hunt home.
    ann.page.goto(f"{server.url}/hunts/harbour-lights/puzzles/harbourmaster/")
    ann.status("live")
    ann.guess("144")
    new_row = home.page.locator("#puzzle-list li[data-puzzle='morse']")
    new_row.wait_for()
    assert new_row.get_attribute("data-solved") == "false"
    assert new_row.locator("a").get_attribute("href") == "/hunts/harbour-lights/puzzles/morse/"
    home.page.locator("#puzzle-list li[data-puzzle='harbourmaster'][data-solved='true']").wait_for()
    home.page.locator("#puzzles-heading").get_by_text("(2 solved)").wait_for()
    home.page.locator("#team-panel [data-field='score']").get_by_text("20", exact=True).wait_for()
    assert home.not_reloaded() and bob.not_reloaded()
    home.shot("live-4-hunt-home.png")

    for player, (start, end) in zip(players, outage, strict=True):
        # While daphne was down, Chromium reports each failed reconnect attempt; nothing else may show up.
        during = player.errors[start:end]
        assert all(SOCKET_FAILED in text for text in during), during
        assert player.errors[:start] + player.errors[end:] == []
    assert staff.errors == []


class Tap:
    """Sits on the page's socket: records what the page sends, drops or rewrites what the server sends."""

    def __init__(self):
        self.sent: list[dict] = []
        self.dropped: list[dict] = []
        self.drop_answer: str | None = None
        self.null_pongs = False

    def __call__(self, page_side) -> None:
        server_side = page_side.connect_to_server()
        page_side.on_message(lambda message: self._to_server(server_side, message))
        server_side.on_message(lambda message: self._to_page(page_side, message))

    def _to_server(self, server_side, message: str) -> None:
        self.sent.append(json.loads(message))
        server_side.send(message)

    def _to_page(self, page_side, message: str) -> None:
        frame = json.loads(message)
        if frame["type"] == "guess.judged" and frame["data"]["guess"]["answer"] == self.drop_answer:
            self.dropped.append(frame)
            self.drop_answer = None  # lost once: the replay goes through
            return
        if frame["type"] == "pong" and self.null_pongs:
            message = json.dumps({**frame, "team_seq": None, "hunt_seq": None})  # as after a Redis restart
        page_side.send(message)

    def resumes(self) -> list[dict]:
        return [frame for frame in self.sent if frame["type"] == "resume"]

    def wait_dropped(self, page, count: int) -> None:
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while len(self.dropped) < count:
            assert time.monotonic() < deadline, "the frame to drop never came"
            page.wait_for_timeout(50)  # Playwright's sync API delivers the socket's messages while it waits


def test_a_lost_frame_comes_back_through_resume_on_a_gap_and_on_a_null_pong_head(server, browser):
    tap = Tap()
    ann = Player(browser, server, "ann")
    bob = Player(browser, server, "bob", route=tap)
    for player in (ann, bob):
        player.status("live")

    # The next frame after a lost one is a gap: bob's page resumes from the last seq it applied.
    tap.drop_answer = "dim"
    ann.guess("dim")
    tap.wait_dropped(bob.page, 1)
    ann.page.locator(".messages").get_by_text("“dim” is incorrect.").wait_for()
    lost_seq = tap.dropped[0]["seq"]
    ann.guess("dark")
    bob.guess_row("dark").wait_for()
    bob.guess_row("dim").wait_for()
    assert tap.resumes()[-1] == {"type": "resume", "team_seq": lost_seq - 1}
    assert bob.page.locator("#guesses li").count() == 2  # each once, though "dark" came live and replayed

    # A lost frame with nothing after it: the next pong's unknown heads make the page resume both streams.
    tap.drop_answer, tap.null_pongs = "dusk", True
    resumes_before = len(tap.resumes())
    ann.guess("dusk")
    tap.wait_dropped(bob.page, 2)
    ann.page.locator(".messages").get_by_text("“dusk” is incorrect.").wait_for()
    bob.guess_row("dusk").wait_for(timeout=RECONNECT_MS)  # pings go every 10 s
    new_resumes = tap.resumes()[resumes_before:]
    assert new_resumes[0] == {"type": "resume", "hunt_seq": 0, "team_seq": tap.dropped[1]["seq"] - 1}
    assert bob.page.locator("#guesses li").count() == 3
    assert bob.not_reloaded()
    bob.shot("live-5-resumed.png")
    assert ann.errors == [] and bob.errors == []
