"""A whole hunt for two teams in headless Chromium, against a real daphne: no console errors, XSS inert.

The server is daphne in the embedded mode (in-memory layer, eager tasks, embedded clock) on its own SQLite
database, so the pages' live sockets work as in production; it serves our Content Security Policy. Team
names, guesses and questions are XSS payloads: they must show as text, create no element and run nothing
(a dialog, or a CSP violation in the console, would be caught), on the pages and through live.js updates.
Debian's /usr/bin/chromium is driven by Playwright's Python package (never `playwright install`).
"""

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from testing.browser import TIMEOUT_MS
from testing.processes import Stack

pytestmark = pytest.mark.browser

ROOT = Path(settings.BASE_DIR)

TEAM_A = "<img src=x onerror=alert('team-a')>"
TEAM_B = '"><svg onload=alert("team-b")>'
GUESS_A = "<script>alert('guess-a')</script>"
GUESS_B = "<img src=x onerror=alert('guess-b')>"
QUESTION_B = "<iframe src=javascript:alert('question-b')></iframe>"
PAYLOADS = [TEAM_A, TEAM_B, GUESS_A, GUESS_B, QUESTION_B]
# Elements the payloads would create if they were parsed as HTML.
INJECTED = "img[src='x'], svg[onload], iframe, script:not([src])"

HUNT_FILE = """\
slug: xss
title: The Inert Hunt
starts_at: {start}
ends_at: {end}
guess_limit: null
rounds:
  - title: Harbour
    puzzles:
      - slug: first
        title: First Light
        points: 10
        body: "Say **lantern**. <script>alert('body')</script>"
        answers:
          - {{kind: exact, value: LANTERN}}
        hints:
          - {{text: "It glows.", cost: 5}}
      - slug: second
        title: Second Wind
        points: 10
        answers:
          - {{kind: exact, value: GALE}}
      - slug: third
        title: Third Time
        points: 20
        unlock: {{solves: 2}}
        answers:
          - {{kind: exact, value: CHARM}}
treasures:
  - slug: coin
    name: A Coin
    teaser: Somewhere.
    reveal: Shiny.
    code: LUCKY COIN
    supply: null
    bonus: [5]
"""


