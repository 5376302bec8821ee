"""Rukovoditel 3.6 (``api/rest.php``): one POST endpoint, numeric entity and field ids, no change feed.

What the engine sees, and why:

* **Names.** Entities and fields are numeric in the API (entity 25, ``field_215``); records and
  :meth:`describe` use names derived from the CRM's own names: entity ``Contacts``, field ``email``;
  Cyrillic is transliterated ("Телефон" → ``telefon``). Fields are named in id order, so adding a
  field never renames another; a clash gets the field id as suffix (``phone_230``).
  :meth:`field_ids` maps the names back to ``field_<id>``.
* **Values.** Choice, user and link fields keep the raw ids in the field (``status = "69"``,
  ``tags = "71,72"``, comma strings as the API writes them) and the display text in a read-only
  twin ``<name>_label``. Dates become ISO dates, datetimes ISO timestamps in UTC (the API prints
  ``m/d/Y H:i`` in the app time zone), numbers become numbers, checkboxes booleans, empty values
  None. ``date_updated`` is None for a record never edited (the API shows the epoch).
* **Changes.** Each poll reads a ``date_updated`` window and a ``date_added`` window (a new record
  keeps ``date_updated = 0`` and only the second finds it) and joins them by id. The cursor is
  ``{"v": 1, "since": "YYYY-MM-DD HH:MM"}``: the newest change seen, in the server's own clock and
  zone as its rows print it, so neither our clock nor the ``timezone`` setting can shift it. Each
  window starts a whole minute plus ``overlap`` seconds before it (the rows show minutes only).
  Kanban moves, imports and deletions leave no trace: the engine's sweep and ``pull --full``
  (cursor None: every record, as scan batches) find them.
* **The full read resumes.** ``select`` has no order and no ``id > N`` filter, so offset pages
  cannot be resumed; a full read lists the ids (``select_fields=0``, 1,000 cheap rows a page), then
  reads them by ``filters[id]`` in ascending chunks, each committed with
  ``{"since": <newest change the listing showed>, "after": <last id>}``. A read cut short lists the
  ids again, reads those above ``after``, then the two windows since ``since``: records added or
  edited meanwhile arrive, and only the chunks not yet committed are read again.
* **Errors.** Rukovoditel answers a wrong password, an inactive account, a blocked IP and a
  refused permission all with HTTP 500 and an empty body; a login probe tells them apart from a
  crash (which is retried). SQL errors come as HTML with HTTP 200 and become ``ValidationError``.
"""
from __future__ import annotations

import html
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import requests

from ..errors import AuthError, ConnectorError, NotFound, ProtocolError, TransientError, ValidationError
from ..http import HttpClient, json_body, origin
from ..jsonutil import JSONDecodeError, dumpb, dumps, loads
from ..translit import identifier
from ..types import Capture, ChangeBatch, EntitySchema, Field, SystemSettings, setting
from .base import Connector
from .listing import Page, offset_pages
from .session import SessionCache

BASE_KEYS = ("id", "parent_item_id", "date_added", "date_updated", "created_by")
RESERVED = {"fieldtype_id", "fieldtype_date_added", "fieldtype_date_updated", "fieldtype_created_by",
            "fieldtype_parent_item_id", "fieldtype_action"}
#: Rukovoditel field type → our field type. Unlisted types are strings.
TYPES = {
    "fieldtype_textarea": "text", "fieldtype_textarea_wysiwyg": "text", "fieldtype_todo_list": "text",
    "fieldtype_input_email": "email", "fieldtype_phone": "phone", "fieldtype_input_url": "url",
    "fieldtype_input_numeric": "number", "fieldtype_input_numeric_comments": "number",
    "fieldtype_formula": "number", "fieldtype_progress": "number",
    "fieldtype_input_date": "date", "fieldtype_input_date_extra": "date",
    "fieldtype_input_datetime": "datetime", "fieldtype_dynamic_date": "datetime",
    "fieldtype_dropdown": "picklist", "fieldtype_radioboxes": "picklist", "fieldtype_autostatus": "picklist",
    "fieldtype_stages": "picklist", "fieldtype_color": "picklist",
    "fieldtype_dropdown_multiple": "multipicklist", "fieldtype_checkboxes": "multipicklist",
    "fieldtype_tags": "multipicklist", "fieldtype_dropdown_multilevel": "multipicklist",
    "fieldtype_users": "owner", "fieldtype_users_ajax": "owner", "fieldtype_grouped_users": "owner",
    "fieldtype_users_approve": "owner", "fieldtype_user_roles": "owner", "fieldtype_access_group": "owner",
    "fieldtype_entity": "reference", "fieldtype_entity_ajax": "reference",
    "fieldtype_boolean": "boolean", "fieldtype_boolean_checkbox": "boolean",
}
#: Types whose ``select`` rows carry a ``<id>_db_value`` twin with the raw ids (spec §10.1).
RAW_TWIN = {"picklist", "multipicklist", "owner", "reference"}
YES = {"yes", "да", "true", "1", "on"}
EPOCH = "1970-01-02 00:00:00"     # "everything": a window start before any record
PHP_TO_STRPTIME = {"d": "%d", "j": "%d", "m": "%m", "n": "%m", "Y": "%Y", "y": "%y", "H": "%H",
                   "G": "%H", "i": "%M", "s": "%S", "M": "%b", "F": "%B", "D": "%a", "l": "%A"}
