"""Typed reporting tables: one per (system, entity), one column per described field.

``vt`` + ``Contacts`` → table ``vt_contacts`` with the CRM's own field names, the record id in
``id``, and engine columns that start with an underscore (``_deleted``, ``_synced_at``, and
``_extra`` for the fields past :data:`MAX_COLUMNS`). Types are what a BI tool expects: BIGINT ids
and counts, NUMERIC money, BOOLEAN flags, ``timestamp with time zone`` (UTC ISO text on SQLite),
``jsonb`` lists (JSON text on SQLite), and a ``<field>_label`` twin for coded picklists.
Rows are derived from the raw records, so a table whose types changed is rebuilt from them.
"""
from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from operator import itemgetter
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.dialects.postgresql import JSONB

from ..jsonutil import dumpb
from ..types import EntitySchema, Field
from .db import sqlite_time

log = logging.getLogger("syncengine.mirror")

#: Fields that get a column of their own; the rest go to ``_extra`` (PostgreSQL allows 1,600
#: columns and 8 kB of row after TOAST pointers of 18 bytes; SQLite allows 2,000 columns).
MAX_COLUMNS = 400
NAME_BYTES = 63  # PostgreSQL cuts longer identifiers; every mirror uses the same names
ENGINE_COLUMNS = ("id", "_deleted", "_synced_at", "_extra")
_BIGINT = 2 ** 63

_SQL_TYPES: dict[str, Callable[[], sa.types.TypeEngine]] = {
    "integer": sa.BigInteger, "number": sa.Numeric, "boolean": sa.Boolean, "date": sa.Date,
    "datetime": lambda: sa.DateTime(timezone=True), "json": lambda: sa.JSON().with_variant(JSONB(), "postgresql"),
    "text": sa.Text,
}


@dataclass(frozen=True)
class EntityOptions:
    """What the mirror keeps of an entity, from its system's settings: which fields
    (``fields`` / ``exclude_fields``; the id always; an excluded field is dropped before anything
    is stored) and whether ``<table>_history`` keeps every version (``history``)."""

    keep: frozenset[str] = frozenset()  # empty: every field
    drop: frozenset[str] = frozenset()
    history: bool = False

    @classmethod
    def from_settings(cls, settings: dict[str, Any], entity: str) -> EntityOptions:
        def names(key: str) -> frozenset[str]:
            chosen = set()
            for entry in settings.get(key) or ():
                scope, dot, name = str(entry).rpartition(".")
                if not dot or scope == entity:
                    chosen.add(name)
            return frozenset(chosen)
        history = settings.get("history")
        return cls(names("fields"), names("exclude_fields"),
                   history is True or (isinstance(history, list) and entity in history))

    @property
    def filters(self) -> bool:
        return bool(self.keep or self.drop)

    def allows(self, name: str) -> bool:
        return name == "id" or ((not self.keep or name in self.keep) and name not in self.drop)

    def schema(self, schema: EntitySchema) -> EntitySchema:
        return replace(schema, fields=[f for f in schema.fields if self.allows(f.name)])

    def record(self, record: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if self.allows(k)}


def table_name(system: str, entity: str) -> str:
    return re.sub(r"[^a-z0-9]", "_", f"{system}_{entity}".lower())


@dataclass(frozen=True)
class Column:
    """A data column: its SQL name, the field it comes from, and our kind of value in it."""

    name: str
    field: str
    kind: str                           # a key of _SQL_TYPES
    labels: dict[str, str] | None = None  # set on a picklist's label twin


def _kind(f: Field, integer_ids: bool) -> str:
    if f.type in ("integer", "number", "boolean", "date", "datetime", "json"):
        return f.type
    if f.type in ("reference", "owner") and integer_ids:
        return "integer"  # ids of a system whose ids are numbers join as numbers
    return "text"