def manage(env: dict, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, input=stdin, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """daphne on a fresh SQLite database holding the hunt above and a staff account; yields its URL."""
    directory = tmp_path_factory.mktemp("browser-security")
    stack = Stack(
        database_url=f"sqlite:///{directory / 'db.sqlite3'}",
        redis_url="",
        directory=directory,
        extra_env={"DJANGO_DEBUG": "1", "EMBEDDED_CLOCK": "1", "LOG_LEVEL": "WARNING"},
    )
    now = timezone.now()
    hunt_file = directory / "hunt.yaml"
    hunt_file.write_text(
        HUNT_FILE.format(
            start=(now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            end=(now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
    )
    manage(stack.env, "migrate", "--noinput")
    manage(stack.env, "import_hunt", str(hunt_file))
    manage(
        stack.env,
        "shell",
        "--no-imports",
        "-c",
        "from django.contrib.auth import get_user_model; "
        "get_user_model().objects.create_superuser('sam', 'sam@example.org', 'staff-pass-42')",
    )
    with stack.started():
        stack.daphne("web")
        yield f"http://127.0.0.1:{stack['web'].port}"


class Watched:
    """A browser context whose console errors, page errors and dialogs are all recorded."""

    def __init__(self, browser, name: str, problems: list):
        self.name, self.problems = name, problems
        self.context = browser.new_context(viewport={"width": 1200, "height": 900})
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: problems.append(f"{name}: page error {exc}"))
        self.page.on("dialog", self._dialog)

    def _console(self, message) -> None:
        if message.type == "error":
            self.problems.append(f"{self.name}: console error at {self.page.url}: {message.text}")

    def _dialog(self, dialog) -> None:
        self.problems.append(f"{self.name}: a script ran and opened a dialog: {dialog.message}")
        dialog.dismiss()

    def inert(self) -> None:
        """No element a payload would have created is on the current page."""
        found = self.page.locator(INJECTED).count()
        if found:
            self.problems.append(f"{self.name}: {found} injected elements at {self.page.url}")


def sign_up(user: Watched, base: str, username: str) -> None:
    page = user.page
    page.goto(base + "/accounts/signup/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill("harbour-lights-42")
    page.get_by_label("Password confirmation").fill("harbour-lights-42")
    page.get_by_role("button", name="Sign up").click()
    page.get_by_text(f"Welcome, {username}!").wait_for()


def create_team(user: Watched, base: str, name: str) -> str:
    page = user.page
    page.goto(base + "/hunts/xss/team/new/")
    page.get_by_label("Team name").fill(name)
    page.get_by_role("button", name="Create team").click()
    page.locator("#team-panel").get_by_text(name, exact=True).wait_for()
    user.inert()
    return page.locator("#join-code").inner_text()


def join_team(user: Watched, base: str, code: str) -> None:
    page = user.page
    page.goto(base + "/hunts/xss/team/join/")
    page.get_by_label("Join code").fill(code)
    page.get_by_role("button", name="Join team").click()
    page.locator("#team-panel").wait_for()


def live(user: Watched) -> None:
    """The page's socket is open (live.js shows its status)."""
    user.page.locator("#live-status[data-state='live']").wait_for()


def guess(user: Watched, base: str, puzzle: str, answer: str) -> None:
    page = user.page
    if not page.url.endswith(f"/puzzles/{puzzle}/"):
        page.goto(f"{base}/hunts/xss/puzzles/{puzzle}/")
    page.get_by_label("Your answer").fill(answer)
    page.get_by_role("button", name="Submit").click()
    page.locator("#guess-log").get_by_text(answer, exact=True).first.wait_for()
    user.inert()


def solve_everything(user: Watched, base: str) -> None:
    for puzzle, answer in (("first", "lantern"), ("second", "gale"), ("third", "charm")):
        guess(user, base, puzzle, answer)
        user.page.locator("#solution .solved-banner").wait_for()
    page = user.page
    page.goto(base + "/hunts/xss/treasures/")
    page.get_by_label("Treasure code").fill("lucky coin")
    page.get_by_role("button", name="Claim").click()
    page.get_by_text("Shiny.").wait_for()
    user.inert()


def test_two_teams_play_a_whole_hunt_with_no_console_errors_and_every_xss_payload_inert(server, browser):
    problems: list[str] = []
    ann, amy, bob, sam = (Watched(browser, name, problems) for name in ("ann", "amy", "bob", "sam"))

    sign_up(ann, server, "ann")
    code = create_team(ann, server, TEAM_A)
    sign_up(amy, server, "amy")
    join_team(amy, server, code)
    sign_up(bob, server, "bob")
    create_team(bob, server, TEAM_B)

    # Amy watches the puzzle while Ann guesses: the payload arrives through the socket and live.js.
    amy.page.goto(server + "/hunts/xss/puzzles/first/")
    live(amy)
    guess(ann, server, "first", GUESS_A)
    amy.page.locator("#guess-log").get_by_text(GUESS_A, exact=True).wait_for()
    amy.inert()

    # Sam watches the staff live view while Bob guesses and asks.
    sam.page.goto(server + "/staff/hunts/xss/")
    sam.page.get_by_label("Username").fill("sam")
    sam.page.get_by_label("Password").fill("staff-pass-42")
    sam.page.get_by_role("button", name="Log in").click()
    sam.page.get_by_role("heading", name="Staff live view").wait_for()
    live(sam)
    guess(bob, server, "first", GUESS_B)
    bob.page.get_by_label("Ask the organizers").fill(QUESTION_B)
    bob.page.get_by_role("button", name="Ask").click()
    bob.page.locator("#hint-requests").get_by_text(QUESTION_B, exact=True).wait_for()
    bob.inert()
    sam.page.locator("#latest-guesses").get_by_text(GUESS_B, exact=True).first.wait_for()
    sam.page.reload()
    sam.page.locator("#hint-queue").get_by_text(QUESTION_B, exact=True).wait_for()
    for payload in (TEAM_A, TEAM_B, GUESS_A, GUESS_B):
        assert sam.page.get_by_text(payload, exact=True).count() >= 1, payload
    sam.inert()

    # Both teams play the hunt to the end: three puzzles (one unlocked by the others) and a treasure.
    amy.page.goto(server + "/hunts/xss/")
    live(amy)
    solve_everything(ann, server)
    amy.page.locator("#puzzle-list [data-puzzle='third']").wait_for()
    solve_everything(bob, server)

    # The leaderboard, its chart and the live toasts name both teams as text.
    for user in (ann, bob):
        user.page.goto(server + "/hunts/xss/leaderboard/")
        for name in (TEAM_A, TEAM_B):
            user.page.locator("#leaderboard").get_by_text(name).wait_for()  # the own team's adds "(you)"
        assert user.page.locator("svg.chart title").filter(has_text=TEAM_A).count() == 1
        user.inert()

    # The admin and the API docs work under the same policy.
    sam.page.goto(server + "/admin/hunts/team/")
    sam.page.get_by_text(TEAM_A, exact=True).wait_for()
    sam.inert()
    sam.page.goto(server + "/admin/puzzles/puzzle/")
    sam.page.get_by_text("First Light").wait_for()
    sam.page.goto(server + "/api/docs/")
    sam.page.locator(".swagger-ui .opblock").first.wait_for()
    assert sam.page.locator(".swagger-ui .opblock").count() > 20
    sam.page.wait_for_timeout(500)  # a violation is reported after the page rendered

    for user in (ann, amy, bob, sam):
        user.context.close()
    assert problems == [], "\n".join(problems)