ID_LIST_PAGE = 1000


@dataclass(frozen=True)
class _Field:
    api_id: str        # "215"
    name: str          # readable: "email"
    label: str         # the CRM's name: "Email"
    type: str          # our type
    raw_type: str      # "fieldtype_input_email"
    config: dict[str, Any]
    mandatory: bool = False
    choices: tuple[tuple[str, str], ...] = ()
    heading: bool = False  # the field the CRM titles a record with

    @property
    def twin(self) -> str | None:
        return f"{self.name}_label" if self.type in RAW_TWIN else None

    @property
    def column(self) -> str:
        return f"field_{self.api_id}"


@dataclass
class _Entity:
    api_id: str
    name: str          # readable: "Contacts"
    label: str         # the CRM's name
    parent_id: str     # "0" for top-level entities
    fields: dict[str, _Field] | None = None   # by api id, loaded on first use
    reserved: dict[str, str] | None = None    # api id → type of the reserved fields (ID, Created By…)


class _Blank(ConnectorError):
    """HTTP 500 with an empty body before we know whether the login itself works."""


@dataclass(frozen=True, kw_only=True)
class RukovoditelSettings(SystemSettings):
    url: str = setting(form="url", help="the app's address, e.g. https://crm.example.ru "
                       "(the API is <url>/api/rest.php)")
    username: str = setting(help="login of an administrator (access group 0)")
    password: str = setting(secret=True, help="that user's password")
    api_key: str = setting(secret=True, help="the key under Extension → Tools → API")
    timezone: str = setting("Europe/Moscow", form="timezone",
                            help="the app's time zone (Configuration → Application), e.g. Europe/Moscow")
    date_format: str = setting("m/d/Y", help="the app's date format, PHP letters")
    datetime_format: str = setting("m/d/Y H:i", help="the app's date-time format, PHP letters")
    page_size: int = setting(200, minimum=1, help="records per select page")
    entities: list[str] = setting(  # noqa: RUF009 - setting() makes a dataclasses.field
        help='entities to pull, e.g. ["Contacts"]; `syncengine discover` lists them')


