"""SalesMan CRM, REST API v2 (``/developer/v2/<method>``); spec ``salesman.md``.

Every reply is HTTP 200: errors are read from the body, and PHP fatal pages (HTML) become typed
errors with the page's message. Requests are JSON-mode POSTs (``Content-Type`` exactly
``application/json``) carrying ``login`` and ``apikey`` in the body, so no secret reaches a URL and
form-mode quote mangling (``"`` → ``”``, ``'`` → ``&acute;``) is avoided.

Lists are walked by page index (fixed 200 rows) ordered by the id column ascending, the only stable
order; a walk whose row count disagrees with the server's ``count`` is walked again, so a delete
during the walk cannot hide a row from a deletion sweep.

Change capture: clients and deals are incremental (``dateStart``/``dateEnd`` for new rows and the
``dateChangeStart``+``dateChangeEnd`` pair for edits, never the start alone); persons, tasks, leads
and the reference lists have no change filter and are scanned. The cursor is
``{"since": "<newest create/edit time seen before the read>"}``.

Writes hide two defects: a contact update is a full overwrite (the current record is read and sent
merged with the change, owner as a numeric ``iduser``), and a deal update zeroes ``marga`` and
clears the linked contacts (both are sent again).
"""
from __future__ import annotations

import contextlib
import html
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests

from ..errors import AuthError, NotFound, ProtocolError, TransientError, Unsupported, ValidationError
from ..http import HttpClient, json_body
from ..jsonutil import dumpb, dumps, loads
from ..types import Capture, ChangeBatch, EntitySchema, Field, SystemSettings, setting
from .base import Connector
from .listing import Page, offset_pages
from .session import SessionCache

log = logging.getLogger("syncengine.salesman")

PAGE = 200
FAR = "2099-12-31 23:59:59"
TIME = "%Y-%m-%d %H:%M:%S"

# entity -> (API script, id column)
RECORDS = {"client": ("client", "clid"), "person": ("person", "pid"), "deal": ("deal", "did"),
           "task": ("task", "tid"), "lead": ("lead", "id")}
# reference list -> (API script, action, id key)
REFERENCES = {
    "user": ("user", "user.list", "iduser"),
    "client_category": ("guides", "category", "id"),
    "territory": ("guides", "territory", "id"),
    "relation": ("guides", "relations", "id"),
    "clientpath": ("guides", "clientpath", "id"),
    "deal_stage": ("deal", "steplist", "idcategory"),
    "deal_direction": ("deal", "direction", "id"),
    "deal_type": ("deal", "type", "tid"),
    "deal_status": ("deal", "statusclose", "sid"),
    "task_type": ("task", "tips", "title"),
}
INPUTS = tuple(f"input{n}" for n in range(1, 11))
WRITABLE = {
    "client": {"title", "uid", "type", "iduser", "idcategory", "head_clid", "pid", "address", "phone", "fax",
               "site_url", "mail_url", "territory", "des", "scheme", "tip_cmr", "clientpath", "bankinfo", *INPUTS},
    "person": {"person", "ptitle", "clid", "tel", "fax", "mob", "mail", "rol", "iduser", "loyalty", "clientpath",
               *INPUTS},
    "deal": {"title", "uid", "clid", "payer", "mcid", "datum_plan", "datum_start", "datum_end", "kol", "marga",
             "adres", "content", "direction", "tip", "pid_list", "step", "iduser", *INPUTS},
    "task": {"title", "des", "tip", "datum", "totime", "priority", "speed", "active", "clid", "pid", "did",
             "readonly", "day", "status", "iduser"},
    "lead": {"title", "email", "phone", "site", "company", "description", "ip", "city", "country",
             "clientpath", "partner"},
}

