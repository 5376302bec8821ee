"""Raw values ↔ canonical values.

Each side's record is translated into *canonical* values: plain Python types, HTML entities
decoded where the CRM stores text encoded (strict ``&name;``/``&#N;`` forms only), text trimmed,
e-mail and phone normalised, dates as ``YYYY-MM-DD``, date-times as UTC ``YYYY-MM-DDTHH:MM:SSZ``,
picklist values as the left side's spelling, references as the id of the link that pairs the
referenced records. The shadow, the diff and the conflict check compare only canonical values, so
a formatting difference between two CRMs is never a change.
"""
from __future__ import annotations

import html
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..types import EntitySchema, Field
from .normalize import normalize, phone_is_valid
from .spec import SIDES, FieldMap, Mapping

_DESCRIBED = {"date": "date", "datetime": "datetime", "integer": "integer", "number": "number",
              "boolean": "boolean"}
_STRINGY = {"string", "text", "email", "phone", "url", "picklist", "date", "datetime", "multipicklist"}
_DATE_FORMATS = ("%Y-%m-%d", "%d.%m.%Y", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%d.%m.%Y %H:%M:%S")
_DATETIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%d.%m.%Y %H:%M:%S",
                     "%d.%m.%Y %H:%M", "%Y-%m-%d")
_EPOCH = datetime(1970, 1, 1)
_TRUE = {"1", "true", "yes", "on", "да", "y", "t"}
_FALSE = {"0", "false", "no", "off", "нет", "n", "f"}
WRITE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_ENTITY = re.compile(r"&(?:[A-Za-z][A-Za-z0-9]{1,31}|#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6});")


def decode_entities(text: str) -> str:
    """Strict HTML entity decoding: only complete ``&name;``/``&#N;``/``&#xN;`` forms, so a URL's
    ``&currency=`` stays text (``html.unescape`` alone would make it ``¤cy=``)."""
    return _ENTITY.sub(lambda m: html.unescape(m.group(0)), text) if "&" in text else text


class TranslationError(Exception):
    """A value that cannot be translated; the record is parked with this message."""

    def __init__(self, field: str, message: str):
        super().__init__(f"field {field}: {message}")
        self.field = field


@dataclass(frozen=True)
class Pending:
    """A reference whose target is not linked yet: the field waits, nothing is written."""

    side: str
    raw: str


class RefResolver:
    """Raw record ids ↔ link ids of the referenced mappings."""

    def __init__(self) -> None:
        self._to_link: dict[tuple[str, str, str], int] = {}
        self._to_raw: dict[tuple[str, int, str], str] = {}

    def add(self, mapping: str, link_id: int, left_id: str, right_id: str) -> None:
        for side, rid in (("left", left_id), ("right", right_id)):
            self._to_link[(mapping, side, rid)] = link_id
            self._to_raw[(mapping, link_id, side)] = rid

    def canonical(self, mapping: str, side: str, raw: str) -> Any:
        link = self._to_link.get((mapping, side, raw))
        return f"@{link}" if link is not None else Pending(side, raw)

    def raw(self, mapping: str, side: str, canonical: str) -> str | None:
        return self._to_raw.get((mapping, int(canonical[1:]), side))


@dataclass(frozen=True)
class EditTime:
    """When a value was last edited: the CRM's own edit time if it keeps one (naive UTC, to
    ``precision`` seconds), and when a pull first saw the change."""

    seen: datetime
    own: datetime | None = None
    precision: int = 1