class RukovoditelConnector(Connector):
    kind = "rukovoditel"
    sweep_reads_records = True  # kanban moves and imports do not touch date_updated
    Settings = RukovoditelSettings
    settings: RukovoditelSettings

    def __init__(self, name: str, config: Mapping[str, Any], http: HttpClient):
        super().__init__(name, config, http)
        self.zone = ZoneInfo(self.settings.timezone)
        url = self.settings.url.rstrip("/")
        self.endpoint = url if url.endswith(".php") else f"{url}/api/rest.php"
        self.page_size = self.settings.page_size
        self.date_format = _strptime_format(self.settings.date_format)
        self.datetime_format = _strptime_format(self.settings.datetime_format)
        self.margin = timedelta(seconds=60 + self.settings.overlap)
        self._session: SessionCache[dict[str, Any]] = SessionCache(self._probe_login)
        self._entities: dict[str, _Entity] | None = None

    # -- metadata --------------------------------------------------------------------------
    def check(self) -> str:
        user = self._login()
        role = "administrator" if user.get("group_id") == 0 else f"access group {user.get('group_id')}"
        text = f"Rukovoditel at {origin(self.endpoint)}: logged in as {user.get('username')} ({role})"
        if user.get("group_id") == 0:
            text += f", {len(self._catalogue())} entities"
        return text

    def entities(self) -> list[str]:
        return list(self._catalogue())

    def describe(self, entity: str) -> EntitySchema:
        e = self._entity(entity)
        catalogue = self._catalogue()
        parent = next((p.name for p in catalogue.values() if p.api_id == e.parent_id), None)
        fields = [Field("id", "string", label="ID", editable=False),
                  Field("date_added", "datetime", label="Date Added", editable=False),
                  Field("date_updated", "datetime", label="Date Updated", editable=False),
                  Field("created_by", "owner", label="Created By"),
                  Field("created_by_label", "string", label="Created By (name)", editable=False)]
        if parent:
            fields.append(Field("parent_item_id", "reference", label="Parent", mandatory=True,
                                refers_to=(parent,)))
        for f in self._fields(e).values():
            refers: tuple[str, ...] = ()
            if f.type == "reference":
                target = str(f.config.get("entity_id", ""))
                refers = tuple(p.name for p in catalogue.values() if p.api_id == target)
            fields.append(Field(f.name, f.type, label=f.label, choices=f.choices, refers_to=refers,
                                mandatory=f.mandatory))
            if f.twin:
                fields.append(Field(f.twin, "string", label=f"{f.label} (display)", editable=False))
        return EntitySchema(e.name, fields, label=e.label, timezone="UTC", modified_field="date_updated",
                            modified_precision=60,
                            name_fields=tuple(f.name for f in self._fields(e).values() if f.heading))

    def field_ids(self, entity: str) -> dict[str, str]:
        """Readable field name → the API's ``field_<id>`` (what ``syncengine discover`` shows)."""
        return {f.name: f.column for f in self._fields(self._entity(entity)).values()}

    def capture(self, entity: str) -> Capture:
        return Capture.INCREMENTAL

    def change_reading(self, entity: str, cursor: str | None) -> str:
        if cursor is None:
            return "full read: ids listed, records read by id (no cursor yet)"
        since, after = _cursor_state(cursor)
        if after is not None:
            return f"full read cut short: resumes after id {after}, then `select` by change date"
        start = f"{since:%Y-%m-%d %H:%M} (CRM time)" if since else "the start (no record seen yet)"
        return f"`select` by date_updated and date_added since {start}; kanban moves, imports and deletions by sweep"

    # -- reading ---------------------------------------------------------------------------
    def read_changes(self, entity: str, cursor: str | None) -> Iterator[ChangeBatch]:
        e = self._entity(entity)
        since, after = _cursor_state(cursor)
        if cursor is None:
            yield from self._first_read(e)
        elif after is not None:   # a first read cut short: go on after its last committed id
            yield from self._first_read(e, since, resume=after)
        else:
            yield from self._read_since(e, since)

    def _first_read(self, e: _Entity, mark: datetime | None = None,
                    resume: int | None = None) -> Iterator[ChangeBatch]:
        """Every record, by id in ascending chunks, each committed with the last id it holds.

        ``select`` has no order (offset pages of a live table skip and repeat rows) and no
        ``id > N`` filter, so the ids are listed first (cheap rows: ``select_fields=0``) and read
        with ``filters[id]`` lists. MARK is the newest change the listing shows, taken before any
        record is read: a read resumed after id RESUME lists the ids again, reads those above it
        (not ``scan`` batches: nothing is swept on their strength), then what changed since MARK.
        """
        ids, newest = self._listing(e)
        if resume is None:
            mark = newest
        wanted = [i for i in ids if resume is None or i > resume]
        for start in range(0, len(wanted), self.page_size):
            chunk = wanted[start:start + self.page_size]
            yield ChangeBatch(self._by_id(e, chunk), scan=resume is None, cursor=_cursor(mark, after=chunk[-1]))
        if resume is None:
            yield ChangeBatch([], cursor=_cursor(mark), scan=True)
        else:
            yield from self._read_since(e, mark)

    def _read_since(self, e: _Entity, since: datetime | None) -> Iterator[ChangeBatch]:
        """Records added or edited since SINCE (less the margin), then the newest change seen."""
        newest: datetime | None = since
        seen: set[str] = set()
        for filters in ({"date_updated": f"{self._window_start(since)},"},
                        {"date_added": f"{self._window_start(since)},"}):
            for rows in self._pages(e, {"filters": filters}, self.page_size):
                records = []
                for row in rows:
                    newest = self._newer(row, newest)
                    if row["id"] not in seen:
                        seen.add(row["id"])
                        records.append(self._record(e, row))
                yield ChangeBatch(records)
        yield ChangeBatch([], cursor=_cursor(newest))

    def _listing(self, e: _Entity) -> tuple[list[int], datetime | None]:
        """Every id (ascending) and the newest change time the rows show."""
        ids: set[int] = set()
        newest: datetime | None = None
        for rows in self._pages(e, {"select_fields": "0"}, ID_LIST_PAGE):
            for row in rows:
                ids.add(int(row["id"]))
                newest = self._newer(row, newest)
        return sorted(ids), newest

    def _newer(self, row: dict[str, Any], newest: datetime | None) -> datetime | None:
        """NEWEST, or the row's change time when later (a future-dated row is held at tomorrow)."""
        limit = datetime.now(self.zone).replace(tzinfo=None) + timedelta(days=1)
        for key in ("date_added", "date_updated"):
            moment = self._local(row.get(key))
            if moment and moment.year > 1970 and (newest is None or moment > newest):
                newest = min(moment, limit)
        return newest

    def _by_id(self, e: _Entity, ids: list[int] | list[str]) -> list[dict[str, Any]]:
        reply = self._call("select", {"entity_id": e.api_id, "filters": {"id": ",".join(map(str, ids))}},
                           what=e.name)
        return [self._record(e, row) for row in reply["data"]]

    def list_ids(self, entity: str) -> Iterator[list[str]]:
        for rows in self._pages(self._entity(entity), {"select_fields": "0"}, ID_LIST_PAGE):
            yield [row["id"] for row in rows]

    def fetch(self, entity: str, ids: Iterable[str]) -> list[dict[str, Any]]:
        e = self._entity(entity)
        wanted = [str(i) for i in ids if str(i).isdigit()]
        return [r for start in range(0, len(wanted), self.page_size)
                for r in self._by_id(e, wanted[start:start + self.page_size])]

    def search(self, entity: str, criteria: dict[str, Any]) -> list[dict[str, Any]]:
        e = self._entity(entity)
        fields = {f.name: f for f in self._fields(e).values()}
        filters: dict[str, str] = {}
        wanted = dict(criteria)
        for key, value in criteria.items():
            f = fields.get(key)
            if key == "id":
                filters["id"] = str(value)
            elif f and f.type == "picklist" and value not in (None, ""):
                filters[f.api_id] = wanted[key] = self._encode_value(e, f, value)   # a label becomes its id
            elif f and f.type in ("string", "email", "phone", "url") and value not in (None, ""):
                filters[f.api_id] = str(value)
        found = []
        for rows in self._pages(e, {"filters": filters}, self.page_size):
            for row in rows:
                record = self._record(e, row)
                if all(_same(record.get(k), v) for k, v in wanted.items()):
                    found.append(record)
        return found

    # -- writing ---------------------------------------------------------------------------
    def create(self, entity: str, values: dict[str, Any]) -> dict[str, Any]:
        """One record per call: a multi-item insert stops at the first bad item, half written."""
        e = self._entity(entity)
        item = self._encode(e, values)
        reply = self._call("insert", {"entity_id": e.api_id, "items": [item]}, what=e.name)["data"]
        new_id = str(reply.get("id") or "")
        if not new_id:
            warning = (reply.get("unique_fields_warning") or [{}])[0]
            f = self._fields(e).get(str(warning.get("id")))
            raise ValidationError(f"create {e.name}: the value {warning.get('value')!r} already exists in the "
                                  f"unique field {f.name if f else warning.get('id')}; nothing was created",
                                  field=f.name if f else None, errors=reply, system=self.name)
        return self._one(e, new_id)

    def update(self, entity: str, remote_id: str, values: dict[str, Any]) -> dict[str, Any]:
        e = self._entity(entity)
        data = self._encode(e, values)
        if data:
            reply = self._call("update", {"entity_id": e.api_id, "update_by_field": {"id": _record_id(remote_id)},
                                          "data": data}, what=e.name)["data"]
            if not str(reply.get("id") or ""):
                raise NotFound(f"update {e.name} {remote_id}: no such record", system=self.name)
        return self._one(e, remote_id)

    def delete(self, entity: str, remote_id: str) -> None:
        e = self._entity(entity)
        self._call("delete", {"entity_id": e.api_id, "delete_by_field": {"id": _record_id(remote_id)}},
                   what=e.name)

    # -- records ---------------------------------------------------------------------------
    def _one(self, e: _Entity, remote_id: str) -> dict[str, Any]:
        found = self.fetch(e.name, [remote_id])
        if not found:
            raise NotFound(f"{e.name} {remote_id}: no such record", system=self.name)
        return found[0]

    def _record(self, e: _Entity, row: dict[str, Any]) -> dict[str, Any]:
        """A select row → readable names, raw ids in the field and display text in its twin."""
        fields = self._fields(e)
        if any(k.isdigit() and k not in fields and k not in (e.reserved or {}) for k in row):   # a field added since
            e.fields = None
            fields = self._fields(e)
        record: dict[str, Any] = {"id": str(row["id"]),
                                  "date_added": self._utc(row.get("date_added")),
                                  "date_updated": self._utc(row.get("date_updated")),
                                  "created_by": _blank(row.get("created_by")),
                                  "created_by_label": None}
        if e.parent_id != "0":
            record["parent_item_id"] = _blank(row.get("parent_item_id"))
        for key, display in row.items():
            if key in BASE_KEYS or key.endswith("_db_value"):
                continue
            f = fields.get(key)
            if f is None:
                if (e.reserved or {}).get(key) == "fieldtype_created_by":
                    record["created_by_label"] = _blank(display)
                continue
            if f.twin:
                record[f.name] = _blank(row.get(f"{key}_db_value"))
                record[f.twin] = _blank(", ".join(display) if isinstance(display, list) else display)
            else:
                record[f.name] = self._value(f, display)
        return record

    def _value(self, f: _Field, display: Any) -> Any:
        text = _blank(display)
        if text is None:
            return False if f.type == "boolean" else None
        if f.type == "boolean":
            return text.strip().lower() in YES
        if f.type == "date":
            fmt = _strptime_format(f.config["date_format"]) if f.config.get("date_format") else self.date_format
            return self._parse(text, fmt, f.label).date().isoformat()
        if f.type == "datetime":
            return self._utc(text)
        if f.type == "number":
            return _number(text)
        if f.type == "text":
            return text.replace("<br />\n", "\n").replace("<br />", "\n")
        return text

    def _encode(self, e: _Entity, values: dict[str, Any]) -> dict[str, Any]:
        """Readable names and Python values → ``field_<id>`` and the API's strings."""
        fields = {f.name: f for f in self._fields(e).values()}
        out: dict[str, Any] = {}
        for name, value in values.items():
            if name in ("created_by", "parent_item_id"):
                out[name] = "" if value is None else str(value)
                continue
            f = fields.get(name)
            if f is None:
                twin = next((g for g in fields.values() if g.twin == name), None)
                why = (f"is the display text of {twin.name}; write {twin.name} with the id" if twin else
                       "is read-only" if name in BASE_KEYS or name == "created_by_label" else
                       f"is not a field of {e.name} (fields: {', '.join(sorted(fields))})")
                raise ValidationError(f"{e.name}.{name} {why}", field=name, system=self.name)
            out[f.column] = self._encode_value(e, f, value)
        return out

    def _encode_value(self, e: _Entity, f: _Field, value: Any) -> str:
        if value is None:
            return ""
        if f.type == "boolean":
            return "true" if value is True or str(value).lower() in YES else "false"
        if isinstance(value, (list, tuple, set)):
            value = ",".join(str(v) for v in value)
        if f.type in ("picklist", "multipicklist") and f.choices:
            ids = {cid for cid, _ in f.choices}
            names = {label.lower(): cid for cid, label in f.choices}
            tokens = []
            for token in (t.strip() for t in str(value).split(",") if t.strip()):
                if token not in ids and token.lower() not in names:
                    raise ValidationError(f"{e.name}.{f.name}: {token!r} is not a choice; choices: "
                                          + ", ".join(f"{c} {n}" for c, n in f.choices), field=f.name,
                                          system=self.name)
                tokens.append(token if token in ids else names[token.lower()])
            return ",".join(tokens)
        if f.type == "date":
            return str(value)[:10] if not isinstance(value, date) else value.strftime("%Y-%m-%d")
        if f.type == "datetime":
            moment = value if isinstance(value, datetime) else _iso(str(value), f.name, e.name, self.name)
            if moment.tzinfo is None:   # the mirror's times are UTC
                moment = moment.replace(tzinfo=UTC)
            return moment.astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S")
        return str(value)

    # -- time ------------------------------------------------------------------------------
    def _parse(self, text: str, fmt: str, what: str) -> datetime:
        try:
            return datetime.strptime(text.strip(), fmt)
        except ValueError:
            raise ProtocolError(f"{what}: {text!r} does not match the configured format {fmt!r}; set date_format "
                                f"and datetime_format in [systems.{self.name}] to the app's formats "
                                "(Configuration → Application)", system=self.name) from None

    def _local(self, text: Any) -> datetime | None:
        """A row's date string as the server's naive local time."""
        return self._parse(text, self.datetime_format, "date") if _blank(text) else None

    def _utc(self, text: Any) -> str | None:
        moment = self._local(text)
        if moment is None:
            return None
        instant = moment.replace(tzinfo=self.zone).astimezone(UTC)
        return None if instant.timestamp() == 0 else instant.strftime("%Y-%m-%dT%H:%M:%SZ")

    def _window_start(self, since: datetime | None) -> str:
        return (since - self.margin).strftime("%Y-%m-%d %H:%M:%S") if since else EPOCH

    # -- paging ----------------------------------------------------------------------------
    def _pages(self, e: _Entity, params: dict[str, Any], size: int) -> Iterator[list[dict[str, Any]]]:
        """Pages of one select (offset paging that survives rows moving: :mod:`.listing`); a page
        past the end repeats the last one, so the listing stops at ``number_of_pages``."""
        def fetch(page: int) -> Page:
            reply = self._call("select", {"entity_id": e.api_id, "rows_per_page": size, **params},
                               page=page, what=e.name)
            return Page(reply["data"], int(reply.get("number_of_rows", 0)),
                        last=page >= int(reply.get("number_of_pages", 0)))

        return (rows for _, rows in offset_pages(fetch, what=e.name, system=self.name, first=1))

    # -- catalogue -------------------------------------------------------------------------
    def _catalogue(self) -> dict[str, _Entity]:
        if self._entities is None:
            rows = sorted(self._call("get_entities")["data"], key=lambda r: int(r["id"]))
            names = _unique_names([(r["id"], identifier(r["name"], lower=False) or f"entity_{r['id']}")
                                   for r in rows], taken=set())
            self._entities = {names[r["id"]]: _Entity(r["id"], names[r["id"]], r["name"],
                                                      str(r.get("parent_id") or "0"))
                              for r in rows}
        return self._entities

    def _entity(self, entity: str) -> _Entity:
        catalogue = self._catalogue()
        found = catalogue.get(entity) or next(
            (e for e in catalogue.values() if entity in (e.api_id, e.label) or entity.lower() == e.name.lower()), None)
        if found is None:
            raise NotFound(f"no entity {entity!r}; the API user sees: {', '.join(catalogue) or 'none'}",
                           system=self.name)
        return found

    def _fields(self, e: _Entity) -> dict[str, _Field]:
        if e.fields is None:
            rows = self._call("get_entity_fields", {"entity_id": e.api_id}, what=e.name)["data"]
            rows = sorted(rows.values(), key=lambda r: int(r["id"]))
            e.reserved = {r["id"]: r["type"] for r in rows if r["type"] in RESERVED}
            plain = [r for r in rows if r["type"] not in RESERVED]
            candidates = [(r["id"], identifier(r["name"]) or f"field_{r['id']}") for r in plain]
            twins = {r["id"] for r in plain if TYPES.get(r["type"], "string") in RAW_TWIN}
            names = _unique_names(candidates, taken={*BASE_KEYS, "created_by_label"}, twins=twins)
            fields = {}
            for r in plain:
                ftype = TYPES.get(r["type"], "string")
                choices: tuple[tuple[str, str], ...] = ()
                if ftype in ("picklist", "multipicklist"):
                    choices = tuple((c["id"], c["name"]) for c in self._call(
                        "get_field_choices", {"entity_id": e.api_id, "field_id": r["id"]}, what=e.name)["data"])
                fields[r["id"]] = _Field(r["id"], names[r["id"]], r["name"], ftype, r["type"],
                                         _config(r.get("configuration")), r.get("is_required") == "1", choices,
                                         heading=r.get("is_heading") == "1")
            e.fields = fields
        return e.fields

    # -- transport -------------------------------------------------------------------------
    def _call(self, action: str, params: dict[str, Any] | None = None, *, page: int | None = None,
              what: str = "", probed: bool = False) -> dict[str, Any]:
        """One API call; secrets travel in the JSON body, only ``page`` in the URL (the API wants it there)."""
        self._session.raise_if_refused()
        if action == "insert" and self._user is None:
            self._login()  # an empty 500 on an insert must be a crash, never "log in and send it again"
        body = {"key": self.settings.api_key, "username": self.settings.username,
                "password": self.settings.password, "action": action, **(params or {})}
        try:
            return self.http.request(
                "POST", self.endpoint + (f"?page={page}" if page else ""), op=action, idempotent=action != "insert",
                parse=lambda response: self._answer(response, action, what),
                data=dumpb(body), headers={"Content-Type": "application/json"})
        except _Blank:
            if probed or action == "login":
                raise
            self._login()
            return self._call(action, params, page=page, what=what, probed=True)

    @property
    def _user(self) -> dict[str, Any] | None:
        return self._session.current

    def _login(self) -> dict[str, Any]:
        """The logged-in user; a refused login is probed once per run (the session cache remembers it)."""
        return self._session.get()

    def _probe_login(self) -> dict[str, Any]:
        """The ``login`` action; three empty HTTP 500 answers in a row mean the login is refused."""
        for attempt in range(3):
            try:
                return self._call("login")["data"]
            except _Blank:
                if attempt < 2:
                    time.sleep(self.http.backoff * 2 ** attempt)
        raise AuthError(
            f"login refused: {origin(self.endpoint)} answered the login of user {self.settings.username!r} "
            "with HTTP 500 and an empty body, which is how Rukovoditel refuses a wrong username or password, an "
            f"inactive account or a blocked IP address; check username and password in [systems.{self.name}], "
            "that the account is active, and that this machine's IP may use the API (Extension → Tools → API)",
            system=self.name)

    def _answer(self, response: requests.Response, action: str, what: str) -> dict[str, Any]:
        """Turn one HTTP answer into the JSON envelope or a typed error."""
        content = response.content
        if b"<app_db_error>" in content:
            match = re.search(r"Database Error:</strong>\s*(.*?)</div>", response.text, re.S)
            detail = html.unescape(match.group(1)).strip() if match else "unknown database error"
            raise ValidationError(f"{action} {what}: the server's database refused the request ({detail}); "
                                  "the request named a field or value this install does not have — run "
                                  "`syncengine discover` to see its fields", system=self.name)
        if response.status_code >= 500 and not content.lstrip().startswith(b"{"):
            raise self._blank(action, what, response.status_code)
        start = content.find(b'{"status"')
        if start > 0 and b"Warning" in content[:start]:   # PHP warnings printed before the JSON
            content = content[start:]
        if not content.lstrip().startswith(b"{"):
            raise ProtocolError(f"{origin(self.endpoint)} answered HTTP {response.status_code} with "
                                f"{content[:40]!r} instead of JSON; is url in [systems.{self.name}] the "
                                "Rukovoditel app's address, with the API extension installed?", system=self.name)
        try:
            envelope = loads(content)
        except JSONDecodeError:
            return json_body(response)   # raises: unreadable JSON is transient
        if not isinstance(envelope, dict):
            raise ProtocolError(f"{action} {what}: unexpected answer {content[:80]!r}", system=self.name)
        if envelope.get("status") == "success":
            return envelope
        raise self._refusal(str(envelope.get("error_message") or envelope), str(envelope.get("error_code")),
                            action, what)

    def _blank(self, action: str, what: str, status: int) -> ConnectorError:
        if action == "login" or self._user is None:
            return _Blank(f"HTTP {status} with an empty body")
        if self._user.get("group_id") != 0 and action in ("get_entities", "get_field_choices"):
            return AuthError(f"access denied: user {self.settings.username!r} is not an administrator (access "
                             f"group {self._user.get('group_id')}), and only administrators may list entities "
                             "and choices; use an administrator's login", system=self.name)
        if self._user.get("group_id") == 0:
            return TransientError(f"{action} {what}: HTTP {status} with an empty body (a crash on the server); "
                                  "if it persists, run `syncengine check`", system=self.name)
        right = {"select": "view", "insert": "create", "update": "update", "delete": "delete"}.get(action, action)
        return AuthError(f"access denied: user {self.settings.username!r} (access group "
                         f"{self._user.get('group_id')}) may not {action} {what or 'this'}; give the group "
                         f"'{right}' access to the entity, or use an administrator", system=self.name)

    def _refusal(self, message: str, code: str, action: str, what: str) -> ConnectorError:
        auth = {
            "API Key mismatch": "API key refused (API Key mismatch): copy the key from Extension → Tools → API "
                                f"into api_key of [systems.{self.name}]",
            "key is required": f"API key missing: set api_key in [systems.{self.name}]",
            "API is not enabled": "the API is switched off: enable it under Extension → Tools → API",
            "No match for Username and/or Password": "login refused: wrong username or password; check them in "
                                                     f"[systems.{self.name}]",
            "Your account is not active": f"login refused: the account {self.settings.username!r} is not active",
            "Access denied": f"access denied: user {self.settings.username!r} may not {action} {what}; use an "
                             "administrator",
        }
        if message in auth or code in ("login_fail", "account_not_active", "access_denied", "ip_not_allowed") \
                or message.endswith("is not allowed!") or message in ("username is required", "password is required"):
            error = AuthError(auth.get(message, f"login refused: {message}"), system=self.name)
            denied = message == "Access denied" or code == "access_denied"
            return error if denied else self._session.refuse(error)
        if re.search(r"not found|does not exist", message) and action not in ("insert", "update", "delete"):
            return NotFound(f"{action} {what}: {message}", system=self.name)
        named = re.match(r"(field_\d+|\w+) (?:not exist in entity|is required)|(parent_item_id) \d+ not found", message)
        field = named and (named.group(1) or named.group(2))
        if field and field.startswith("field_") and what:
            e = self._entity(what)
            field = next((f.name for f in self._fields(e).values() if f.column == field), field)
        return ValidationError(f"{action} {what} refused by the server: {message}", field=field, system=self.name)


