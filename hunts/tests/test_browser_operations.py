"""A staff control applied in the staff live view reaches a player's open page live (Chromium, daphne).

Reuses the daphne server (a fresh SQLite file seeded with the demo) and the Player page of
test_browser_live.py. Screenshots go to test-artifacts/.
"""

import pytest

from hunts.tests import test_browser_live as live

pytestmark = pytest.mark.browser

Player = live.Player
server = live.server  # fixture

STAFF_VIEW = "/staff/hunts/harbour-lights/"


def test_a_score_adjustment_and_an_erratum_from_the_staff_view_reach_the_players_page_live(server, browser):
    ann = Player(browser, server, "ann")
    ann.status("live")
    ann.score(0)
    staff = Player(browser, server, "staff", STAFF_VIEW)

    controls = staff.page.locator("#control-score")
    controls.get_by_label("Team", exact=True).fill("lighthouse-keepers")
    controls.get_by_label("Points (negative to take)").fill("7")
    controls.get_by_label("Reason (the team sees it)").fill("Best costume")
    controls.get_by_role("button", name="Adjust score").click()
    staff.page.locator(".messages").get_by_text("+7 points for Lighthouse Keepers (now 7).").wait_for()
    staff.shot("operations-1-staff-view.png")

    ann.page.locator("#live-toasts").get_by_text("+7 points: Best costume").wait_for()
    ann.score(7)

    erratum = staff.page.locator("#control-erratum")
    erratum.get_by_label("Puzzle").select_option("chalkboard")
    erratum.get_by_label("Erratum").fill("The third price reads 4d, not 5d.")
    erratum.get_by_role("button", name="Post erratum").click()
    staff.page.locator(".messages").get_by_text("Erratum posted on").wait_for()

    ann.page.locator("#live-toasts").get_by_text("The third price reads 4d, not 5d.").wait_for()
    assert ann.page.locator("#errata li[data-erratum-id]").count() == 1
    assert ann.not_reloaded()
    ann.shot("operations-2-player-page.png")
    assert ann.errors == [] and staff.errors == []