# Field types of the list records (name, type, refers_to); unlisted names are strings.
_TYPES: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "client": {"clid": ("integer", ()), "date_create": ("datetime", ()), "date_edit": ("datetime", ()),
               "iduser": ("owner", ("user",)), "idcategory": ("reference", ("client_category",)),
               "head_clid": ("reference", ("client",)), "pid": ("reference", ("person",)),
               "phone": ("phone", ()), "fax": ("phone", ()), "site_url": ("url", ()), "mail_url": ("email", ()),
               "territory": ("reference", ("territory",)), "des": ("text", ()),
               "clientpath": ("reference", ("clientpath",)), "type": ("picklist", ()), "bankinfo": ("json", ())},
    "person": {"pid": ("integer", ()), "date_create": ("datetime", ()), "date_edit": ("datetime", ()),
               "clid": ("reference", ("client",)), "iduser": ("owner", ("user",)), "tel": ("phone", ()),
               "fax": ("phone", ()), "mob": ("phone", ()), "mail": ("email", ())},
    "deal": {"did": ("integer", ()), "datum": ("date", ()), "datum_izm": ("date", ()),
             "clid": ("reference", ("client",)), "payer": ("reference", ("client",)), "mcid": ("integer", ()),
             "iduser": ("owner", ("user",)), "datum_plan": ("date", ()), "step": ("integer", ()),
             "stepID": ("reference", ("deal_stage",)), "tipID": ("reference", ("deal_type",)),
             "directionID": ("reference", ("deal_direction",)), "contractID": ("integer", ()),
             "content": ("text", ()), "kol": ("number", ()), "marga": ("number", ()),
             "datum_start": ("date", ()), "datum_end": ("date", ()), "datum_close": ("date", ()),
             "kol_fact": ("number", ()), "close": ("picklist", ())},
    "task": {"tid": ("integer", ()), "datum": ("date", ()), "iduser": ("owner", ("user",)),
             "autor": ("reference", ("user",)), "clid": ("reference", ("client",)),
             "did": ("reference", ("deal",)), "des": ("text", ()), "active": ("picklist", ()),
             "tip": ("reference", ("task_type",))},
    "lead": {"id": ("integer", ()), "datum": ("datetime", ()), "datum_do": ("datetime", ()),
             "email": ("email", ()), "phone": ("phone", ()), "clid": ("reference", ("client",)),
             "pid": ("reference", ("person",)), "did": ("reference", ("deal",)), "status": ("integer", ()),
             "content": ("text", ())},
}
# Keys of list records that exist only as derived companions (never written).
_DERIVED = {"user", "userTitle", "client", "clientTitle", "payerTitle", "idcategoryTitle", "head_clidTitle",
            "person", "territoryTitle", "clientpathTitle", "stepID", "stepTitle", "contractID", "contractTitle",
            "contractNumber", "contractDate", "tipID", "directionID", "autorlogin", "dogovor", "bankinfo",
            "uids", "statusName", "rezultName", "clientpathName", "userName", "deal"}
_LEAD_KEYS = ("id", "datum", "datum_do", "email", "phone", "site", "company", "city", "country", "content",
              "clid", "client", "pid", "person", "did", "deal", "user", "userName", "status", "statusName",
              "rezult", "rezultName", "clientpath", "clientpathName", "uids")
_TASK_KEYS = ("tid", "datum", "totime", "title", "des", "tip", "active", "priority", "speed", "iduser", "user",
              "autor", "autorlogin", "clid", "client", "did", "dogovor", "readonly", "day", "status")
_REFERENCE_KEYS = {
    "user": ("iduser", "uid", "oid", "title", "login", "email", "active"),
    "client_category": ("id", "title", "tip"), "territory": ("id", "title"),
    "relation": ("id", "title", "color"), "clientpath": ("id", "title", "utm_source", "destination"),
    "deal_stage": ("idcategory", "title", "content"), "deal_direction": ("id", "title", "isDefault"),
    "deal_type": ("tid", "title", "isDefault"), "deal_status": ("sid", "title"),
    "task_type": ("title", "color", "filter"),
}
# Keys that stand for a field in the list records (a field shows as its companions).
_COMPANIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "client": {"iduser": ("user", "iduser"), "idcategory": ("idcategoryTitle", "idcategory"),
               "head_clid": ("head_clidTitle", "head_clid"), "pid": ("person", "pid"),
               "territory": ("territoryTitle", "territory"),
               "clientpath": ("clientpathTitle", "clientpath"), "recv": ("bankinfo",)},
    "person": {"clid": ("clid", "client"), "iduser": ("user", "iduser")},
    "deal": {"clid": ("clid", "clientTitle", "title"), "iduser": ("iduser", "user", "userTitle"),
             "step": ("step", "stepID", "stepTitle"),
             "dog_num": ("contractID", "contractTitle", "contractNumber", "contractDate"),
             "tip": ("tipID", "tip"), "direction": ("directionID", "direction"),
             "payer": ("payer", "payerTitle")},
}
_UNKNOWN_ACTION = ("Неизвестный метод", "Не известный метод")
_NO_CHANGE = "идентичны имеющимся"
_TAGS = re.compile(r"</?(?:b|br|i|u|p|pre|font|div|span|code|table|tr|td|th|html|head|body|title|h\d)\b[^>]*>",
                   re.IGNORECASE)