# -- helpers -----------------------------------------------------------------------------------

def _unique_names(candidates: list[tuple[str, str]], taken: set[str],
                  twins: frozenset[str] | set[str] = frozenset()) -> dict[str, str]:
    """Names in id order; a clash (also with a ``<name>_label`` twin) gets ``_<id>``."""
    names: dict[str, str] = {}
    taken = {t.lower() for t in taken}
    for api_id, name in candidates:
        wanted = [name] + ([f"{name}_label"] if api_id in twins else [])
        if any(w.lower() in taken for w in wanted):
            name = f"{name}_{api_id}"
            wanted = [name] + ([f"{name}_label"] if api_id in twins else [])
        taken.update(w.lower() for w in wanted)
        names[api_id] = name
    return names


def _config(text: Any) -> dict[str, Any]:
    try:
        value = loads(text) if text else {}
    except JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _strptime_format(php: str) -> str:
    return "".join(PHP_TO_STRPTIME.get(c, c.replace("%", "%%")) for c in php)


def _blank(value: Any) -> Any:
    return None if value in ("", None) else value


def _number(text: str) -> int | float | str:
    compact = text.replace(" ", "").replace("\u00a0", "")
    if re.fullmatch(r"-?\d+", compact):
        return int(compact)
    if re.fullmatch(r"-?\d*[.,]\d+", compact):
        return float(compact.replace(",", "."))
    return text


