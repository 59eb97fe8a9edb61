"""Statements of the hottest paths (every guess of every player), written out once per process.

Django builds and compiles an ORM query in 0.3-2 ms of CPU; the same statement written out and run
through the cursor costs 0.05-0.2 ms (BENCHMARKS.md, "Fixes"). Statements are built from model
metadata (table and column names, field conversions), so a renamed column cannot drift. Each caller
names the queryset its statement mirrors, and tests pin the two to the same results.

Works on PostgreSQL and SQLite (the embedded default). Row locks are PostgreSQL's FOR NO KEY UPDATE;
SQLite serializes writers with IMMEDIATE transactions instead, as Django's select_for_update does there.
"""

import contextlib
import functools
import json

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, models

# The race tests' twins start a daphne with every row lock removed, to show what the locks guard
# (hunts/tests/integration/unguarded_daphne.py turns this off along with QuerySet.select_for_update).
ROW_LOCKS = True


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


def table(model: type[models.Model]) -> str:
    return quote(model._meta.db_table)


def col(model: type[models.Model], name: str) -> str:
    return quote(model._meta.get_field(name).column)


def fields(model: type[models.Model], skip: tuple[str, ...] = ()) -> list[models.Field]:
    return [f for f in model._meta.concrete_fields if f.name not in skip]


def columns(model: type[models.Model], alias: str = "", skip: tuple[str, ...] = ()) -> str:
    prefix = f"{alias}." if alias else ""
    return ", ".join(f"{prefix}{quote(f.column)}" for f in fields(model, skip))


def lock_rows(alias: str) -> str:
    """The clause locking the selected rows of `alias` against writers, where the database has one."""
    if not ROW_LOCKS or not connection.features.has_select_for_update:
        return ""
    return f" FOR NO KEY UPDATE OF {alias}"


@contextlib.contextmanager
def cursor():
    """A cursor for the hot paths' statements, as connection.cursor() gives one (Django's wrapper: its
    execute wrappers, the debug wrapper where queries are captured, database errors translated).

    On PostgreSQL the psycopg cursor under it is the pooled connection's own, kept on that connection and
    used again by each statement of every thread that has it: a new psycopg cursor looks up its columns'
    loaders again, 30-50 µs of a statement's CPU (BENCHMARKS.md, fix 56). A pooled connection serves one
    thread at a time, and its cursor goes with it; each statement's execute replaces the last one's rows.
    """
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql":
        with db.cursor() as fresh:
            yield fresh
        return
    db.ensure_connection()
    raw = db.connection
    kept = getattr(raw, "_hotsql_cursor", None)
    if kept is None or kept.closed:
        with db.wrap_database_errors:
            kept = raw._hotsql_cursor = db.create_cursor()
    db.validate_thread_sharing()
    yield db.make_debug_cursor(kept) if db.queries_logged else db.make_cursor(kept)


def fetch_one(sql: str, params: list) -> tuple | None:
    with cursor() as c:
        c.execute(sql, params)
        return c.fetchone()


def fetch_all(sql: str, params: list) -> list[tuple]:
    with cursor() as c:
        c.execute(sql, params)
        return c.fetchall()


def from_row(model: type[models.Model], row: tuple, start: int = 0, skip: tuple[str, ...] = ()):
    """A model instance from `row[start:]`, laid out as `columns(model, skip=skip)` (`skip`: deferred)."""
    names = _attnames(model, skip)
    values = row[start : start + len(names)]
    converters = _converters(model, skip, connection.vendor)
    if converters:
        values = list(values)
        for i, convert in converters:
            values[i] = convert(values[i], None, connection)
    return model.from_db(connection.alias, names, values)


@functools.cache
def _attnames(model, skip) -> list[str]:
    return [f.attname for f in fields(model, skip)]


@functools.cache
def _converters(model, skip, vendor) -> list:
    """Field conversions of values read through a bare cursor (JSON text on SQLite, booleans, ...)."""
    return [(i, fn) for i, field in enumerate(fields(model, skip)) for fn in _field_converters(field)]


def _field_converters(field: models.Field) -> list:
    """What the ORM applies to this field's value as the database returns it (backend's, then field's)."""
    return connection.ops.get_db_converters(_Column(field)) + field.get_db_converters(connection)


class _Column:
    """What the backends' get_db_converters read of an expression: its output field."""

    def __init__(self, field):
        self.output_field = self.field = field


def convert(model: type[models.Model], name: str, value):
    """A value of this field read through a bare cursor, as the ORM would return it."""
    if value is None:
        return None
    for fn in _field_converters(model._meta.get_field(name)):
        value = fn(value, None, connection)
    return value


