"""The production stack (testing/processes.py) shared by the integration tests: a private redis-server and
daphne processes on the pytest-django test database.
"""

import pytest
from django.db import connection

from testing.processes import RedisServer, Stack, database_url


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    with RedisServer(tmp_path_factory.mktemp("redis")).running() as server:
        yield server


@pytest.fixture(scope="module")
def stack_env() -> dict:
    """Extra environment for the stack's processes; a module overrides it."""
    return {}


@pytest.fixture(scope="module")
def stack(django_db_setup, redis_server, tmp_path_factory, stack_env):
    """The stack on the test database and the private Redis; processes start on demand (`stack.ensure`)."""
    # The test database's name is known once django_db_setup has created it.
    url = database_url(connection.settings_dict)
    directory = tmp_path_factory.mktemp("stack")
    stack = Stack(database_url=url, redis_url=redis_server.url(0), directory=directory, extra_env=stack_env)
    with stack.started() as running:
        yield running


@pytest.fixture(autouse=True)
def _show_logs_on_failure(request):
    failed = request.session.testsfailed
    yield
    if request.session.testsfailed > failed and "stack" in request.fixturenames:
        print(request.getfixturevalue("stack").logs())
