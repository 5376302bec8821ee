"""The vtiger webservice (``webservice.php``): vtiger 7/8, SalesPlatform and Simply CRM.

Change capture: ``sync`` per entity when the install can answer it, else ``query`` keyset
polling by ``(modifiedtime, id)``; both restart ``overlap`` seconds early so a record saved in the
boundary second after a read is never lost (re-reads are harmless: unchanged content is not
rewritten). Many real installs answer every ``sync`` with HTTP 500 and an empty body (stock
vtiger 8.4 and SalesPlatform on PHP ≥ 7.1): the connector probes once and falls back.

Records are normalised at the edge so that every read path agrees: ``label`` (retrieve only) is
dropped and ``null`` (vtiger 8.4's empty references and dates) becomes ``""`` as on SalesPlatform.
"""
from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import requests

from ..errors import AuthError, ConnectorError, NotFound, ProtocolError, TransientError, ValidationError
from ..http import HttpClient, json_body
from ..jsonutil import dumps, loads
from ..redact import SECRETS
from ..types import Capture, ChangeBatch, EntitySchema, Field, SystemSettings, setting
from .base import Connector
from .session import SessionCache

PAGE = 100                      # vtiger caps every query page at 100 rows
ID_BATCH = 40                   # ids per `IN (...)`: the statement travels in the URL
SESSION_ERRORS = {"INVALID_SESSIONID", "SESSION_EXPIRED", "SESSION_LEFT_IDLE", "AUTHENTICATION_REQUIRED"}
AUTH_ERRORS = {"INVALID_AUTH_TOKEN", "INVALID_USER_CREDENTIALS", "ACCESSKEY_UNDEFINED", "AUTHENTICATION_FAILURE"}
VALIDATION_ERRORS = {"MANDATORY_FIELDS_MISSING", "REFERENCE_INVALID", "0", "DUPLICATE"}
TYPES = {  # vtiger type name -> ours
    "picklist": "picklist", "multipicklist": "multipicklist", "text": "text", "phone": "phone",
    "url": "url", "boolean": "boolean", "owner": "owner", "email": "email", "currency": "number",
    "reference": "reference", "date": "date", "datetime": "datetime", "double": "number",
    "integer": "integer",
}
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True, kw_only=True)
class VtigerSettings(SystemSettings):
    url: str = setting(form="url", help="the CRM's address, e.g. https://crm.example.com")
    username: str = setting(help="the API user's login")
    access_key: str = setting(secret=True, help="the user's access key (My Preferences → Access Key)")
    timezone: str | None = setting(None, form="timezone",
                                   help="the server's time zone (modifiedtime strings are local)")
    change_feed: str = setting("auto", choices=("auto", "sync", "query"),
                               help="auto (probe sync once) | sync | query")