def json_rows(model: type[models.Model], alias: str, where: str, order: tuple[str, ...]) -> str:
    """A subquery: the rows of `model` (as `alias`) matching `where`, as one JSON array of arrays laid out
    as `columns(model)`, NULL when none match; read back with from_json_rows(model, value, order).

    Lets a statement bring a few child rows along with their parent, saving a round trip. `order` (field
    names) is kept by from_json_rows: SQLite before 3.44 has no ORDER BY inside an aggregate.
    """
    items = ", ".join(_json_item(f, alias) for f in fields(model))
    if connection.vendor == "postgresql":
        by = ", ".join(f"{alias}.{col(model, name)}" for name in order)
        return (
            f"(SELECT json_agg(json_build_array({items}) ORDER BY {by}) "
            f"FROM {table(model)} {alias} WHERE {where})"
        )
    return f"(SELECT json_group_array(json_array({items})) FROM {table(model)} {alias} WHERE {where})"


def _json_item(field: models.Field, alias: str) -> str:
    column = f"{alias}.{quote(field.column)}"
    if connection.vendor != "postgresql" and isinstance(field, models.JSONField):
        return f"json({column})"  # SQLite: the stored text as JSON, not as a string
    return column


def from_json_rows(model: type[models.Model], value, order: tuple[str, ...]) -> list:
    """The instances of a json_rows() column (JSON text, or the list the driver already decoded), in
    `order` (field names)."""
    if value is None:
        return []
    if isinstance(value, str):
        value = json.loads(value)
    names = _attnames(model, ())
    booleans = _booleans(model)
    instances = []
    for values in value:
        for i in booleans:  # SQLite stores booleans as 0 and 1
            values[i] = bool(values[i]) if values[i] is not None else None
        instances.append(model.from_db(connection.alias, names, values))
    keys = [model._meta.get_field(name).attname for name in order]
    instances.sort(key=lambda obj: [getattr(obj, key) for key in keys])
    return instances


@functools.cache
def _booleans(model) -> list[int]:
    found = fields(model)
    for f in found:  # what JSON carries as it is: numbers, text, booleans, JSON
        if not isinstance(
            f,
            (
                models.AutoField,
                models.ForeignKey,
                models.IntegerField,
                models.CharField,
                models.TextField,
                models.BooleanField,
                models.JSONField,
            ),
        ):
            raise TypeError(f"{model.__name__}.{f.name}: json_rows does not carry {type(f).__name__}")
    return [i for i, f in enumerate(found) if isinstance(f, models.BooleanField)]


def width(model: type[models.Model], skip: tuple[str, ...] = ()) -> int:
    return len(_attnames(model, skip))


def insert(
    objs: list[models.Model],
    *,
    with_updates: list[tuple[models.Model, list[str]]] = (),
    with_rows: list[models.Model] = (),
) -> None:
    """INSERT the new instances (all of one model): one statement, or one per row on a database that returns
    no ids of a multi-row INSERT. Instances that carry their primary key (taken with next_id) are written
    with it; the others get theirs from the database.

    What Model.save(force_insert=True) and bulk_create do, without building a query: default values,
    pre_save (auto_now_add), and each field's conversion for the database. In the same statement, as WITH
    clauses (PostgreSQL only: insert_and_update): `with_rows`, new rows that carry their primary key, one
    INSERT each, and `with_updates`, UPDATEs of (obj, names). PostgreSQL runs every part on one snapshot,
    in no set order: none may read what another writes.
    """
    given = bool(objs) and objs[0].pk is not None
    if any((obj.pk is not None) != given for obj in objs):
        raise ValueError("either every row carries its primary key or none does")
    returning = not given and connection.features.can_return_rows_from_bulk_insert
    one_statement = len(objs) == 1 or given or returning
    if (with_rows or with_updates) and not (objs and one_statement):
        raise ValueError("WITH clauses need the one INSERT they go with")
    if not objs:
        return
    if not one_statement:
        for obj in objs:
            insert([obj])
        return
    model = type(objs[0])
    params = [
        param for row in with_rows for param in _row_params(row, _insert_fields(type(row), with_pk=True))
    ]
    params += [param for obj, names in with_updates for param in _update_params(obj, names)]
    cols = _insert_fields(model, with_pk=given)
    for obj in objs:
        params.extend(_row_params(obj, cols))
    sql = _insert_sql(model, len(objs), connection.vendor, returning, with_pk=given)
    if with_updates or with_rows:
        shapes = tuple((type(obj), tuple(names)) for obj, names in with_updates)
        sql = _with_clauses(tuple(type(row) for row in with_rows), shapes, connection.vendor) + sql
    with cursor() as c:
        c.execute(sql, params)
        if not given:
            ids = [r[0] for r in c.fetchall()] if returning else [c.lastrowid]
            for obj, value in zip(objs, ids, strict=True):
                setattr(obj, model._meta.pk.attname, value)
    for obj in [*objs, *with_rows]:
        obj._state.adding = False
        obj._state.db = connection.alias


def _row_params(obj: models.Model, cols: list[models.Field]) -> list:
    return [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in cols]


