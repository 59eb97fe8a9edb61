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


@pytest.fixture
def fresh_presence():
    """Presence remembers this process's sockets and team checks: start and end as a fresh process."""
    from hunts import presence

    presence._local.clear()
    presence._checked_at.clear()
    yield
    presence._local.clear()
    presence._checked_at.clear()


@pytest.fixture
def presence_sent(monkeypatch):
    """The presence frames sent, as (team id, online list), instead of sending them."""
    from hunts import presence

    frames = []

    def send_ephemeral(*, group, frame):
        frames.append((int(group.split(".")[1]), frame["online"]))

    monkeypatch.setattr(presence, "send_ephemeral", send_ephemeral)
    return frames