_TRANSIENT_PHP = ("server has gone away", "Deadlock found", "Lock wait timeout", "Too many connections",
                  "Maximum execution time")


class _FatalAfterWrite(ProtocolError):
    """PHP 8 prints a fatal page at the end of person.php *after* the contact was written."""


def php_error_message(page: str) -> str:
    """A PHP error page as one readable line: ``PHP fatal error: <message> (<file>, line <n>)``."""
    text = " ".join(html.unescape(_TAGS.sub("", page)).split())
    match = re.search(r"(Fatal error|Parse error|Warning|Notice|Deprecated)\s*:\s*(.*)", text)
    if not match:
        return f"an unexpected non-JSON page: {text[:200]}" if text else "an empty page"
    kind, rest = match.group(1).lower(), match.group(2).split(" Stack trace:")[0]
    message = re.split(r",? (?:called )?in \S+\.php\b", rest)[0].strip().rstrip(".")
    where = re.search(r" in \S*?([^/\s]+\.php)(?::(\d+)| on line (\d+))", rest)
    location = f" ({where.group(1)}, line {where.group(2) or where.group(3)})" if where else ""
    return f"PHP {kind}: {message}{location}"


@dataclass(frozen=True, kw_only=True)
class SalesManSettings(SystemSettings):
    url: str = setting(form="url", help="the CRM's address, e.g. https://crm.example.ru (the API lives under "
                       "/developer/v2/)")
    login: str = setting(help="login of the API user; use an administrator of role «Руководитель организации» "
                         "so no record is hidden")
    api_key: str = setting(secret=True, help="the account API key (Панель управления → Общие настройки)")
    timezone: str = setting("Europe/Moscow", form="timezone", help="the account time zone of the CRM's dates")


