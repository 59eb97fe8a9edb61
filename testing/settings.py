"""Settings for pytest: the tier's environment first, then the project's settings unchanged.

pytest-django loads settings before any conftest.py is imported, so the environment that
picks the tier's database, Redis and clock has to be set here. A process that a test starts
(daphne, a Celery worker) must be given DJANGO_SETTINGS_MODULE=treasurehunt.settings and its
own DATABASE_URL/REDIS_URL, since these values name the server database, not the test one.
"""

import os
from pathlib import Path

from testing import INTEGRATION

# Tests call release_due themselves; a clock running inside the test process would race them.
os.environ["EMBEDDED_CLOCK"] = "0"

if INTEGRATION:
    os.environ["DATABASE_URL"] = os.environ.get(
        "TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"
    )
    # Broker on database n, cache on n+1 (settings use n-1 for the last database, 15).
    os.environ["REDIS_URL"] = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
else:
    # Set, not removed: a value missing here would be filled in from the developer's .env.
    os.environ["DATABASE_URL"] = f"sqlite:///{Path(__file__).resolve().parent.parent / 'db.sqlite3'}"
    os.environ["REDIS_URL"] = ""

from treasurehunt.settings import *  # noqa: E402, F403