class Layout:
    """How an entity's records become reporting rows: the table and its data columns."""

    def __init__(self, system: str, schema: EntitySchema, max_columns: int = MAX_COLUMNS):
        id_field = schema.field("id")
        self.integer_ids = id_field is not None and id_field.type == "integer"
        taken = {name.casefold() for name in ENGINE_COLUMNS}
        self.columns: list[Column] = []
        self.spilled: list[str] = []
        for f in schema.fields:
            if f.name == "id" or f.name.startswith("_"):
                continue
            wanted: list[tuple[str, str, dict[str, str] | None]] = [(f.name, _kind(f, self.integer_ids), None)]
            if f.type == "picklist" and any(value != label for value, label in f.choices) \
                    and schema.field(f"{f.name}_label") is None:
                wanted.append((f"{f.name}_label", "text", dict(f.choices)))
            if len(self.columns) + len(wanted) > max_columns:
                self.spilled.append(f.name)
                continue
            for name, kind, labels in wanted:
                column = Column(_column_name(name, taken), f.name, kind, labels)
                taken.add(column.name.casefold())
                self.columns.append(column)
        id_type: sa.types.TypeEngine = sa.BigInteger() if self.integer_ids else sa.Text()
        self.table = sa.Table(table_name(system, schema.name), sa.MetaData(),
                              sa.Column("id", id_type, primary_key=True))
        for c in self.columns:
            self.table.append_column(sa.Column(c.name, _SQL_TYPES[c.kind](), nullable=True))
        self.table.append_column(sa.Column("_deleted", sa.Boolean, nullable=False, default=False))
        self.table.append_column(sa.Column("_synced_at", sa.DateTime(timezone=True), nullable=False))
        if self.spilled:
            self.table.append_column(sa.Column("_extra", _SQL_TYPES["json"](), nullable=True))


HISTORY_COLUMNS = ("valid_from", "valid_to", "deleted")


def history_table(layout: Layout) -> sa.Table:
    """``<table>_history``: the reporting columns of every observed version (SCD type 2), valid
    from ``valid_from`` until ``valid_to`` (NULL: the current one); ``deleted`` marks a deletion."""
    table = sa.Table(f"{layout.table.name}_history", sa.MetaData())
    for column in layout.table.columns:
        if column.name not in ("_deleted", "_synced_at"):
            table.append_column(sa.Column(column.name, column.type, nullable=True))
    table.append_column(sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False))
    table.append_column(sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True))
    table.append_column(sa.Column("deleted", sa.Boolean, nullable=False))
    sa.Index(f"ix_{table.name}"[:NAME_BYTES], table.c.id, table.c.valid_to)
    return table


def _column_name(name: str, taken: set[str]) -> str:
    """NAME itself if it fits 63 bytes and no other column has it in any case; else a short
    stable form: its start and a hash of the whole name (never the order of the fields)."""
    if len(name.encode()) <= NAME_BYTES and name.casefold() not in taken:
        return name
    suffix = "_" + hashlib.blake2b(name.encode(), digest_size=4).hexdigest()
    head = name.encode()[:NAME_BYTES - len(suffix)].decode(errors="ignore")
    return head + suffix


@dataclass
class SchemaChanges:
    """What :func:`ensure_table` did to an existing table."""

    created: bool = False
    added: list[tuple[str, str]] | None = None     # (column, kind)
    retyped: list[tuple[str, str, str]] | None = None  # (column, old SQL type, new SQL type)
    how: str = "rebuilt from the raw records"

    def describe(self, table: str) -> str:
        parts = [f"+{name} ({kind})" for name, kind in self.added or ()]
        parts += [f"~{name} ({old.lower()} → {new.lower()}, {self.how})" for name, old, new in self.retyped or ()]
        return f"{table}: {', '.join(parts)}" if parts else ""