def _same(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, (list, tuple)):
        wanted = ",".join(str(w) for w in wanted)
    return value == wanted or (value is not None and str(value) == str(wanted))


def _iso(text: str, field: str, entity: str, system: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{entity}.{field}: {text!r} is not an ISO date-time such as 2026-11-22T10:15:00Z",
                              field=field, system=system) from None


def _record_id(remote_id: str) -> int:
    if not str(remote_id).isdigit():
        raise NotFound(f"{remote_id!r} is not a Rukovoditel record id")
    return int(remote_id)


def _cursor(since: datetime | None, after: int | None = None) -> str:
    state: dict[str, Any] = {"v": 1, "since": since.strftime("%Y-%m-%d %H:%M") if since else None}
    if after is not None:
        state["after"] = after
    return dumps(state)


def _cursor_state(cursor: str | None) -> tuple[datetime | None, int | None]:
    """(since, after): the change time to read from, and the last id a cut-short first read committed."""
    if not cursor:
        return None, None
    try:
        state = loads(cursor)
        since = state.get("since")
        after = state.get("after")
        return (datetime.strptime(since, "%Y-%m-%d %H:%M") if since else None,
                int(after) if after is not None else None)
    except (JSONDecodeError, AttributeError, TypeError, ValueError):
        raise ProtocolError(f"unreadable cursor {cursor[:60]!r}; run `syncengine pull --full` to start over") from None
