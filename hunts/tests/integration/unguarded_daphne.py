"""daphne with a guard switched off: the twin of a race or fault test over HTTP, proving its guard matters.

`python -m hunts.tests.integration.unguarded_daphne <daphne arguments>` runs daphne as its command line
would, after switching off the guards named in `UNGUARD` (comma-separated):
- `locks`: `select_for_update` is a no-op (the lock helpers `lock_hunt`, `lock_team`, `lock_teams` and
  the guess path's own team lock all use it);
- `pool-check`: the connection pool hands out connections without checking them first;
- `error-mapping`: database errors are not mapped to 503s (DRF's own exception handler for the API,
  Django's own 500 page for the pages).
`UNGUARDED_SLOW=module.function,...` makes those steps 50 ms slower, widening a race window. Only the
integration tests start it, on the test database.
"""

import importlib
import os
import sys
import time

import django
from daphne.cli import CommandLineInterface
from django.conf import settings
from django.db.models.query import QuerySet

SLOW_SECONDS = 0.05


def start(stack, name: str, *, unguard: str, slow: str = ""):
    """Start this daphne as process `name` of a testing.processes.Stack (killed with the stack)."""
    from testing.processes import Process, free_port

    port = free_port()
    argv = [sys.executable, "-m", __name__, "-e", f"tcp:port={port}:interface=127.0.0.1:backlog=4096",
            "--websocket_timeout", "-1", "--websocket_connect_timeout", "30",
            "treasurehunt.asgi:application"]  # fmt: skip
    env = {**stack.env, "UNGUARD": unguard, "UNGUARDED_SLOW": slow}
    process = Process(name, argv, env=env, log_path=stack.directory / f"{name}.log", port=port).start()
    stack.processes[name] = process
    process.wait_for_port(timeout=30)
    return process


def slowed(function):
    def slow(*args, **kwargs):
        time.sleep(SLOW_SECONDS)
        return function(*args, **kwargs)

    return slow


if __name__ == "__main__":
    django.setup()
    unguard = set(filter(None, os.environ.get("UNGUARD", "").split(",")))
    if "locks" in unguard:
        QuerySet.select_for_update = lambda self, *args, **kwargs: self
        from treasurehunt import hotsql

        hotsql.ROW_LOCKS = False  # the guess path's written-out lock
    if "pool-check" in unguard:
        # Read when the pool is made, at the first connection.
        settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
    if "error-mapping" in unguard:
        # Both are imported by dotted path at their first use, after this.
        from django.views import defaults
        from rest_framework import views

        import hunts.api_errors
        import treasurehunt.errors

        hunts.api_errors.exception_handler = views.exception_handler
        treasurehunt.errors.server_error = defaults.server_error
    for path in filter(None, os.environ.get("UNGUARDED_SLOW", "").split(",")):
        module_name, name = path.rsplit(".", 1)
        module = importlib.import_module(module_name)
        setattr(module, name, slowed(getattr(module, name)))
    CommandLineInterface.entrypoint()
