"""The package's one JSON codec: orjson (fast, UTF-8, exact floats), with the few options we use.

Everything that reads or writes JSON — connectors, the mirror, plans, the CLI, the emulators —
goes through here, so one set of rules holds everywhere: text is UTF-8, datetimes are ISO 8601,
and an object that JSON cannot carry fails loudly unless the caller passes ``default=str``.
"""
from __future__ import annotations

import json as _stdlib
from collections.abc import Callable
from typing import Any

import orjson

#: Raised by :func:`loads` on malformed input (a ``ValueError``).
JSONDecodeError = orjson.JSONDecodeError


def dumpb(value: Any, *, sort_keys: bool = False, indent: bool = False,
          default: Callable[[Any], Any] | None = None) -> bytes:
    """``value`` as compact UTF-8 JSON bytes (``sort_keys``: a stable form for hashing)."""
    option = orjson.OPT_NON_STR_KEYS
    if sort_keys:
        option |= orjson.OPT_SORT_KEYS
    if indent:
        option |= orjson.OPT_INDENT_2
    return orjson.dumps(value, option=option, default=default)


def dumps(value: Any, *, sort_keys: bool = False, indent: bool = False,
          default: Callable[[Any], Any] | None = None, ascii_only: bool = False) -> str:
    """``value`` as JSON text; ``ascii_only`` writes ``\\uXXXX`` escapes as some PHP CRMs do."""
    if ascii_only:  # orjson always writes UTF-8; the stdlib codec is the one that can escape
        return _stdlib.dumps(value, ensure_ascii=True, sort_keys=sort_keys, default=default,
                             indent=2 if indent else None, separators=None if indent else (",", ":"))
    return dumpb(value, sort_keys=sort_keys, indent=indent, default=default).decode()


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    return orjson.loads(data)
