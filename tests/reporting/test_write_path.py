"""The write path's shortcuts give what the slow, obvious code gives."""
from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from syncengine.mirror.db import sqlite_time
from syncengine.mirror.reporting import (
    Column,
    Layout,
    RowConverter,
    _boolean,
    _date,
    _datetime,
    _decimal,
    _integer,
    _json,
    _text,
    strptime,
)
from syncengine.types import EntitySchema, Field

VALUES = ["01.02.2020", "1.2.2020", "31.02.2020", " 01.02.2020", "01.02.20", "01.02.2020x", "2020-01-02 03:04:05",
          "2020-01-02  03:04:05", "2020-01-02T03:04:05", "2020-1-2 3:4:5", "2020-01-02 24:00:00", "12/31/2020 23:59",
          "12/31/2020", "01 Feb 2020", "", "٠١.٠٢.٢٠٢٠"]


@pytest.mark.parametrize("fmt", ["%d.%m.%Y", "%Y-%m-%d %H:%M:%S", "%m/%d/%Y %H:%M", "%d %b %Y", "%Y-%m-%d",
                                 "%d.%m.%Y %H:%M", "%H:%M"])
def test_the_compiled_strptime_reads_what_strptime_reads(fmt):
    fast = strptime(fmt)
    for value in VALUES:
        try:
            expected: object = datetime.strptime(value, fmt)
        except ValueError:
            expected = ValueError
        try:
            got: object = fast(value)
        except ValueError:
            got = ValueError
        assert got == expected, (fmt, value)


#: every value goes into a column of every kind
HOSTILE = [None, "", "\x00", "a\x00b", "abc", "Москва", " 12 ", "12", "-7", "1,5", "1.5", "12.50", "-0.5", "0.5",
           "0.0000001", "0.00", "1e3", "1E-7", "NaN", "inf", "-0", "0017", "+5", "1_000", "²", "١٢", "١٢.٥", "12.",
           ".5", 0, 1, -1, 2 ** 63, 2 ** 63 - 1, -2 ** 63, -2 ** 63 - 1, 2 ** 62, True, False, 1.5, 0.1, 1e20,
           float("inf"), [], {}, [1], [169, 2], ["+7(940)770-19-63"], {"a": "x\x00"}, ["x\x00"], ["a\\u0000"],
           "2020-01-02", "2020-01-02T03:04:05Z", "2020-01-02T03:04:05+03:00", "02.01.2020", "2020-01-02 03:04:05",
           "2021-03-28 02:30:00", "2021-10-31 02:30:00", "0001-01-01 00:30:00", "9999-12-31 23:59:59",
           "yes", "off", "t", "true", "1", "2", 1600000000, Decimal("1.10")]
KINDS = [("string", None), ("text", None), ("integer", None), ("number", None), ("boolean", None), ("date", None),
         ("date", "%d.%m.%Y"), ("datetime", None), ("datetime", "%Y-%m-%d %H:%M:%S"), ("json", None),
         ("reference", None), ("picklist", None)]
UNREADABLE = (TypeError, ValueError, OverflowError, ArithmeticError)


def obvious(column: Column, fmt: str | None, zone: str, value: Any) -> Any:
    """One value as the reporting column holds it, the slow way: parsed by the standard library,
    moved to UTC by ``astimezone``, then bound as the sqlite3 adapters of db.py would bind it."""
    if value is None or value == "":
        return None
    try:
        if column.labels is not None:
            return column.labels.get(str(value))
        if column.kind == "date":
            return datetime.strptime(value, fmt).date() if fmt else _date(value)
        if column.kind == "datetime":
            parsed = datetime.strptime(value, fmt) if fmt else _datetime(value)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=ZoneInfo(zone))
            return parsed.astimezone(UTC)
        convert = {"text": _text, "integer": _integer, "number": _decimal, "boolean": _boolean, "json": _json}
        return convert[column.kind](value)
    except UNREADABLE:
        return None


def bound(value: Any) -> Any:
    """What sqlite3 is given for VALUE: the text of db.py's adapters for the types that have one."""
    if isinstance(value, datetime):
        return sqlite_time(value)
    return sqlite3.adapt(value) if isinstance(value, (date, Decimal)) else value


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])  # Berlin: times in the spring gap and the autumn fold
@pytest.mark.parametrize("sqlite", [False, True])
def test_the_compiled_row_is_what_each_value_converted_alone_gives(zone, sqlite):
    fields = [Field("id", "integer")] + [Field(f"{kind}_{i}", kind, choices=(("1", "One"), ("2", "Two")),
                                               format=fmt) for i, (kind, fmt) in enumerate(KINDS)]
    schema = EntitySchema("thing", fields, timezone=zone)
    layout = Layout("crm", schema)
    to_row = RowConverter(schema, layout, sqlite=sqlite).row
    formats = {f.name: f.format for f in fields}
    for number, value in enumerate(HOSTILE):
        record = {"id": number, **{f.name: value for f in fields[1:]}}
        want = [obvious(c, formats[c.field], zone, value) for c in layout.columns]
        row = to_row(str(number), record, "now", False)
        assert row is not None
        got = list(row[1:-2])
        if sqlite:
            want = [bound(w) for w in want]
        assert [(type(g), g) for g in got] == [(type(w), w) for w in want], value
        assert row[0] == number and row[-2:] == (False, "now")