def ensure_table(conn: sa.Connection, layout: Layout, table: sa.Table | None = None) -> SchemaChanges:
    """Create the table, add the columns it lacks, or, when a column's type changed, drop it so
    the caller rebuilds it from the raw records (rows are derived data; nothing is lost).

    A history table cannot be rebuilt: a changed column keeps its old values renamed
    ``<name>_was_<type>`` beside the new one."""
    history = table is not None
    table = layout.table if table is None else table
    inspector = sa.inspect(conn)
    if not inspector.has_table(table.name):
        table.create(conn)
        return SchemaChanges(created=True)
    dialect = conn.dialect
    existing = {c["name"]: _type_name(c["type"], dialect) for c in inspector.get_columns(table.name)}
    retyped = [(c.name, existing[c.name], _type_name(c.type, dialect)) for c in table.columns
               if c.name in existing and existing[c.name] != _type_name(c.type, dialect)]
    ops = Operations(MigrationContext.configure(conn))
    if retyped and not history:
        table.drop(conn)
        table.create(conn)
        return SchemaChanges(retyped=retyped)
    for name, old, _ in retyped:
        kept = _column_name(f"{name}_was_{old.lower().replace(' ', '_')}", set(existing))
        ops.alter_column(table.name, name, new_column_name=kept)
        existing.pop(name)
    kinds = {c.name: c.kind for c in layout.columns} | {"_extra": "json"}
    missing = [c for c in table.columns if c.name not in existing]
    for column in missing:
        ops.add_column(table.name, sa.Column(column.name, column.type, nullable=True))
    return SchemaChanges(added=[(c.name, kinds.get(c.name, "text")) for c in missing if c.name not in
                                {r[0] for r in retyped}], retyped=retyped,
                         how="old values kept in <name>_was_<old type>")


def _type_name(sql_type: sa.types.TypeEngine, dialect: sa.Dialect) -> str:
    name = sql_type.compile(dialect=dialect)
    return re.sub(r"\(.*\)", "", name).upper()  # VARCHAR(128) and VARCHAR are one type here


class RowConverter:
    """Turns a raw record into a typed reporting row; a value that does not parse becomes NULL.

    Rows are tuples in the order of :attr:`columns` (``id``, the fields, ``_deleted``,
    ``_synced_at``, and ``_extra`` if fields spilled), ready for a driver-level ``executemany``.
    """

    def __init__(self, schema: EntitySchema, layout: Layout, sqlite: bool = False):
        """SQLITE: times, dates and numbers as the text db.py's sqlite3 adapters would bind, made
        once per distinct value in the converters' caches instead of by the driver for every row."""
        zone = ZoneInfo(schema.timezone) if schema.timezone not in ("UTC", "") else None
        formats = {f.name: f.format for f in schema.fields}
        self.columns = ["id", *(c.name for c in layout.columns), "_deleted", "_synced_at",
                        *(["_extra"] if layout.spilled else [])]
        #: ``row(remote_id, record, synced_at, deleted)``: the row, or None when an integer-id
        #: table gets an id that is not an integer
        self.row: Callable[[str, dict[str, Any], Any, bool], tuple[Any, ...] | None] = _compile(
            layout, [_converter(c, formats.get(c.field), zone, sqlite) for c in layout.columns], sqlite)


#: What a converter may raise for a value it cannot read (the column gets NULL).
_UNREADABLE = (TypeError, ValueError, OverflowError, ArithmeticError)


def _common_case(kind: str, labels: bool, sqlite: bool) -> tuple[str, str] | None:
    """(test, stored value) of the value most records hold in a column of KIND, as Python source:
    what its converter returns for it, given without a call (tests/reporting/test_write_path.py)."""
    if labels:
        return None
    return {"text": ('v.__class__ is str and "\\x00" not in v', "v"),
            "integer": ("v.__class__ is int and -_BIGINT <= v < _BIGINT", "v"),
            "number": ("v.__class__ is int", "str(v)" if sqlite else "Decimal(v)"),
            "boolean": ("v.__class__ is bool", "v"),
            "json": ("v.__class__ is list and not v", '"[]"')}.get(kind)


