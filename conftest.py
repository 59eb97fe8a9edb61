"""Shared pytest set-up: which tests a run selects, per-test settings, and common fixtures.

The tier's environment (database, Redis, clock) is chosen in testing/settings.py, which
pytest-django loads before this file is imported.

Selection is by deselection, never by skipping, so a CI run cannot pass by quietly skipping:
- `integration` tests run only with TEST_TIER=integration, and that run selects nothing else;
- `browser` tests need RUN_BROWSER=1 and `bench` tests RUN_BENCH=1 (`make test` adds `-m`).
"""

import gc
import os
import sys

import pytest
from django.core.cache import cache
from django.utils import timezone
from hypothesis import settings as hypothesis_settings
from rest_framework.test import APIClient

import testing.factories
from testing import INTEGRATION

# Database-backed examples vary a lot in speed on a loaded 2-core CI machine.
hypothesis_settings.register_profile("dev", deadline=None)
hypothesis_settings.register_profile("ci", deadline=None, derandomize=True, database=None)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "dev")

OPT_IN_MARKERS = {"browser": "RUN_BROWSER", "bench": "RUN_BENCH"}


def _selected(item: pytest.Item) -> bool:
    if (item.get_closest_marker("integration") is not None) != INTEGRATION:
        return False
    return all(
        os.environ.get(variable) == "1" or item.get_closest_marker(marker) is None
        for marker, variable in OPT_IN_MARKERS.items()
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    deselected = [item for item in items if not _selected(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if _selected(item)]


def pytest_unconfigure(config: pytest.Config) -> None:
    # treasurehunt.asgi (imported by the tests) logs slow full collections; a collection after pytest has
    # closed the captured stream that Django's log handler writes to would print a "Logging error".
    memory = sys.modules.get("treasurehunt.memory")
    if memory is not None and memory.collection_watch in gc.callbacks:
        gc.callbacks.remove(memory.collection_watch)


def pytest_report_header(config: pytest.Config) -> str:
    opted_in = [marker for marker, variable in OPT_IN_MARKERS.items() if os.environ.get(variable) == "1"]
    tier = "integration (PostgreSQL, Redis)" if INTEGRATION else "fast (SQLite, in-memory layer, eager tasks)"
    return f"test tier: {tier}; opted in: {', '.join(opted_in) or 'none'}"


@pytest.fixture(autouse=True)
def _test_settings(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def api_client():
    return APIClient()


@pytest.fixture
def factories(db):
    """The factory module, e.g. `factories.TeamFactory(hunt=hunt)`; requesting it enables the database."""
    return testing.factories


@pytest.fixture
def user_factory(db):
    return testing.factories.UserFactory


@pytest.fixture
def hunt(factories):
    """The hunt at /hunts/harbour/; a module that needs other knobs defines its own `hunt`."""
    return factories.HuntFactory(slug="harbour")
