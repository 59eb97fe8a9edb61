"""Fixtures shared by the hunts tests."""

import pytest

from testing.browser import chromium


@pytest.fixture
def browser(monkeypatch):
    """A headless Chromium for `browser` tests."""
    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls are still sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with chromium() as browser:
        yield browser