def edit_order(times: list[EditTime]) -> list[Any]:
    """Sort keys for TIMES, later edit = greater key, equal keys = a tie. The CRMs' own edit times
    when every one keeps one, compared at the coarsest precision among them (a minute-precise
    clock cannot say which edit of that minute came last); else when a pull first saw each change
    (the start of that pull run, the same for every system of one sync, so pull order cannot decide)."""
    if all(t.own is not None for t in times):
        step = max(t.precision for t in times)
        return [int((t.own - _EPOCH).total_seconds()) // step for t in times if t.own is not None]
    return [t.seen for t in times]


class Translator:
    """Translates one mapping's records, given both sides' schemas."""

    def __init__(self, mapping: Mapping, schemas: dict[str, EntitySchema], refs: RefResolver | None = None):
        self.mapping = mapping
        self.schemas = schemas
        self.refs = refs or RefResolver()
        self.zones = {side: _zone(schemas[side].timezone) for side in SIDES}
        self.types = {name: self._canonical_type(fm) for name, fm in mapping.fields.items()}
        self.described: dict[tuple[str, str], Field | None] = {
            (name, side): schemas[side].field(fm.paths[side].key)
            for name, fm in mapping.fields.items() for side in fm.paths}
        self.invalid_phones: list[str] = []  # "vt:Contacts 12 phone '044 123 4567'": kept as written

    def _canonical_type(self, fm: FieldMap) -> str:
        if fm.type:
            return fm.type
        if fm.values is not None or fm.ref or fm.template is not None:
            return "string"
        found = []
        for side, path in fm.paths.items():
            described = self.schemas[side].field(path.key)
            if described is not None and described.type in _DESCRIBED and path.index is None:
                found.append(_DESCRIBED[described.type])
        if not found:
            return "string"
        if "date" in found or "datetime" in found:
            return "datetime" if found == ["datetime"] * len(found) else "date"
        if "number" in found:
            return "number"
        return found[0]

    # -- reading ---------------------------------------------------------------------------
    def canonical(self, side: str, record: dict[str, Any]) -> dict[str, Any]:
        """The canonical values of every synced field SIDE has (paths and template sources)."""
        out: dict[str, Any] = {}
        for name, fm in self.mapping.fields.items():
            if not fm.synced:
                continue
            if fm.template is not None:
                out[name] = self.render(fm, record) if side == fm.source else self._value(fm, side, record)
            else:
                out[name] = self._value(fm, side, record)
        return out

    def _value(self, fm: FieldMap, side: str, record: dict[str, Any]) -> Any:
        raw = fm.paths[side].get(record)
        if isinstance(raw, str):
            raw = (decode_entities(raw) if self.schemas[side].html_encoded else raw).strip()
        if raw is None or raw == "" or raw == [] or raw == "0000-00-00":
            return None
        if fm.ref:
            return self.refs.canonical(fm.ref, side, str(raw))
        if fm.values is not None:
            key = _text(raw)
            if side == "left":
                if key in fm.values:
                    return key
            else:
                for left, right in fm.values.items():
                    if _text(right) == key:
                        return left
            raise TranslationError(fm.name, f"{self.mapping.side(side)}.{fm.paths[side]} = {raw!r} "
                                   "has no entry in the value map (add it to values = {…})")
        value = self._typed(fm, side, raw)
        if fm.normalize and isinstance(value, str):
            if fm.normalize == "phone" and not phone_is_valid(value, fm.country):
                self.invalid_phones.append(f"{self.mapping.side(side)} {record.get('id')} {fm.name} {value!r}")
            value = normalize(fm.normalize, value, country=fm.country)
        return value

    def typed_by_person(self, fm: FieldMap, value: Any) -> Any:
        """A value a person typed (a conflict's given value), spelled as the field's values are."""
        if fm.normalize and isinstance(value, str) and value.strip():
            return normalize(fm.normalize, value.strip(), country=fm.country)
        return value

    def _typed(self, fm: FieldMap, side: str, raw: Any) -> Any:
        ctype = self.types[fm.name]
        try:
            if ctype == "string":
                return raw if isinstance(raw, (list, dict)) else _text(raw)
            if ctype == "integer":
                return int(float(raw)) if not isinstance(raw, bool) else int(raw)
            if ctype == "number":
                number = float(raw)
                return int(number) if number.is_integer() else number
            if ctype == "boolean":
                return _boolean(raw)
            if ctype == "date":
                return _parse(str(raw), self._formats(fm, side, _DATE_FORMATS)).date().isoformat()
            if ctype == "datetime":
                moment = _parse(str(raw), self._formats(fm, side, _DATETIME_FORMATS), aware=True)
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=self.zones[side])
                return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        except (TypeError, ValueError):
            raise TranslationError(fm.name, f"{self.mapping.side(side)}.{fm.paths[side]} = {raw!r} "
                                   f"is not a {ctype}") from None
        raise AssertionError(ctype)

    def _formats(self, fm: FieldMap, side: str, defaults: tuple[str, ...]) -> tuple[str, ...]:
        described = self.described.get((fm.name, side))
        own = [f for f in (fm.formats.get(side), described.format if described else None) if f]
        return (*own, *defaults)

    def render(self, fm: FieldMap, record: dict[str, Any]) -> Any:
        encoded = self.schemas[fm.source or "left"].html_encoded
        values = {k: (decode_entities(v) if encoded else v) if isinstance(v, str) else ("" if v is None else v)
                  for k, v in record.items()}
        text = string.Formatter().vformat(fm.template or "", (), _Blank(values)).strip()
        return text or None

    def match_key(self, canonical: dict[str, Any]) -> tuple[Any, ...] | None:
        """The identity of a record for matching; None when a match_on value is empty."""
        if not self.mapping.match_on:
            return None
        key = tuple(canonical.get(name) for name in self.mapping.match_on)
        if any(v is None or isinstance(v, Pending) for v in key):
            return None
        return tuple(v.casefold() if isinstance(v, str) else v for v in key)

    def modified_at(self, side: str, record: dict[str, Any]) -> datetime | None:
        """When the CRM says the record last changed (naive UTC), if its schema names the field."""
        name = self.schemas[side].modified_field
        raw = record.get(name) if name else None
        if not raw:
            return None
        try:
            moment = _parse(str(raw), _DATETIME_FORMATS, aware=True)
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.zones[side])
        return moment.astimezone(UTC).replace(tzinfo=None)

    def edit_time(self, side: str, record: dict[str, Any], seen: datetime) -> EditTime:
        """When SIDE's RECORD was last edited, as far as the mirror can tell (SEEN: when a pull saw it)."""
        return EditTime(seen, self.modified_at(side, record), self.schemas[side].modified_precision)

    def newer_side(self, records: dict[str, dict[str, Any]], seen: dict[str, datetime]) -> str | None:
        """The side edited last, or None for a tie (see :func:`edit_order`)."""
        left, right = edit_order([self.edit_time(side, records[side], seen[side]) for side in SIDES])
        if left == right:
            return None
        return "right" if right > left else "left"

    # -- writing ---------------------------------------------------------------------------
    def to_raw(self, side: str, values: dict[str, Any], current: dict[str, Any] | None = None) -> dict[str, Any]:
        """Canonical VALUES as SIDE's API takes them (lists rebuilt around indexed paths)."""
        out: dict[str, Any] = {}
        for name, canon in values.items():
            fm = self.mapping.fields[name]
            path = fm.paths[side]
            raw = self._raw(fm, side, canon)
            if path.index is None:
                out[path.key] = raw
                continue
            out[path.key] = put_element(out.get(path.key, (current or {}).get(path.key)), path.index, raw,
                                        key=partial(self.typed_by_person, fm))
        return out

    def _raw(self, fm: FieldMap, side: str, canon: Any) -> Any:
        described = self.described.get((fm.name, side))
        if canon is None:
            return "" if described is None or described.type in _STRINGY else None
        if fm.ref:
            raw = self.refs.raw(fm.ref, side, canon)
            if raw is None:
                raise TranslationError(fm.name, f"the {fm.ref} link {canon} has no {side} record")
            return raw
        if fm.values is not None:
            if side == "left":
                return canon
            if canon not in fm.values:
                raise TranslationError(fm.name, f"{canon!r} has no entry in the value map "
                                       f"(add it to values = {{…}} to write it to {self.mapping.right})")
            return fm.values[canon]
        ctype = self.types[fm.name]
        if ctype == "date":
            fmt = fm.formats.get(side)
            return date.fromisoformat(canon).strftime(fmt) if fmt else canon
        if ctype == "datetime":
            moment = datetime.strptime(canon, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            return moment.astimezone(self.zones[side]).strftime(fm.formats.get(side) or WRITE_TIME_FORMAT)
        if ctype == "boolean":
            return 1 if canon else 0
        return canon

    def const_values(self, side: str) -> dict[str, Any]:
        """Constants written on create to SIDE."""
        out: dict[str, Any] = {}
        for fm in self.mapping.fields.values():
            if fm.is_const and side in fm.paths:
                path = fm.paths[side]
                out[path.key] = fm.const if path.index is None else [fm.const]
        return out


class _Blank(dict):
    """Template values: a key the record lacks renders empty."""

    def __missing__(self, key: str) -> str:
        return ""


def put_element(items: Any, index: int, raw: Any, key: Callable[[Any], Any] | None = None) -> list[Any]:
    """ITEMS (a raw list, a single value or nothing) with element INDEX set to RAW; a blank RAW blanks
    the element, so the ones after it keep their places. A RAW the list already holds elsewhere (KEY:
    how elements compare, e.g. a normalised e-mail) trades places with the element at INDEX: the
    address a user made the first is not listed twice, and the one it replaced stays in the list."""
    items = list(items) if isinstance(items, list) else ([] if items in (None, "") else [items])
    if raw in (None, ""):
        if index < len(items):
            items[index] = ""
    else:
        while len(items) <= index:
            items.append("")
        same = key or (lambda value: value)
        wanted = same(raw)
        twin = next((i for i, item in enumerate(items)
                     if i != index and item not in (None, "") and same(item) == wanted), None)
        if twin is not None:
            items[twin] = items[index]
        items[index] = raw
    while items and items[-1] in (None, ""):
        items.pop()
    return items


def _zone(name: str | None) -> Any:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, (int, float)):
        return bool(raw)
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(raw)


def _parse(text: str, formats: tuple[str, ...], *, aware: bool = False) -> datetime:
    text = text.strip()
    if aware and ("T" in text or "+" in text[10:] or text.endswith("Z")):
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            pass
    for fmt in formats:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise ValueError(text)