def _compile(layout: Layout, converters: list[Callable[[Any], Any]], sqlite: bool) -> Callable[..., Any]:
    """One function per layout that builds a row: a loop over the columns with a call per value
    was the slowest step of writing a record. Each column reads like this::

        v = get('balance')
        if v is None or v == "":
            c15 = None
        elif v.__class__ is int:       # the common case, when its kind has one
            c15 = Decimal(v)
        else:
            try:
                c15 = convert[15](v)
            except _UNREADABLE:
                c15 = None
    """
    lines = ["def row(remote_id, record, synced_at, deleted):", "    get = record.get"]
    if layout.integer_ids:
        lines += ["    key = integer_id(remote_id)", "    if key is None:",
                  "        return not_an_integer(remote_id)"]
    for i, column in enumerate(layout.columns):
        lines += [f"    v = get({column.field!r})", '    if v is None or v == "":', f"        c{i} = None"]
        if common := _common_case(column.kind, column.labels is not None, sqlite):
            lines += [f"    elif {common[0]}:", f"        c{i} = {common[1]}"]
        lines += ["    else:", "        try:", f"            c{i} = convert[{i}](v)",
                  "        except _UNREADABLE:", f"            c{i} = None"]
    values = ["key" if layout.integer_ids else "remote_id", *(f"c{i}" for i in range(len(layout.columns))),
              "deleted", "synced_at", *(["spill(record)"] if layout.spilled else [])]
    lines.append(f"    return ({', '.join(values)})")
    spilled = layout.spilled

    def spill(record: dict[str, Any]) -> str | None:
        extra = {name: record[name] for name in spilled if record.get(name) not in (None, "")}
        return _json(extra) if extra else None

    def not_an_integer(remote_id: str) -> None:
        log.warning("record id %r is not an integer: left out of the reporting table", remote_id)

    namespace: dict[str, Any] = {
        "convert": converters, "integer_id": integer_id, "not_an_integer": not_an_integer, "spill": spill,
        "_UNREADABLE": _UNREADABLE, "_BIGINT": _BIGINT, "Decimal": Decimal}
    exec(compile("\n".join(lines), f"<reporting row of {layout.table.name}>", "exec"), namespace)
    return namespace["row"]


def integer_id(remote_id: str) -> int | None:
    """The ``id`` of a record in an integer-id table; None for one that is no BIGINT."""
    try:
        return _integer(remote_id)
    except (ValueError, ArithmeticError):  # letters (decimal's InvalidOperation), or past BIGINT
        return None


def _converter(c: Column, fmt: str | None, zone: ZoneInfo | None, sqlite: bool) -> Callable[[Any], Any]:
    if c.labels is not None:
        labels = c.labels
        return lambda v: labels.get(str(v))
    if c.kind == "integer":
        return _integer
    if c.kind == "number":
        return _decimal_text if sqlite else _decimal
    if c.kind == "boolean":
        return _boolean
    if c.kind == "json":
        return _json
    # dates and times repeat across records, and strptime is slow: each converter keeps a cache
    if c.kind == "date":
        read = strptime(fmt) if fmt else None

        def day(value: Any) -> date:
            return read(value).date() if read else _date(value)
        return lru_cache(4096)((lambda v: day(v).isoformat()) if sqlite else day)
    if c.kind == "datetime":
        parse = strptime(fmt) if fmt else _datetime
        if sqlite:
            return lru_cache(4096)(lambda v: _utc_text(parse(v), zone))
        return lru_cache(4096)(lambda v: _to_utc(parse(v), zone))
    return _text


_NUMBERS = {"%d": ("day", r"([0-9]{1,2})"), "%m": ("month", r"([0-9]{1,2})"), "%Y": ("year", r"([0-9]{4})"),
            "%H": ("hour", r"([0-9]{1,2})"), "%M": ("minute", r"([0-9]{1,2})"), "%S": ("second", r"([0-9]{1,2})")}


