"""Typed reporting tables: one per (system, entity), one column per described field.

``vt`` + ``Contacts`` → table ``vt_contacts`` with the CRM's own field names, the record id in
``id``, and engine columns that start with an underscore (``_deleted`` 0/1, ``_synced_at``).
A field the CRM adds later becomes a new column; rows are never dropped, deletions are flagged.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

from ..types import EntitySchema, Field

_SQL_TYPES: dict[str, Callable[[], sa.types.TypeEngine]] = {
    "integer": sa.BigInteger, "number": sa.Float, "boolean": sa.Boolean, "date": sa.Date,
    "datetime": sa.DateTime,
}


def table_name(system: str, entity: str) -> str:
    return re.sub(r"[^a-z0-9]", "_", f"{system}_{entity}".lower())


def columns_for(schema: EntitySchema) -> list[Field]:
    """The schema's fields that become columns (``id`` and engine names are reserved)."""
    return [f for f in schema.fields if f.name != "id" and not f.name.startswith("_")]


def build_table(system: str, schema: EntitySchema) -> sa.Table:
    table = sa.Table(table_name(system, schema.name), sa.MetaData(),
                     sa.Column("id", sa.String(128), primary_key=True))
    for f in columns_for(schema):
        table.append_column(sa.Column(f.name, _SQL_TYPES.get(f.type, sa.Text)(), nullable=True))
    table.append_column(sa.Column("_deleted", sa.SmallInteger, nullable=False, default=0))
    table.append_column(sa.Column("_synced_at", sa.DateTime, nullable=False))
    return table


def ensure_table(conn: sa.Connection, table: sa.Table) -> list[str]:
    """Create the table, or add the columns it lacks; returns the names of added columns."""
    inspector = sa.inspect(conn)
    if not inspector.has_table(table.name):
        table.create(conn)
        return []
    existing = {c["name"] for c in inspector.get_columns(table.name)}
    missing = [c for c in table.columns if c.name not in existing]
    if missing:
        ops = Operations(MigrationContext.configure(conn))
        for column in missing:
            ops.add_column(table.name, sa.Column(column.name, column.type, nullable=True))
    return [c.name for c in missing]


class RowConverter:
    """Turns a raw record into a typed reporting row; a value that does not parse becomes NULL.

    Rows are tuples in the order of :attr:`columns` (``id``, the fields, ``_deleted``,
    ``_synced_at``), ready for a driver-level ``executemany``.
    """

    def __init__(self, schema: EntitySchema):
        zone = ZoneInfo(schema.timezone) if schema.timezone not in ("UTC", "") else None
        # (name, converter); text fields keep a str as it is without a call (the common case)
        self.fields = [(f.name, None if _SQL_TYPES.get(f.type) is None else _converter(f, zone))
                       for f in columns_for(schema)]
        self.columns = ["id", *(name for name, _ in self.fields), "_deleted", "_synced_at"]

    def __call__(self, remote_id: str, record: dict[str, Any], synced_at: datetime,
                 deleted: int = 0) -> tuple[Any, ...]:
        row: list[Any] = [remote_id]
        append, get = row.append, record.get
        for name, convert in self.fields:
            value = get(name)
            if value is None or value == "":
                append(None)
            elif convert is None:
                append(value if value.__class__ is str else _text(value))
            else:
                try:
                    append(convert(value))
                except (TypeError, ValueError, OverflowError):
                    append(None)
        append(deleted)
        append(synced_at)
        return tuple(row)


def _converter(f: Field, zone: ZoneInfo | None) -> Callable[[Any], Any]:
    if f.type == "integer":
        return lambda v: int(float(v)) if not isinstance(v, int) else v
    if f.type == "number":
        return float
    if f.type == "boolean":
        return _boolean
    if f.type == "date":
        return (lambda v: datetime.strptime(v, f.format).date()) if f.format else _date
    if f.type == "datetime":
        parse = (lambda v: datetime.strptime(v, f.format)) if f.format else _datetime
        return lambda v: _to_utc(parse(v), zone)
    return _text


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return str(value)


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "on", "yes", "y", "t"):
        return True
    if text in ("0", "false", "off", "no", "n", "f"):
        return False
    raise ValueError(value)


def _date(value: Any) -> date:
    return date.fromisoformat(str(value)[:10])


def _datetime(value: Any) -> datetime:
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    text = str(value)
    return datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)


def _to_utc(value: datetime, zone: ZoneInfo | None) -> datetime:
    if value.tzinfo is None:
        if zone is None:
            return value
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC).replace(tzinfo=None)
