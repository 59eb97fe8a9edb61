"""The database server check (hunts/checks.py)."""

import pytest
from django.core import checks
from django.db import connection

from hunts.checks import autovacuum_on


@pytest.mark.integration
@pytest.mark.django_db
def test_autovacuum_off_is_a_warning_and_on_is_not(monkeypatch):
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        (server,) = cursor.fetchone()
    found = autovacuum_on(databases=["default"])
    assert [w.id for w in found] == ([] if server == "on" else ["hunts.W001"])
    assert all(isinstance(w, checks.Warning) for w in found)


@pytest.mark.django_db
def test_sqlite_and_no_databases_are_not_checked():
    assert autovacuum_on(databases=None) == []
    assert autovacuum_on(databases=["default"]) == []  # the fast tier's SQLite


class FakeConnection:
    vendor = "postgresql"

    def __init__(self, value):
        self.value, self.sql = value, []

    def cursor(self):
        outer = self

        class Cursor:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def execute(self, sql):
                outer.sql.append(sql)

            def fetchone(self):
                return (outer.value,)

        return Cursor()


@pytest.mark.parametrize("value, ids", [("off", ["hunts.W001"]), ("on", [])])
def test_the_warning_follows_the_servers_setting(monkeypatch, value, ids):
    fake = FakeConnection(value)
    monkeypatch.setattr("hunts.checks.connections", {"default": fake})
    assert [w.id for w in autovacuum_on(databases=["default"])] == ids
    assert fake.sql == ["SHOW autovacuum"]


def test_manage_py_check_with_the_database_runs_it(monkeypatch):
    monkeypatch.setattr("hunts.checks.connections", {"default": FakeConnection("off")})
    found = checks.run_checks(tags=[checks.Tags.database], databases=["default"])
    assert "hunts.W001" in [w.id for w in found]
    assert "hunts.W001" not in [w.id for w in checks.run_checks()]  # not without --database