def insert_and_update(
    objs: list[models.Model], updates: list[tuple[models.Model, list[str]]], *, rows: list[models.Model] = ()
) -> None:
    """insert each of `rows` (which carry their primary keys), insert(objs), then update(obj, names) for
    each of `updates`.

    On PostgreSQL that is one statement, one round trip: the row INSERTs and the UPDATEs go in WITH clauses,
    which PostgreSQL runs exactly once and to completion whatever the main INSERT does (EventLog.flush: a
    guess, its events and its team's new head). Elsewhere, a statement each.
    """
    if objs and (updates or rows) and connection.vendor == "postgresql":
        insert(objs, with_updates=updates, with_rows=rows)
        return
    for row in rows:
        insert([row])
    insert(objs)
    for obj, names in updates:
        update(obj, names)


def next_id(model: type[models.Model]) -> str | None:
    """An SQL expression taking the next id of the model's table ahead of its INSERT (a column to add to a
    statement the caller runs anyway), or None where ids come only from the INSERT (SQLite)."""
    if connection.vendor != "postgresql":
        return None
    # The names as PostgreSQL parses them: the table quoted as an identifier, the column as it is.
    return f"nextval(pg_get_serial_sequence('{table(model)}', '{model._meta.pk.column}'))"


ASYNC_COMMIT = "set_config('synchronous_commit', 'off', true)"


def async_commit() -> str | None:
    """An SQL expression making the current transaction's COMMIT return before its WAL reaches the disk (a
    column to add to a statement the caller runs anyway), or None where the database has no such setting
    (SQLite) or settings.GUESS_SYNCHRONOUS_COMMIT asks every commit to wait.

    PostgreSQL's synchronous_commit=off for this transaction only (`set_config(..., true)` is SET LOCAL):
    the transaction is as atomic and as isolated, and the database as consistent after a crash; only the
    last moment of such commits may be lost when the database server or its machine crashes."""
    if connection.vendor != "postgresql" or settings.GUESS_SYNCHRONOUS_COMMIT:
        return None
    return ASYNC_COMMIT


# A column for the guess's first statement on PostgreSQL: for the rest of the transaction the planner takes
# an index wherever one serves (SET LOCAL enable_seqscan).
# Every statement of the guess path reads rows by a key that has an index; the planner picks sequential
# scans when the statistics say a table is nearly empty, and a prepared statement keeps that plan until the
# next ANALYZE. A hunt's guess table starts empty and takes thousands of guesses in its first minute,
# before autovacuum analyzes it again: planned when it held a few rows, three scans of the whole growing
# table per guess (BENCHMARKS.md, fix 48).
INDEXES_FIRST = "set_config('enable_seqscan', 'off', true)"


def commit_without_waiting_for_disk() -> None:
    """async_commit() on its own (one round trip), for a transaction with no statement to add it to."""
    expression = async_commit()
    if expression is not None:
        fetch_one(f"SELECT {expression}", [])


@functools.cache
def _with_clauses(rows: tuple, shapes: tuple, vendor: str) -> str:
    clauses = [
        f"i{i} AS ({_insert_sql(model, 1, vendor, False, with_pk=True)})" for i, model in enumerate(rows)
    ]
    clauses += [f"u{i} AS ({_update_sql(model, names, vendor)})" for i, (model, names) in enumerate(shapes)]
    return "WITH " + ", ".join(clauses) + " "


@functools.cache
def _insert_fields(model, *, with_pk: bool = False) -> list[models.Field]:
    return [f for f in model._meta.concrete_fields if with_pk or not f.primary_key]


@functools.cache
def _insert_sql(model, count: int, vendor: str, returning: bool, *, with_pk: bool = False) -> str:
    cols = _insert_fields(model, with_pk=with_pk)
    values = "(" + ", ".join(["%s"] * len(cols)) + ")"
    sql = f"INSERT INTO {table(model)} ({', '.join(quote(f.column) for f in cols)}) VALUES "
    sql += ", ".join([values] * count)
    if returning:
        sql += f" RETURNING {quote(model._meta.pk.column)}"
    return sql


def update(obj: models.Model, names: list[str]) -> None:
    """UPDATE these fields of one row from the instance's values (Model.save(update_fields=...) without
    signals or a query build)."""
    sql = _update_sql(type(obj), tuple(names), connection.vendor)
    with cursor() as c:
        c.execute(sql, _update_params(obj, names))


def _update_params(obj: models.Model, names: list[str]) -> list:
    meta = type(obj)._meta
    return [*(meta.get_field(n).get_db_prep_save(getattr(obj, n), connection) for n in names), obj.pk]


@functools.cache
def _update_sql(model, names: tuple[str, ...], vendor: str) -> str:
    sets = ", ".join(f"{col(model, n)} = %s" for n in names)
    return f"UPDATE {table(model)} SET {sets} WHERE {quote(model._meta.pk.column)} = %s"
