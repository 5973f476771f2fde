"""Hand-written joins, read back into model objects the way ``select_related`` does.

For the few hot statements the ORM cannot express in one round trip (an UPDATE ...
RETURNING joined to its related rows) or compiles at a cost comparable to the rest of a
request. The statement is written once per process from the models' metadata; its row
is cut into one object per model with ``Model.from_db``, after each field's own
``from_db_value`` (a JSONField's text is parsed, as the ORM would), and the caller wires
the relations' caches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connections
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
