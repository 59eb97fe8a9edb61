"""End to end in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright's Python package).

A new player signs up, creates a team, solves two puzzles of the demo hunt and sees the puzzle they unlock;
with JavaScript off they also claim a treasure by its code. Screenshots go to test-artifacts/.
"""

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from hunts.models import Hunt, Membership
from puzzles.authoring.store import load_hunt_file
from puzzles.models import Solve, TreasureFind
from puzzles.services import request_hint, submit_guess
from testing.browser import ARTIFACTS, TIMEOUT_MS
from testing.factories import MembershipFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DEMO = Path(settings.BASE_DIR) / "puzzles" / "fixtures" / "demo.yaml"


@pytest.fixture
def demo_hunt():
    """The bundled demo hunt, started a minute ago, as seed_demo does."""
    hunt = load_hunt_file(DEMO.read_text(), str(DEMO))
    now = timezone.now()
    Hunt.objects.filter(pk=hunt.pk).update(
        starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(hours=48)
    )
    return hunt


def solve(page, title: str, answer: str) -> None:
    page.get_by_role("link", name=title, exact=True).click()
    page.get_by_label("Your answer").fill(answer)
    page.get_by_role("button", name="Submit").click()
    page.locator(".messages").get_by_text("is correct! Puzzle solved.").wait_for()
    page.locator("#solution .solved-banner").wait_for()


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_new_player_signs_up_creates_a_team_solves_and_sees_the_unlocked_puzzle(
    live_server, demo_hunt, browser, javascript
):
    shot = "js" if javascript else "nojs"
    context = browser.new_context(java_script_enabled=javascript, viewport={"width": 1200, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto(live_server.url + "/")
    page.get_by_role("link", name="Sign up").first.click()
    page.get_by_label("Username").fill("maud")
    page.get_by_label("Password", exact=True).fill("harbour-lights-42")
    page.get_by_label("Password confirmation").fill("harbour-lights-42")
    page.get_by_role("button", name="Sign up").click()
    page.get_by_text("Welcome, maud!").wait_for()
    page.screenshot(path=ARTIFACTS / f"{shot}-1-hunt-list.png", full_page=True)

    page.get_by_role("link", name="The Harbour Lights Mystery").first.click()
    page.get_by_role("link", name="Create a team").click()
    page.get_by_label("Team name").fill("Lamplighters")
    page.get_by_role("button", name="Create team").click()
    page.locator("#team-panel").get_by_text("Lamplighters").wait_for()
    assert page.locator("#team-members [data-member='maud']").count() == 1
    assert page.locator("[data-puzzle='morse']").count() == 0

    solve(page, "The Fishmonger's Chalkboard", "lantern")
    page.get_by_role("link", name="Puzzles", exact=True).first.click()
    solve(page, "The Harbourmaster's Log", "144")
    page.screenshot(path=ARTIFACTS / f"{shot}-2-puzzle-solved.png", full_page=True)

    page.get_by_role("link", name="Puzzles", exact=True).first.click()
    unlocked = page.locator("#puzzle-list [data-puzzle='morse']")
    unlocked.wait_for()
    assert unlocked.get_attribute("data-solved") == "false"
    assert page.locator("#team-panel [data-field='score']").inner_text() == "20"
    page.screenshot(path=ARTIFACTS / f"{shot}-3-hunt-home.png", full_page=True)
    page.get_by_role("link", name="Flashes in the Night").click()
    assert "-... . -. . .- - ...." in page.locator(".puzzle-body").inner_text()

    if not javascript:
        # The rest of the demo without JavaScript: a treasure found by its code.
        page.get_by_role("link", name="Treasures").click()
        page.get_by_label("Treasure code").fill("lucky sixpence")
        page.get_by_role("button", name="Claim").click()
        page.get_by_text("You found A Silver Sixpence! Finder #1, +5 points.").wait_for()
        page.get_by_text("A silver sixpence for luck.").wait_for()
        page.screenshot(path=ARTIFACTS / f"{shot}-4-treasures.png", full_page=True)
        page.get_by_role("link", name="Leaderboard").click()
        page.locator("#leaderboard tr[data-team='lamplighters']").wait_for()
        page.screenshot(path=ARTIFACTS / f"{shot}-5-leaderboard.png", full_page=True)
        phone = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
        phone.add_cookies(context.cookies())
        mobile = phone.new_page()
        mobile.goto(live_server.url + f"/hunts/{demo_hunt.slug}/puzzles/chalkboard/")
        mobile.screenshot(path=ARTIFACTS / f"{shot}-6-phone-puzzle.png", full_page=True)
        phone.close()
        assert TreasureFind.objects.filter(team__name="Lamplighters", treasure__slug="sixpence").exists()

    context.close()
    assert errors == []
    team = Membership.objects.get(user__username="maud", hunt=demo_hunt).team
    assert set(Solve.objects.filter(team=team).values_list("puzzle__slug", flat=True)) == {
        "chalkboard",
        "harbourmaster",
    }
    assert os.path.exists(ARTIFACTS / f"{shot}-3-hunt-home.png")


@pytest.fixture
def busy_hunt(demo_hunt):
    """A staff account, and a team with a guess and an open question (made before the browser starts)."""
    get_user_model().objects.create_user("sam", password="staff-pass-42", is_staff=True)
    member = MembershipFactory(team__hunt=demo_hunt, team__name="Gulls", user__username="ann")
    submit_guess(team=member.team, user=member.user, puzzle_slug="chalkboard", text="LAMP")
    request_hint(team=member.team, user=member.user, puzzle_slug="chalkboard", question="Which order?")
    return demo_hunt


def test_staff_answer_a_question_and_post_an_announcement_in_the_live_view(live_server, busy_hunt, browser):
    demo_hunt = busy_hunt
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1200, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()

    page.goto(live_server.url + f"/staff/hunts/{demo_hunt.slug}/")
    page.get_by_label("Username").fill("sam")
    page.get_by_label("Password").fill("staff-pass-42")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Staff live view").wait_for()
    assert page.locator("#latest-guesses").get_by_text("LAMP").count() == 1
    assert page.locator("#progress tr[data-team='gulls'] td[data-state='open']").count() == 4
    page.screenshot(path=ARTIFACTS / "staff-1-live-view.png", full_page=True)

    page.locator("#hint-queue").get_by_label("Answer").fill("Cheapest first.")
    page.get_by_role("button", name="Send answer").click()
    page.get_by_text("Answered Gulls's question on The Fishmonger's Chalkboard.").wait_for()
    page.get_by_role("textbox", name="Announcement").fill("Fog rolls in at nine.")
    page.get_by_role("button", name="Post to every player").click()
    page.get_by_text("Announcement posted.").wait_for()
    assert page.locator("#announcements").get_by_text("Fog rolls in at nine.").count() == 1
    assert page.locator("#hint-queue").get_by_text("No open requests.").count() == 1
    context.close()
