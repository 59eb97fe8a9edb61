"""Test support shared by every app: the test tiers' environment and factory_boy factories."""

import os

# The one place that decides which tier a pytest run is (see conftest.py and settings.py here).
INTEGRATION = os.environ.get("TEST_TIER") == "integration"