class SalesManConnector(Connector):
    kind = "salesman"
    Settings = SalesManSettings
    settings: SalesManSettings
    default_entities = ("client", "person", "deal", "task")
    # owner changes, deal stage changes and closes, requisites-only edits leave the change date alone
    sweep_reads_records = True

    def __init__(self, name: str, config: Mapping[str, Any], http: HttpClient):
        super().__init__(name, config, http)
        self.base = self.settings.url.rstrip("/")
        self._lookups: dict[str, list[dict[str, Any]]] = {}
        # credentials travel with every call; a refusal (401) is remembered so they are sent no more
        self._credentials = SessionCache(lambda: {"login": self.settings.login, "apikey": self.settings.api_key})

    # -- transport ------------------------------------------------------------------------
    def _call(self, method: str, action: str, params: dict[str, Any] | None = None, *,
              idempotent: bool = True) -> Any:
        body = {**self._credentials.get(), "action": action, **(params or {})}
        return self.http.request(
            "POST", f"{self.base}/developer/v2/{method}", op=f"{method}.{action}", idempotent=idempotent,
            parse=lambda response: self._parse(response, method, action),
            data=dumpb(body), headers={"Content-Type": "application/json"})

    def _parse(self, response: requests.Response, method: str, action: str) -> Any:
        op = f"{method}.{action}"
        if response.status_code == 404:
            raise Unsupported(f"{self.base}/developer/v2/{method} answered HTTP 404: check that url is the "
                              "CRM's address (the API lives under /developer/v2/)", system=self.name)
        if response.status_code < 500 and response.content.lstrip()[:1] not in (b"{", b"["):
            message = php_error_message(response.text)
            if any(hint in message for hint in _TRANSIENT_PHP):
                raise TransientError(f"{op}: {message}", system=self.name)
            if method == "person" and "offset of type string on string" in message:
                raise _FatalAfterWrite(f"{op}: {message}", system=self.name)
            raise ProtocolError(f"{op}: the CRM printed an error page instead of JSON — {message}; "
                                "it will repeat, show it to the CRM's administrator", system=self.name)
        value = json_body(response, self.name)
        self._raise_for_error(value, op)
        return value

    def _raise_for_error(self, value: Any, op: str) -> None:
        if not isinstance(value, dict):
            return
        error = value.get("error")
        if isinstance(error, str):  # person replies: "" on success, the reason otherwise
            if error:
                raise ValidationError(f"{op} refused: {value.get('result') or ''} «{error}»", system=self.name)
            return
        if not isinstance(error, dict):
            return
        try:
            code = int(str(error.get("code") or 0))
        except ValueError:
            code = 0
        text = str(error.get("text") or value.get("result") or "")
        if code == 302 or _NO_CHANGE in text:
            return  # valid but identical data: nothing to change
        if code == 401:
            raise self._credentials.refuse(AuthError(
                f"login refused (SalesMan 401 «{text}»): check login and api_key; the CRM gives the same "
                "answer for a wrong key and an unknown login", system=self.name))
        if code == 402 and text in _UNKNOWN_ACTION:
            raise Unsupported(f"{op} is not offered by this CRM (402 «{text}»)", system=self.name)
        if code in (403, 404):
            raise NotFound(f"{op}: not found or not visible to the API user ({code} «{text}»)", system=self.name)
        if code == 304:
            raise ValidationError(f"{op} refused as a duplicate of record {value.get('exists')} («{text}»)",
                                  field="title", errors={"exists": value.get("exists")}, system=self.name)
        if code >= 500:
            raise ProtocolError(f"{op}: database error in the CRM ({code} «{text}»)", system=self.name)
        raise ValidationError(f"{op} refused ({code} «{text}»)", system=self.name)

    # -- metadata --------------------------------------------------------------------------
    def check(self) -> str:
        reply = self._call("user", "user", {"user": self.settings.login})
        user = reply.get("data") or {}
        role = user.get("tip") or "unknown role"
        note = "" if role in ("Руководитель организации", "Руководитель с доступом", "Поддержка продаж",
                              "Администратор") else "; this role hides other users' records — sync with an " \
                                                    "administrator of role «Руководитель организации»"
        return f"SalesMan CRM at {self.base}, API user {user.get('login')} ({role}){note}"

    def entities(self) -> list[str]:
        return [*RECORDS, *REFERENCES]

    def describe(self, entity: str) -> EntitySchema:
        self._known(entity)
        if entity in REFERENCES:
            names: Iterable[str] = _REFERENCE_KEYS[entity]
            labels: dict[str, str] = {}
        else:
            labels = {}
            if entity != "lead":
                reply = self._call(RECORDS[entity][0], "fields")
                labels = {k: v for k, v in (reply.get("data") or {}).items() if isinstance(v, str)}
            names = self._record_keys(entity, labels)
        types = _TYPES.get(entity, {})
        writable = WRITABLE.get(entity, set())
        fields = [Field(name, types.get(name, ("string", ()))[0], labels.get(name, ""),
                        editable=name in writable, refers_to=types.get(name, ("string", ()))[1],
                        format=TIME if types.get(name, ("",))[0] == "datetime" else None)
                  for name in names]
        modified = {"client": "date_edit", "person": "date_edit", "deal": "datum_izm"}.get(entity)
        name = "person" if entity == "person" else "title"
        return EntitySchema(entity, fields, label=entity, timezone=self.settings.timezone, modified_field=modified,
                            name_fields=(name,) if any(f.name == name for f in fields) else ())

    @staticmethod
    def _record_keys(entity: str, labels: dict[str, str]) -> list[str]:
        """Keys of ENTITY's list records: the enabled fields with their companions."""
        if entity == "task":
            return list(_TASK_KEYS)
        if entity == "lead":
            return list(_LEAD_KEYS)
        companions = _COMPANIONS[entity]
        keys: list[str] = []
        for name in labels:
            keys.extend(companions.get(name, (name,)))
        return keys

    def capture(self, entity: str) -> Capture:
        self._known(entity)
        return Capture.INCREMENTAL if entity in ("client", "deal") else Capture.SCAN

    def _known(self, entity: str) -> None:
        if entity not in RECORDS and entity not in REFERENCES:
            raise Unsupported(f"unknown entity {entity!r}; SalesMan offers {', '.join(self.entities())}",
                              system=self.name)

    def change_reading(self, entity: str, cursor: str | None) -> str:
        if self.capture(entity) is Capture.SCAN:
            return "full `list` every pull (no change filter)"
        state = loads(cursor) if cursor else {}
        if "page" in state:
            return "full `list` cut short: resumes, then `list` by change date"
        if not state.get("since"):
            return "full `list` (no cursor yet)"
        return f"`list` by create and change date since {state['since']}; deletions by sweep"

    # -- reading ---------------------------------------------------------------------------
    def _page(self, entity: str, params: dict[str, Any], number: int) -> Page:
        """One page of a list call: fixed 200 rows, ``count`` = all rows matched (lead: a 404 when none)."""
        try:
            reply = self._call(RECORDS[entity][0], "list", {**params, "offset": number})
        except NotFound:
            if entity == "lead":
                return Page([])
            raise
        reply = reply if isinstance(reply, dict) else {}
        rows = reply.get("data") or []
        count = reply.get("count")
        return Page(rows, int(count) if count is not None else None, last=len(rows) < PAGE)

    def _walk(self, entity: str, params: dict[str, Any] | None = None) -> Iterator[list[dict[str, Any]]]:
        """Every row of a listing in id order, the only stable one (:mod:`.listing` reads it again
        when rows move under the pages)."""
        for _, records in self._walk_pages(entity, params):
            yield records

    def _walk_pages(self, entity: str, params: dict[str, Any] | None = None, *, first: int = 0,
                    complete: bool = True) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        """(page number, records) of a listing in id order. ``complete=False``: one pass from page
        FIRST, for a read by id or a resumed read."""
        id_key = RECORDS[entity][1]
        base = {"order": id_key, "first": "old", **(params or {})}
        for number, rows in offset_pages(lambda n: self._page(entity, base, n), what=entity, system=self.name,
                                         first=first, key=lambda row: row.get(id_key),
                                         restarts=3 if complete else None):
            yield number, [self._record(entity, row) for row in rows]

    def _record(self, entity: str, row: dict[str, Any]) -> dict[str, Any]:
        return {"id": str(row[RECORDS[entity][1]]), **row}

    def _scan(self, entity: str) -> Iterator[list[dict[str, Any]]]:
        if entity in REFERENCES:
            method, action, key = REFERENCES[entity]
            rows = self._call(method, action).get("data") or []
            yield [{"id": str(row[key]), **row} for row in rows]
        elif entity == "task":  # the due-date window defaults to today and `active` must be given
            for active in ("yes", "no"):
                yield from self._walk("task", {"active": active, "dateStart": "1970-01-01",
                                               "dateEnd": "2999-12-31"})
        else:
            yield from self._walk(entity, {"bankinfo": "yes"} if entity == "client" else None)

    def read_changes(self, entity: str, cursor: str | None) -> Iterator[ChangeBatch]:
        self._known(entity)
        if self.capture(entity) is Capture.SCAN:
            yielded = False
            for records in self._scan(entity):
                yielded = True
                yield ChangeBatch(records=records, scan=True)
            if not yielded:
                yield ChangeBatch(scan=True)
            return
        state = loads(cursor) if cursor else {}
        if "page" in state:  # a first read cut short: go on from its last page
            yield from self._first_read(entity, state["since"], resume=state["page"])
        elif not state.get("since"):
            yield from self._first_read(entity, self._newest(entity))
        else:
            yield from self._read_since(entity, state["since"])

    def _first_read(self, entity: str, mark: str | None, resume: int | None = None) -> Iterator[ChangeBatch]:
        """Every record of a client or deal listing, each page with a cursor to resume from.

        MARK is the newest change time before the read began; a read resumed after page RESUME
        reads that page again (rows deleted meanwhile shift the pages), is not a complete
        listing (no ``scan`` batches, nothing swept on its strength) and then reads what changed
        since MARK, so edits made while it was cut short are not lost.
        """
        extra = {"bankinfo": "yes"} if entity == "client" else {}
        for number, records in self._walk_pages(entity, extra, first=resume or 0, complete=resume is None):
            yield ChangeBatch(records=records, scan=resume is None,
                              cursor=dumps({"since": mark, "page": number}) if mark else None)
        if resume is not None and mark:
            yield from self._read_since(entity, mark)
        else:
            yield ChangeBatch(cursor=dumps({"since": mark}), scan=resume is None)

    def _read_since(self, entity: str, stored: str) -> Iterator[ChangeBatch]:
        """Records created or edited since STORED (less the overlap), then the new cursor."""
        mark = self._newest(entity)
        since = self._minus_overlap(stored)
        seen: set[str] = set()
        extra = {"bankinfo": "yes"} if entity == "client" else {}
        # both ends always: dateChangeStart alone is compared with dateStart by the CRM
        for window in ({"dateStart": since, "dateEnd": FAR}, {"dateChangeStart": since, "dateChangeEnd": FAR}):
            for records in self._walk(entity, {**window, **extra}):
                fresh = [r for r in records if r["id"] not in seen]
                seen.update(r["id"] for r in fresh)
                if fresh:
                    yield ChangeBatch(records=fresh)
        yield ChangeBatch(cursor=dumps({"since": mark or stored}))

    def _newest(self, entity: str) -> str | None:
        """The newest create/edit time on the server, read *before* the changes are read."""
        method, id_key = RECORDS[entity]
        columns = ("date_create", "date_edit") if entity == "client" else ("datum", "datum_izm")
        newest = []
        for column in columns:
            reply = self._call(method, "list", {"order": column, "fields": f"{id_key},{column}"})
            rows = reply.get("data") or []
            if rows and rows[0].get(column):
                newest.append(str(rows[0][column]))
        return max(newest, default=None)

    def _minus_overlap(self, since: str) -> str:
        if len(since) != 19:  # deals: a day, compared inclusively
            return since
        moment = datetime.strptime(since, TIME) - timedelta(seconds=self.settings.overlap)
        return moment.strftime(TIME)

    def list_ids(self, entity: str) -> Iterator[list[str]]:
        self._known(entity)
        if entity in ("client", "person", "deal"):
            id_key = RECORDS[entity][1]
            for records in self._walk(entity, {"fields": id_key}):
                yield [r["id"] for r in records]
        else:
            for records in self._scan(entity):
                yield [r["id"] for r in records]

    def fetch(self, entity: str, ids: Iterable[str]) -> list[dict[str, Any]]:
        self._known(entity)
        wanted = [str(i) for i in ids]
        if entity in ("client", "person"):
            return self._fetch_by_creation(entity, wanted)
        if entity == "deal":  # filter[did] is a LIKE: 1 also matches 10, 11, …
            return [r for one in wanted for r in self._find("deal", {"filter": {"did": one}}, {one})]
        if entity == "task":
            found = []
            for one in wanted:
                try:
                    data = self._call("task", "info", {"id": one})["data"]
                except NotFound:
                    continue
                data.pop("person", None)
                found.append(self._record("task", data))
            return found
        return [r for records in self._scan(entity) for r in records if r["id"] in set(wanted)]

    def _fetch_by_creation(self, entity: str, ids: list[str]) -> list[dict[str, Any]]:
        """The list shape of the named records: ``info`` (whose shape differs) gives each one's
        creation second, and a list of that second (inclusive) returns the rows as every other read
        does — narrowed further by ``filter[pid]`` for persons (the client list has no id filter)."""
        method, id_key = RECORDS[entity]
        seconds: dict[str, set[str]] = {}
        for one in ids:
            try:
                data = self._call(method, "info", {id_key: one, "fields": f"{id_key},date_create"})["data"]
            except NotFound:
                continue
            created = data.get("created", data.get("date_create"))  # a person info of a hidden pid: nulls
            if created:
                seconds.setdefault(created, set()).add(one)
        found: list[dict[str, Any]] = []
        extra = {"bankinfo": "yes"} if entity == "client" else {}
        for second, some in sorted(seconds.items()):
            window = {"dateStart": second, "dateEnd": second, **extra}
            if entity == "person":
                found += [r for one in sorted(some) for r in self._find(entity, {**window, "filter": {id_key: one}},
                                                                        {one})]
            else:
                found += self._find(entity, window, some)
        return found

    def _find(self, entity: str, params: dict[str, Any], ids: set[str]) -> list[dict[str, Any]]:
        """The rows with these ids from a listing narrowed to them (a read by id, not a listing):
        rows that others add or remove meanwhile do not matter, so no count check and no restart."""
        found: dict[str, dict[str, Any]] = {}
        for _, records in self._walk_pages(entity, params, complete=False):
            found.update((r["id"], r) for r in records if r["id"] in ids)
            if len(found) == len(ids):
                break
        return list(found.values())

    def search(self, entity: str, criteria: dict[str, Any]) -> list[dict[str, Any]]:
        self._known(entity)
        if entity == "client" and criteria.get("uid"):
            try:
                clid = self._call("client", "info", {"uid": criteria["uid"], "fields": "clid"})["data"]["clid"]
            except NotFound:
                return []
            candidates = self._fetch_by_creation("client", [str(clid)])
        elif entity == "client":
            word = next((criteria[k] for k in ("title", "mail_url", "site_url", "address") if criteria.get(k)), None)
            candidates = [r for rs in self._walk("client", {"word": word} if word else None) for r in rs]
        elif entity in ("person", "deal") and criteria:
            key, value = next(iter(criteria.items()))
            candidates = [r for rs in self._walk(entity, {"filter": {key: value}}) for r in rs]
        else:
            candidates = [r for rs in self._scan(entity) for r in rs]
        return [r for r in candidates if all(_same(r.get(k), v) for k, v in criteria.items())]

    # -- writing ---------------------------------------------------------------------------
    def _checked(self, entity: str, values: dict[str, Any]) -> dict[str, Any]:
        """Writable values only; an owner given as a login becomes the numeric ``iduser``."""
        if entity not in WRITABLE:
            raise Unsupported(f"{entity} is a reference list; SalesMan's API cannot change it", system=self.name)
        values = {k: v for k, v in values.items() if k != "id"}
        if "user" in values and "iduser" not in values:
            values["iduser"] = self._user_id(values.pop("user"))
        for name in values:
            if name not in WRITABLE[entity]:
                raise ValidationError(f"{entity}.{name} cannot be written through the SalesMan API",
                                      field=name, system=self.name)
        if "bankinfo" in values:  # the requisites are read as bankinfo and written as recv
            values["recv"] = values.pop("bankinfo")
        return values

    def create(self, entity: str, values: dict[str, Any]) -> dict[str, Any]:
        self._known(entity)
        values = self._checked(entity, values)
        method = RECORDS[entity][0]
        if entity == "person":
            if not values.get("person"):
                raise ValidationError("a contact needs a name (person)", field="person", system=self.name)
            values = self._person_payload(values)
        elif entity == "task" and "iduser" in values:
            values["user"] = self._login_of(values.pop("iduser"))
        try:
            reply = self._call(method, "add", values, idempotent=False)
        except _FatalAfterWrite as exc:
            # The contact was probably stored before the fatal: leave it to the outbox, which looks
            # it up by the mapping's match_on fields before creating it again.
            raise TransientError(f"person.add: the CRM failed after the write ({exc}); "
                                 "whether the contact was stored is checked on the next run",
                                 system=self.name) from None
        new_id = reply.get("id") if entity == "lead" else reply.get("data")
        if not new_id:
            raise ValidationError(f"{method}.add stored nothing ({reply.get('result') or 'no reason given'})",
                                  system=self.name)
        return self._one(entity, str(new_id))

    def update(self, entity: str, remote_id: str, values: dict[str, Any]) -> dict[str, Any]:
        self._known(entity)
        values = self._checked(entity, values)
        if entity == "lead":
            raise Unsupported("SalesMan's API cannot change a lead", system=self.name)
        if entity == "client":
            self._call("client", "update", {"clid": remote_id, **values})
        elif entity == "person":
            self._update_person(remote_id, values)
        elif entity == "deal":
            self._update_deal(remote_id, values)
        else:
            self._update_task(remote_id, values)
        return self._one(entity, remote_id)

    def _update_person(self, pid: str, values: dict[str, Any]) -> None:
        """``person update`` blanks every field it does not receive and drops the owner unless a
        numeric ``iduser`` comes with it: send the current record merged with the change."""
        current = self._one("person", pid)
        merged = {k: current[k] for k in WRITABLE["person"] if k in current and k != "loyalty"}
        merged = {k: ("" if v is None else v) for k, v in merged.items()}
        with contextlib.suppress(_FatalAfterWrite):  # the write happened; the re-read shows it
            self._call("person", "update", {"pid": pid, **self._person_payload({**merged, **values})})

    def _person_payload(self, values: dict[str, Any]) -> dict[str, Any]:
        """Contacts take the source as an id only; the list shows its name."""
        values = dict(values)
        source = values.get("clientpath")
        if source not in (None, "") and not str(source).isdigit():
            ids = {row["title"]: row["id"] for row in self._lookup("clientpath")}
            if source not in ids:
                raise ValidationError(f"unknown client source {source!r}; known: {', '.join(ids)}",
                                      field="clientpath", system=self.name)
            values["clientpath"] = ids[source]
        elif source == "":
            values.pop("clientpath")
        if values.get("iduser") in (None, ""):
            values["iduser"] = self._user_id(self.settings.login)
        return values

    def _update_deal(self, did: str, values: dict[str, Any]) -> None:
        """``deal update`` zeroes ``marga`` and clears the linked contacts unless they are sent;
        stage and owner have their own calls (update ignores them)."""
        step, owner = values.pop("step", None), values.pop("iduser", None)
        if values:
            current = self._one("deal", did)
            info = self._call("deal", "info", {"did": did}).get("data") or {}
            linked = ";".join(str(p["pid"]) for p in info.get("person") or [])
            payload = {"marga": current.get("marga") or 0, "pid_list": linked, **values}
            self._call("deal", "update", {"did": did, **payload})
        if step is not None:
            self._call("deal", "change.step", {"did": did, "step": str(step)})
        if owner is not None:
            self._call("deal", "change.user", {"did": did, "user": self._login_of(owner)})

    def _update_task(self, tid: str, values: dict[str, Any]) -> None:
        """``task update`` re-assigns the task to the API user and resets omitted fields: send it all."""
        current = self._call("task", "info", {"id": tid})["data"]
        merged = {k: current[k] for k in WRITABLE["task"] if k in current and current[k] is not None}
        merged["pid"] = ";".join(str(p["pid"]) for p in current.get("person") or [] if p.get("pid"))
        merged.update(values)
        self._call("task", "update", {"id": tid, **merged, "user": self._login_of(merged.pop("iduser"))})

    def delete(self, entity: str, remote_id: str) -> None:
        self._known(entity)
        if entity not in ("client", "person", "deal", "task"):
            raise Unsupported(f"SalesMan's API cannot delete a {entity}", system=self.name)
        method, id_key = RECORDS[entity]
        with contextlib.suppress(NotFound):  # already gone
            self._call(method, "delete", {"id" if entity == "task" else id_key: remote_id})

    def _one(self, entity: str, remote_id: str) -> dict[str, Any]:
        found = self.fetch(entity, [remote_id])
        if not found:
            raise NotFound(f"{entity} {remote_id} does not exist or is hidden from the API user",
                           system=self.name)
        return found[0]

    def _lookup(self, reference: str) -> list[dict[str, Any]]:
        if reference not in self._lookups:
            self._lookups[reference] = [r for rows in self._scan(reference) for r in rows]
        return self._lookups[reference]

    def _login_of(self, iduser: Any) -> str:
        for user in self._lookup("user"):
            if str(user["iduser"]) == str(iduser):
                return str(user["login"])
        raise ValidationError(f"no SalesMan user with id {iduser}", field="iduser", system=self.name)

    def _user_id(self, login: Any) -> int:
        for user in self._lookup("user"):
            if user["login"] == login:
                return int(user["iduser"])
        raise ValidationError(f"no SalesMan user with login {login!r}", field="iduser", system=self.name)


def _same(stored: Any, wanted: Any) -> bool:
    return str("" if stored is None else stored) == str("" if wanted is None else wanted)