def strptime(fmt: str) -> Callable[[str], datetime]:
    """``datetime.strptime(value, FMT)`` made once: strptime parses its format again and takes a
    lock at every call, the slowest step of writing a record. Formats of numbers only (``%d.%m.%Y``,
    ``%Y-%m-%d %H:%M:%S``) become one regular expression; any other directive keeps strptime."""
    pattern, order = [], []
    for part in re.split(r"(%.)", fmt):
        if part in _NUMBERS and _NUMBERS[part][0] not in order:
            order.append(_NUMBERS[part][0])
            pattern.append(_NUMBERS[part][1])
        elif part.startswith("%"):
            return lambda value: datetime.strptime(value, fmt)
        else:  # as strptime: a run of whitespace in the format matches any run of whitespace
            pattern.append(r"\s+".join(re.escape(piece) for piece in re.split(r"\s+", part)))
    if not {"year", "month", "day"} <= set(order):
        return lambda value: datetime.strptime(value, fmt)
    match = re.compile("".join(pattern)).fullmatch
    # year … second, taken from the groups; a part the format lacks is the "0" after them
    pick = itemgetter(*(order.index(n) if n in order else len(order)
                        for n in ("year", "month", "day", "hour", "minute", "second")))

    def parse(value: str) -> datetime:
        found = match(value)
        if found is None:
            raise ValueError(f"{value!r} does not match {fmt!r}")
        year, month, day, hour, minute, second = map(int, pick((*found.groups(), "0")))
        return datetime(year, month, day, hour, minute, second)

    return parse


def _text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return _json(value)
    text = value if isinstance(value, str) else str(value)
    return text.replace("\x00", "")  # PostgreSQL text cannot hold NUL; one bad value must not fail a batch


_BACKSLASH = ord("\\")


def _json(value: Any) -> str:
    if not value and value.__class__ in (list, dict):  # most list fields are empty
        return "[]" if value.__class__ is list else "{}"
    data = dumpb(value)
    if _BACKSLASH in data and b"\\u0000" in data:  # nor can jsonb (a byte is found 10× faster than bytes)
        data = dumpb(_without_nul(value))
    return data.decode()


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def _integer(value: Any) -> int:
    if value.__class__ is int:
        number = value
    elif isinstance(value, str) and value.isdigit():
        number = int(value)
    else:
        number = int(value) if isinstance(value, int) else int(Decimal(str(value).strip()))
    if not -_BIGINT <= number < _BIGINT:
        raise OverflowError(value)
    return int(number)


def _decimal(value: Any) -> Decimal:
    if value.__class__ is int:
        return Decimal(value)
    number = Decimal(repr(value) if isinstance(value, float) else str(value).strip().replace(",", "."))
    if not number.is_finite():
        raise InvalidOperation(value)
    return number


_PLAIN_NUMBER = re.compile(r"-?[1-9][0-9]*(\.[0-9]+)?").fullmatch  # the text str(Decimal(it)) gives back


def _decimal_text(value: Any) -> str:
    """``str(_decimal(value))``, the text SQLite is given for a number (db.py), made without a
    Decimal for the plain numbers most CRMs send."""
    if value.__class__ is str and _PLAIN_NUMBER(value):
        return value
    return str(_decimal(value))


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
        try:
            return datetime.fromtimestamp(value, UTC)
        except OSError as exc:  # the platform's time_t cannot hold it (2 ** 62, say): no time, as any bad value
            raise ValueError(value) from exc
    text = str(value)
    return datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)


def _to_utc(value: datetime, zone: ZoneInfo | None) -> datetime:
    """An aware UTC datetime (SQLite stores it as naive UTC text, see ``db.py``)."""
    if value.tzinfo is None:
        return _naive_utc(value, zone).replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _utc_text(value: datetime, zone: ZoneInfo | None) -> str:
    """``db.sqlite_time(_to_utc(value, zone))`` without two of its three ``replace`` calls, the slow part."""
    if value.tzinfo is None:
        return _naive_utc(value, zone).isoformat(" ")
    return sqlite_time(value)


def _naive_utc(wall: datetime, zone: ZoneInfo | None) -> datetime:
    """A naive time of ZONE as naive UTC: minus the zone's offset at that wall time, as
    ``replace(tzinfo=zone).astimezone(UTC)`` takes it (fold 0), without that slow ``replace``."""
    return wall if zone is None else wall - (zone.utcoffset(wall) or timedelta())
