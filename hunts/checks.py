"""System checks of the database server (run with `manage.py check --database default`)."""

from django.core import checks
from django.db import connections


@checks.register(checks.Tags.database)
def autovacuum_on(app_configs=None, databases=None, **kwargs):
    """PostgreSQL's autovacuum keeps the guess path's statistics fresh as the guesses table grows."""
    found = []
    for alias in databases or ():
        connection = connections[alias]
        if connection.vendor != "postgresql":
            continue
        with connection.cursor() as cursor:
            cursor.execute("SHOW autovacuum")
            (value,) = cursor.fetchone()
        if value != "on":
            found.append(
                checks.Warning(
                    f"PostgreSQL runs with autovacuum {value} (database '{alias}').",
                    hint="Turn it on (the default), or run ANALYZE every few minutes during a hunt: the "
                    "guess path's statements are planned from statistics that otherwise stay those of "
                    "empty tables (README, Sizing).",
                    id="hunts.W001",
                )
            )
    return found
