"""Hand-written joins, read back into model objects the way ``select_related`` does.

For the few hot statements the ORM cannot express in one round trip (an UPDATE ...
RETURNING joined to its related rows) or compiles at a cost comparable to the rest of a
request. The statement is written once per process from the models' metadata; its row
is cut into one object per model with ``Model.from_db``, after each field's own
``from_db_value`` (a JSONField's text is parsed, as the ORM would), and the caller wires
the relations' caches.

Also the two ways the hot paths talk to PostgreSQL past the ORM's costs: a cursor whose
statements are prepared once per connection (:func:`prepared_cursor`), and many rows
inserted from one JSON parameter (:func:`rows_insert`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from django.db.models import Field, Model, OneToOneField


def select_list(alias: str, parts: Sequence[tuple[str, type[Model]]]) -> str:
    """``t.col, ...`` for every concrete column of each (table alias, model), in order."""
    quote = connections[alias].ops.quote_name
    return ", ".join(f"{short}.{quote(f.column)}" for short, model in parts for f in model._meta.concrete_fields)


def column(alias: str, short: str, model: type[Model], name: str) -> str:
    """``t.col`` for one field of a model (its column, which may differ from its name);
    ``"pk"`` names the primary key."""
    field = model._meta.pk if name == "pk" else model._meta.get_field(name)
    assert isinstance(field, Field)
    return f"{short}.{connections[alias].ops.quote_name(field.column)}"


def objects_from_row(alias: str, row: Sequence[Any], models: Sequence[type[Model]]) -> list[Any]:
    """One object per model from a row laid out by :func:`select_list`; None for a model
    whose primary key is NULL (an outer join that found no row)."""
    connection = connections[alias]
    objects: list[Any] = []
    start = 0
    for model in models:
        fields = model._meta.concrete_fields
        values = list(row[start : start + len(fields)])
        start += len(fields)
        pk = model._meta.pk
        assert pk is not None
        if values[fields.index(pk)] is None:
            objects.append(None)
            continue
        for i, field in enumerate(fields):
            convert = getattr(field, "from_db_value", None)
            if convert is not None and values[i] is not None:
                values[i] = convert(values[i], None, connection)
        objects.append(model.from_db(alias, [f.attname for f in fields], values))
    return objects


def cache_one_to_one(field: OneToOneField[Any, Any], parent: Model, child: Model | None) -> None:
    """Cache both ends of a one-to-one read in the same row, as ``select_related`` does:
    ``parent``'s reverse accessor gives ``child`` (None: known to have none, no query
    to find out), and ``child.<field>`` gives ``parent``."""
    field.remote_field.set_cached_value(parent, child)
    if child is not None:
        field.set_cached_value(child, parent)


@contextlib.contextmanager
def prepared_cursor(connection: BaseDatabaseWrapper) -> Iterator[CursorWrapper]:
    """A cursor whose statements PostgreSQL parses and plans once per connection.

    Django turns psycopg's prepared statements off (a transaction-mode pooler cannot
    keep them) and binds parameters on the client, so every statement is planned anew:
    about 0.6 ms of the server's time for a job's claim, more than it takes to run.
    This cursor binds on the server and prepares, for the few statements a worker runs
    for every job. It is Django's cursor wrapper over it, so query logging, execute
    wrappers and error translation are as for any cursor. ``DB_PREPARED_STATEMENTS=0``
    (behind such a pooler), another database, or a connection that logs its queries
    (DEBUG, a test counting statements: Django reads a logged statement's text back from
    psycopg, which has it only for client-bound ones) gives a plain cursor.
    """
    plain = connection.vendor != "postgresql" or not settings.DB_PREPARED_STATEMENTS or connection.queries_logged
    if plain:
        with connection.cursor() as cursor:
            yield cursor
        return
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    raw: Any = _PreparingCursor(connection.connection)
    with connection.make_cursor(raw) as cursor:
        yield cursor


def rows_insert(model: type[Model], rows: list[dict[str, Any]], *, on_conflict: str = "") -> None:
    """INSERT many rows of ``model`` (PostgreSQL) from one JSON parameter.

    ``rows`` are keyed by column (``submission_id``), with JSON values; ``on_conflict``
    is appended as it is (an ``ON CONFLICT ...`` clause). ``bulk_create`` sends one array
    per column, and psycopg quotes every element of those arrays in Python: for a
    batch's 500 grades that was most of the time its grading took, on the batch's
    critical path. Here the rows are one ``json.dumps`` (C) and the server unpacks them.
    """
    if not rows:
        return
    connection = connections[DEFAULT_DB_ALIAS]
    quote = connection.ops.quote_name
    fields: list[Field[Any, Any]] = []
    for name in rows[0]:
        field = model._meta.get_field(name)
        if not isinstance(field, Field) or not field.db_type(connection):
            raise ValueError(f"{model.__name__}.{name} is not a column")
        fields.append(field)
    columns = ", ".join(quote(f.column) for f in fields)
    record = ", ".join(f"{quote(f.column)} {f.db_type(connection)}" for f in fields)
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({columns})"
        f" SELECT {columns} FROM jsonb_to_recordset(%s::jsonb) AS r({record}) {on_conflict}"
    )
    with prepared_cursor(connection) as cursor:
        cursor.execute(sql, [json.dumps(rows, cls=DjangoJSONEncoder)])


class _PreparingCursor(psycopg.Cursor[Any]):
    def execute(self, query: Any, params: Any = None, **options: Any) -> Any:
        # The connection prepares nothing (Django's default); this statement is prepared
        # on first use and the prepared statement reused from then on.
        conn = self.connection
        threshold = conn.prepare_threshold
        conn.prepare_threshold = 0
        try:
            return super().execute(query, params, prepare=True)
        finally:
            conn.prepare_threshold = threshold