class VtigerConnector(Connector):
    kind = "vtiger"
    sweep_reads_records = True  # sync misses other owners' edits; a due sweep re-reads by query
    default_timezone: ClassVar[str] = "UTC"
    select_star: ClassVar[bool] = True   # SalesPlatform crashes on any SELECT that includes `tags`
    Settings = VtigerSettings
    settings: VtigerSettings
    default_entities = ("Contacts", "Accounts")

    def __init__(self, name: str, config: Mapping[str, Any], http: HttpClient) -> None:
        super().__init__(name, config, http)
        url = self.settings.url.rstrip("/")
        self.endpoint = url if url.endswith("webservice.php") else f"{url}/webservice.php"
        self.timezone = self.settings.timezone or self.default_timezone
        self.overlap = self.settings.overlap
        self.change_feed = self.settings.change_feed
        self._session: SessionCache[dict[str, Any]] = SessionCache(self._login)
        self._sync_works: bool | None = None
        self._clock_offset = 0.0
        self._schemas: dict[str, EntitySchema] = {}

    # -- transport ---------------------------------------------------------------------------
    def _parse(self, response: requests.Response) -> Any:
        if not response.content:
            raise TransientError(f"HTTP {response.status_code} with an empty body (a PHP fatal error)")
        body = json_body(response)
        if not isinstance(body, dict) or "success" not in body:
            raise ProtocolError("the answer is not a webservice envelope; is url the CRM's address?")
        if body["success"]:
            return body.get("result")
        error = body.get("error") or {}
        code = str(error.get("code", error.get("errorCode", "")))
        message = str(error.get("message", error.get("errorMessage", "unknown error")))
        raise _VtigerError(code, message)

    def _raw(self, method: str, operation: str, params: dict[str, Any], *, retry: bool = True) -> Any:
        key = "params" if method == "GET" else "data"
        return self.http.request(method, self.endpoint, op=operation, parse=self._parse, retry=retry,
                                 idempotent=operation != "create", **{key: {"operation": operation, **params}})

    def _call(self, method: str, operation: str, params: dict[str, Any], *, retry: bool = True) -> Any:
        """A logged-in call; an expired session is renewed once, then the call is repeated."""
        for attempt in (1, 2):
            session = self._session.get()
            try:
                return self._raw(method, operation, {**params, "sessionName": session["sessionName"]},
                                 retry=retry)
            except _VtigerError as exc:
                if exc.code in SESSION_ERRORS and attempt == 1:
                    self._session.drop(session)
                    continue
                raise self._typed(exc, operation) from None
        raise AssertionError("unreachable")

    def _login(self) -> dict[str, Any]:
        """getchallenge + login, serialized by the session cache (concurrent logins race, spec §2.2).

        A refused login is not tried again: INVALID_USER_CREDENTIALS is a wrong key (or another
        process's getchallenge in between, which the next run survives), and each try would count
        as a failed login against the account.
        """
        username = self.settings.username
        for attempt in (1, 2):
            try:
                challenge = self._raw("GET", "getchallenge", {"username": username})
                key = hashlib.md5((challenge["token"] + self.settings.access_key).encode()).hexdigest()
                SECRETS.add_derived(key)  # some installs echo the login request in their error
                info = self._raw("POST", "login", {"username": username, "accessKey": key})
                break
            except _VtigerError as exc:
                if attempt == 1 and exc.code == "INVALID_AUTH_TOKEN":
                    continue  # the token expired before it was used: the key was not checked
                if exc.code in AUTH_ERRORS or exc.code == "ACCESS_DENIED":
                    raise AuthError(f"login refused for user {username!r} ({exc.code}: {exc.message}); "
                                    "check username and access_key (My Preferences → Access Key)",
                                    system=self.name) from None
                raise self._typed(exc, "login") from None
        SECRETS.add_derived(info.get("sessionName"))
        self._clock_offset = float(challenge.get("serverTime") or time.time()) - time.time()
        return dict(info)

    def _server_now(self) -> int:
        """The server's clock (epoch), as getchallenge last told it."""
        self._session.get()
        return int(time.time() + self._clock_offset)

    def _typed(self, exc: _VtigerError, operation: str) -> ConnectorError:
        if exc.code in AUTH_ERRORS:
            return AuthError(f"{exc.code}: {exc.message}", system=self.name)
        if exc.code in VALIDATION_ERRORS:
            field = exc.message.split(" does not have a value")[0] if "does not have a value" in exc.message else None
            if exc.code == "REFERENCE_INVALID":
                field = exc.message.rsplit(" ", 1)[-1]
            return ValidationError(f"{operation} refused: {exc.message}", field=field, system=self.name)
        if exc.code in ("ACCESS_DENIED", "RECORD_NOT_FOUND", "INVALID_ID_ATTRIBUTE") and operation in (
                "retrieve", "revise", "update", "delete"):
            return NotFound(f"{operation}: no such record ({exc.message})", system=self.name)
        return ConnectorError(f"{operation} failed: {exc.code}: {exc.message}", system=self.name)

    # -- metadata ----------------------------------------------------------------------------
    def check(self) -> str:
        types = self._call("GET", "listtypes", {})["types"]
        info = self._session.get()
        return f"vtiger {info.get('vtigerVersion', '?')} as {self.settings.username}, {len(types)} types"

    def entities(self) -> list[str]:
        result = self._call("GET", "listtypes", {})
        info = result.get("information") or {}
        return [t for t in result["types"] if not isinstance(info, dict) or info.get(t, {}).get("isEntity", True)]

    def describe(self, entity: str) -> EntitySchema:
        raw = self._call("GET", "describe", {"elementType": entity})
        fields = []
        for f in raw["fields"]:
            vtype = f.get("type") or {}
            name = vtype.get("name", "string")
            fields.append(Field(
                name=f["name"], type=TYPES.get(name, "string"), label=f.get("label", ""),
                mandatory=bool(f.get("mandatory")), editable=bool(f.get("editable", True)),
                choices=tuple((str(p.get("value")), str(p.get("label"))) for p in vtype.get("picklistValues") or ()),
                refers_to=tuple(vtype.get("refersTo") or ())))
        schema = EntitySchema(name=entity, fields=fields, label=raw.get("label", ""),
                              timezone=self.timezone, modified_field="modifiedtime", html_encoded=True,
                              name_fields=tuple(f for f in (raw.get("labelFields") or "").split(",") if f))
        self._schemas[entity] = schema
        return schema

    def capture(self, entity: str) -> Capture:
        return Capture.FEED if self._sync_available(entity) else Capture.INCREMENTAL

    def change_reading(self, entity: str, cursor: str | None) -> str:
        state = loads(cursor) if cursor else {}
        mode = state.get("mode")
        if mode and self.change_feed != "auto" and mode != self.change_feed:
            state = {}  # the setting changed since the last pull: it starts over
        if not state:
            then = {"auto": "then `sync` if the server answers it, else `query`"}.get(
                self.change_feed, f"then `{self.change_feed}`")
            return f"full `query` read next, {then}"
        if mode == "sync" and "scan" in state:
            return "full `query` read cut short: resumes, then `sync` API"
        if mode == "sync":
            since = datetime.fromtimestamp(int(state.get("t") or 0), UTC).strftime("%Y-%m-%d %H:%M UTC")
            return f"`sync` API (edits and deletions) since {since}"
        return f"`query` on modifiedtime since {state.get('t')} (CRM time); deletions by sweep"

    # -- change capture ----------------------------------------------------------------------
    def read_changes(self, entity: str, cursor: str | None) -> Iterator[ChangeBatch]:
        state = loads(cursor) if cursor else {}
        mode = state.get("mode")
        if mode is None or (mode == "sync" and self.change_feed == "query") \
                or (mode == "query" and self.change_feed == "sync"):
            mode = "sync" if self._sync_available(entity) else "query"
            state = {}
        elif mode == "sync":
            self._sync_works = True
        if not state:
            yield from self._scan(entity, mode)
        elif mode == "sync" and "scan" in state:  # a first read cut short: go on from its last page
            yield from self._scan(entity, mode, since=int(state["t"]), resume=state["scan"])
        elif mode == "sync":
            yield from self._read_sync(entity, state)
        else:
            yield from self._read_query(entity, state)

    def _scan(self, entity: str, mode: str, *, since: int | None = None,
              resume: dict[str, str] | None = None) -> Iterator[ChangeBatch]:
        """A full read through ``query``, which sees every record the user may read (``sync``
        shows only the user's own: another owner's edits and reassignments would never arrive).
        In sync mode the feed then continues from the server time the scan started at.

        Every page carries a cursor: the query keyset in query mode, and in sync mode the scan's
        start time with its keyset (``scan``), so a read cut short resumes after its last
        committed page (RESUME). A resumed read is not a complete listing: its batches are not
        ``scan`` batches, so the engine sweeps nothing on its strength.
        """
        if since is None:
            since = self._server_now() - self.overlap
        for batch in self._read_query(entity, resume or {}):
            batch.scan = resume is None
            if mode == "sync" and batch.cursor:
                keyset = loads(batch.cursor)
                batch.cursor = dumps({"mode": "sync", "t": since,
                                           "scan": {"t": keyset["t"], "id": keyset["id"]}})
            yield batch
        if mode == "sync":
            yield ChangeBatch(cursor=dumps({"mode": "sync", "t": since}), scan=resume is None)

    def _sync_available(self, entity: str) -> bool:
        """Probe ``sync`` once: a stock install answers every call with HTTP 500 and no body."""
        if self.change_feed != "auto":
            return self.change_feed == "sync"
        if self._sync_works is None:
            failures = 0
            for _ in range(3):  # an injected or passing 500 must not decide it
                try:
                    self._call("GET", "sync", {"modifiedTime": int(time.time()), "elementType": entity},
                               retry=False)
                    self._sync_works = True
                    break
                except TransientError:
                    failures += 1
            else:
                self._sync_works = False
        return self._sync_works

    def _read_sync(self, entity: str, state: dict[str, Any]) -> Iterator[ChangeBatch]:
        stored = int(state.get("t", 0))
        since = max(stored - self.overlap, 1) if stored else 1
        while True:
            result = self._call("GET", "sync", {"modifiedTime": since, "elementType": entity})
            last = int(result.get("lastModifiedTime") or since)
            stored = max(stored, last)
            yield ChangeBatch(records=[_clean(r) for r in result.get("updated") or []],
                              deleted=[str(d) for d in result.get("deleted") or []],
                              cursor=dumps({"mode": "sync", "t": stored}))
            if not result.get("more"):
                return
            if last <= since:
                raise ProtocolError(f"sync of {entity} says more=true but does not advance past {since}",
                                    system=self.name)
            since = last

    def _read_query(self, entity: str, state: dict[str, Any]) -> Iterator[ChangeBatch]:
        columns = self._columns(entity)
        after: tuple[str, str] | None = None
        if state.get("t"):
            start = datetime.strptime(state["t"], TIME_FORMAT) - timedelta(seconds=self.overlap)
            where = f" WHERE modifiedtime >= {quote(start.strftime(TIME_FORMAT))}"
        else:
            where = ""
        last = (state.get("t", ""), state.get("id", ""))
        while True:
            if after:
                where = (f" WHERE modifiedtime > {quote(after[0])} OR modifiedtime = {quote(after[0])}"
                         f" AND id > {quote(after[1])}")
            rows = self._call("GET", "query", {
                "query": f"SELECT {columns} FROM {entity}{where} ORDER BY modifiedtime, id LIMIT {PAGE};"})
            if tail := next((r for r in reversed(rows) if _id_number(r["id"]) >= 0), None):
                after = (tail.get("modifiedtime") or "", tail["id"])
                last = max(last, after, key=_keyset_order)
            yield ChangeBatch(records=[_clean(r) for r in rows],
                              cursor=dumps({"mode": "query", "t": last[0], "id": last[1]}) if last[0] else None)
            if len(rows) < PAGE:
                return

    def list_ids(self, entity: str) -> Iterator[list[str]]:
        after = None
        while True:  # keyset by id, to the first empty page: a short page may be permission-filtered
            where = f" WHERE id > {quote(after)}" if after else ""
            rows = self._call("GET", "query", {"query": f"SELECT id FROM {entity}{where} ORDER BY id LIMIT {PAGE};"})
            if not rows:
                return
            ids = [r["id"] for r in rows]
            yield ids
            after = max(ids, key=_id_number)

    def fetch(self, entity: str, ids: Iterable[str]) -> list[dict[str, Any]]:
        ids = list(ids)
        columns = self._columns(entity)
        found: list[dict[str, Any]] = []
        for start in range(0, len(ids), ID_BATCH):
            chunk = ", ".join(quote(i) for i in ids[start:start + ID_BATCH])
            found += self._call("GET", "query", {"query": f"SELECT {columns} FROM {entity} WHERE id IN ({chunk});"})
        return [_clean(r) for r in found]

    def search(self, entity: str, criteria: dict[str, Any]) -> list[dict[str, Any]]:
        if not criteria or any(v in (None, "") for v in criteria.values()):
            return []  # VTQL cannot express an empty literal
        where = " AND ".join(f"{name} = {quote(str(value))}" for name, value in criteria.items())
        rows = self._call("GET", "query", {
            "query": f"SELECT {self._columns(entity)} FROM {entity} WHERE {where} LIMIT {PAGE};"})
        return [_clean(r) for r in rows]

    def _columns(self, entity: str) -> str:
        if self.select_star:
            return "*"
        schema = self._schemas.get(entity) or self.describe(entity)
        return ", ".join(f.name for f in schema.fields if f.name not in ("id", "tags"))

    # -- writes ------------------------------------------------------------------------------
    def create(self, entity: str, values: dict[str, Any]) -> dict[str, Any]:
        values = dict(values)
        if "assigned_user_id" not in values:
            values["assigned_user_id"] = self._session.get().get("userId", "19x1")
        return _clean(self._call("POST", "create", {"elementType": entity, "element": dumps(values, ascii_only=True)}))

    def update(self, entity: str, remote_id: str, values: dict[str, Any]) -> dict[str, Any]:
        element = dumps({**values, "id": remote_id}, ascii_only=True)
        return _clean(self._call("POST", "revise", {"element": element}))

    def delete(self, entity: str, remote_id: str) -> None:
        with contextlib.suppress(NotFound):  # already gone: a delete is done either way
            self._call("POST", "delete", {"id": remote_id})


class SalesPlatformConnector(VtigerConnector):
    kind = "salesplatform"
    default_timezone = "Europe/Moscow"
    select_star = False


class SimplyCrmConnector(VtigerConnector):
    kind = "simplycrm"


class _VtigerError(Exception):
    """A webservice error envelope, before it is given a typed meaning."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


def quote(value: str) -> str:
    """A VTQL string literal. VTQL's lexer takes ``''`` for a quote and passes backslashes on, but
    vtiger pastes the literal into its SQL, where MySQL reads ``\\`` as one backslash (spec §7.2)."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


def _clean(record: dict[str, Any]) -> dict[str, Any]:
    return {k: ("" if v is None else v) for k, v in record.items() if k != "label"}


def _id_number(remote_id: str) -> int:
    """The crmid of ``12x345``; -1 for an id without one (a hostile answer must not end the read)."""
    number = str(remote_id).rpartition("x")[2]
    return int(number) if number.isdigit() else -1


def _keyset_order(key: tuple[str, str]) -> tuple[str, int]:
    return key[0], _id_number(key[1]) if key[1] else -1
