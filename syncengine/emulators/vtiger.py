"""The vtiger webservice (``/webservice.php``) as a local HTTP server, in three dialects.

``v84`` is stock vtiger 8.4.0 on PHP 8 (UTC, ``null`` for empty references, raw UTF-8),
``sp72`` is SalesPlatform 7.2 (Europe/Moscow, ``""`` for empties, ``\\uXXXX`` and ``\\/``, Russian
labels, the ``tags`` fatal of ``SELECT *``) and ``simplycrm`` is a vtiger 7 fork (PHP 7 semantics,
``errorCode``/``errorMessage`` error keys). The contract is §13 of ``shared/specs/vtiger.md``; the
replies follow the recordings in ``shared/fixtures/real``.

Records live in an in-memory SQLite database, one table per module with vtiger's crmentity columns
folded in, so ``query`` becomes SQL the way vtiger pastes VTQL into MySQL and ``sync`` is the
§8.3 algorithm run literally as three indexed SQL statements: both stay at a few milliseconds a
page with 200,000 records.
"""
from __future__ import annotations

import copy
import hashlib
import json
import random
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import orjson

from . import vtiger_layouts as layouts
from . import vtiger_vtql as vtql
from .base import EmulatorApp, Request, Response

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
API_VERSION = "0.22"
ADMIN_ID = 1
QUERY_CAP = 100
SYNC_WINDOW = 100
TOKEN_LIFETIME = 300
DENIED = "Permission to perform the operation is denied"
DENIED_FOR_ID = "Permission to perform the operation is denied for id"
BAD_ID = "Id specified is incorrect"
DB_ERROR = "Database error while performing requested operation"
GHOST_REPLY = "Sorry! Attempt to access restricted file."


@dataclass(frozen=True)
class Dialect:
    """What differs between the installs (see §11 of the spec and the two recordings)."""

    name: str
    kind: str                      # the connector kind for sync.toml
    version: str                   # vtigerVersion
    php: str                       # default PHP profile: "legacy" | "7" | "8"
    timezone: str
    escape: bool                   # PHP json_encode defaults: \uXXXX and \/
    login_profile: bool            # V84 login puts the user profile first
    count_rows: bool               # count(*) gives [{"count": "N"}] (vtiger 8.4 gives [])
    russian: bool                  # SalesPlatform layouts, labels and auto-numbers
    error_keys: tuple[str, str]    # (code key, message key), in emitted order reversed below
    strict_element: bool           # V84/PHP 8: missing element → fatal, bad JSON → INTERNAL_SERVER_ERROR
    missing_id_invalid: bool       # update/revise without id: INVALID_ID_ATTRIBUTE (V84) or ACCESS_DENIED
    trim_label: bool               # V84 trims the record label (" Smith" → "Smith")
    dotted_dates: bool             # V84 reads "31.12.1999" as a date; SP stores nothing
    ghost_create: bool             # V84: owner that is no user + emailoptout 0 → text reply, record saved
    tags_fatal: bool               # SP: any query selecting `tags` is a PHP fatal


DIALECTS = {
    "v84": Dialect("v84", "vtiger", "8.4.0", "8", "UTC", escape=False, login_profile=True,
                   count_rows=False, russian=False, error_keys=("code", "message"), strict_element=True,
                   missing_id_invalid=True, trim_label=True, dotted_dates=True, ghost_create=True,
                   tags_fatal=False),
    "sp72": Dialect("sp72", "salesplatform", "7.2.0-202008", "8", "Europe/Moscow", escape=True,
                    login_profile=False, count_rows=True, russian=True, error_keys=("code", "message"),
                    strict_element=False, missing_id_invalid=False, trim_label=False, dotted_dates=False,
                    ghost_create=False, tags_fatal=True),
    "simplycrm": Dialect("simplycrm", "simplycrm", "7.1.0", "7", "UTC", escape=True, login_profile=False,
                         count_rows=True, russian=False, error_keys=("errorCode", "errorMessage"),
                         strict_element=False, missing_id_invalid=False, trim_label=False,
                         dotted_dates=False, ghost_create=False, tags_fatal=False),
}

# Stock ws-entity prefixes (§4); modules after CompanyDetails are numbered in listtypes order.
STOCK_PREFIXES = {
    "Campaigns": 1, "Vendors": 2, "Faq": 3, "Quotes": 4, "PurchaseOrder": 5, "SalesOrder": 6, "Invoice": 7,
    "PriceBooks": 8, "Calendar": 9, "Leads": 10, "Accounts": 11, "Contacts": 12, "Potentials": 13,
    "Products": 14, "Documents": 15, "Emails": 16, "HelpDesk": 17, "Events": 18, "Users": 19, "Groups": 20,
    "Currency": 21, "DocumentFolders": 22, "CompanyDetails": 23,
}

# name -> (type, prelogin); type decides where handler parameters are read from (§1.1)
OPERATIONS = {
    "getchallenge": ("GET", True), "login": ("POST", True), "logout": ("POST", False),
    "extendsession": ("POST", True), "listtypes": ("GET", False), "describe": ("GET", False),
    "create": ("POST", False), "retrieve": ("GET", False), "update": ("POST", False),
    "revise": ("POST", False), "delete": ("POST", False), "query": ("GET", False), "sync": ("GET", False),
}

AUTO_NUMBER = {  # module -> (field, v84 prefix, SalesPlatform prefix)
    "Contacts": ("contact_no", "CON", "КОНТАКТ_"),
    "Accounts": ("account_no", "ACC", "КОНТР_"),
    "Leads": ("lead_no", "LEA", "ЛИД_"),
}
# varchar lengths of the text columns (vtiger's schema): MySQL cuts a longer value, counted in
# characters, without an error, and every read answers the cut value.
_PERSON = {"firstname": 40, "lastname": 80, "email": 100, "phone": 50, "mobile": 50, "fax": 50,
           "title": 50, "department": 30, "secondaryemail": 100, "otheremail": 100, "homephone": 50,
           "otherphone": 50, "assistant": 30, "assistantphone": 50, "mailingcity": 40, "mailingstreet": 250,
           "mailingcountry": 40, "mailingstate": 30, "mailingpobox": 30, "mailingzip": 30, "othercity": 40,
           "otherstreet": 250, "othercountry": 30, "otherstate": 50, "otherpobox": 30, "otherzip": 30}
MAX_LENGTH: dict[str, dict[str, int]] = {
    "Contacts": _PERSON,
    "Leads": {**_PERSON, "company": 100, "designation": 50, "website": 255, "lane": 250, "city": 30,
              "state": 30, "code": 30, "country": 30, "pobox": 30},
    "Accounts": {"accountname": 100, "phone": 30, "otherphone": 30, "fax": 30, "email1": 100, "email2": 100,
                 "website": 100, "tickersymbol": 30, "ownership": 50, "siccode": 50, "bill_city": 30,
                 "bill_street": 250, "bill_country": 30, "bill_state": 30, "bill_code": 30, "bill_pobox": 30,
                 "ship_city": 30, "ship_street": 250, "ship_country": 30, "ship_state": 30, "ship_code": 30,
                 "ship_pobox": 30},
}
NUMBER_TYPES = {"integer", "double", "currency"}
PLAIN, DATE, OWNER, USERS, REFERENCE = range(5)  # how _present renders a field
KINDS = {"date": DATE, "owner": OWNER, "reference": REFERENCE}


class WsError(Exception):
    """A JSON error reply: ``{"success": false, "error": {...}}`` with HTTP 200."""

    def __init__(self, code: str | int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Fatal(Exception):
    """A PHP fatal: no JSON, an empty body."""


@dataclass
class User:
    id: int
    user_name: str
    access_key: str
    first_name: str
    last_name: str
    email: str
    is_admin: bool
    groups: tuple[int, ...] = ()


@dataclass
class Module:
    """One entity module: its describe layout and the shape of its table."""

    name: str
    prefix: int
    describe: dict[str, Any]
    fields: list[str]                 # field names in layout order, without the synthetic id
    types: dict[str, str]
    refers: dict[str, list[str]]
    mandatory: list[str]
    unique: list[str]
    editable: set[str]
    label_fields: list[str]
    table: str

    @property
    def owner_field(self) -> str:
        return "assigned_user_id"

    @property
    def has_tags(self) -> bool:
        return "tags" in self.types


def _module(describe: dict[str, Any], prefix: int) -> Module:
    describe = copy.deepcopy(describe)
    describe["idPrefix"] = str(prefix)
    fields = [f for f in describe["fields"] if f["name"] != "id"]
    return Module(
        name=describe["name"], prefix=prefix, describe=describe,
        fields=[f["name"] for f in fields],
        types={f["name"]: f["type"]["name"] for f in fields},
        refers={f["name"]: f["type"].get("refersTo", []) for f in fields if f["type"]["name"] == "reference"},
        mandatory=[f["name"] for f in fields if f["mandatory"]],
        unique=[f["name"] for f in fields if f.get("isunique")] if not describe["allowDuplicates"] else [],
        editable={f["name"] for f in fields if f["editable"]},
        label_fields=describe["labelFields"].split(","),
        table=f"m_{describe['name']}",
    )


def _q(name: str) -> str:
    return '"' + name + '"'


def _php_escape(text: str) -> str:
    """htmlspecialchars(ENT_QUOTES), what vtiger stores as a record label."""
    return (text.replace("&", "&amp;").replace('"', "&quot;").replace("'", "&#039;")
            .replace("<", "&lt;").replace(">", "&gt;"))


def _html_decode(text: str) -> str:
    return (text.replace("&quot;", '"').replace("&#039;", "'").replace("&lt;", "<")
            .replace("&gt;", ">").replace("&amp;", "&"))


class VtigerApp(EmulatorApp):
    """The webservice of one vtiger install with its users, sessions and records."""

    kind = "vtiger"

    def __init__(self, *, dialect: Dialect, username: str, access_key: str, sync_broken: bool, php: str,
                 timezone_name: str, session_idle: float, tags_fatal: bool, shuffle: bool,
                 fatal_status: int, id_prefixes: dict[str, int], echo_login_request: bool = False):
        super().__init__()
        self.echo_login_request = echo_login_request
        self.dialect = dialect
        self.kind = dialect.kind
        self.sync_broken = sync_broken
        self.php = php
        self.tz = ZoneInfo(timezone_name)
        self.timezone_name = timezone_name
        self.session_idle = session_idle
        self.tags_fatal = tags_fatal
        self.shuffle = shuffle
        self.fatal_status = fatal_status
        self.nulls = dialect.name == "v84" and php == "8"  # PHP 8 on 8.4 emits null for empties
        self.users = {
            ADMIN_ID: User(ADMIN_ID, username, access_key, "Admin", "Administrator", "admin@example.com",
                           True, groups=(2,)),
            5: User(5, "manager", "manager-key", "Мария", "Соколова", "m.sokolova@example.ru", False),
        }
        self.groups = {2: "Team Selling", 3: "Marketing Group", 4: "Support Group"}
        self.tokens: dict[int, tuple[str, int]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self._frozen: float | None = None
        self._offset = 0.0
        self._uniq = 0
        self._random = random.Random()
        self.listtypes = copy.deepcopy(layouts.LISTTYPES_SP72 if dialect.russian else layouts.LISTTYPES_V84)
        self.prefixes = dict(id_prefixes)
        self.entity_by_prefix = {p: name for name, p in self.prefixes.items()}
        if dialect.russian:
            described = [layouts.CONTACTS_SP72, layouts.ACCOUNTS_SP72, layouts.leads_layout("Обращения")]
        else:
            described = [layouts.CONTACTS_V84, layouts.ACCOUNTS_V84, layouts.leads_layout("Leads")]
        self.modules = {d["name"]: _module(d, self.prefixes[d["name"]]) for d in described}
        self.counters = dict.fromkeys(self.modules, 0)
        self.db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        self._create_tables()

    # -- clock ------------------------------------------------------------------------------

    def now(self) -> float:
        return self._frozen if self._frozen is not None else time.time() + self._offset

    def local(self, epoch: float) -> str:
        """date('Y-m-d H:i:s', epoch) in the server zone."""
        return datetime.fromtimestamp(int(epoch), self.tz).strftime(TIME_FORMAT)

    def epoch(self, local: str) -> int:
        """strtotime() of a server-local naive datetime string."""
        return int(datetime.strptime(local, TIME_FORMAT).replace(tzinfo=self.tz).timestamp())

    def _uniqid(self) -> str:
        """PHP uniqid(): 8 hex digits of seconds, 5 of microseconds (kept unique here)."""
        self._uniq += 1
        t = self.now()
        return f"{int(t):08x}{(int(t % 1 * 1_000_000) + self._uniq) % 0x100000:05x}"

    # -- storage ----------------------------------------------------------------------------

    def _create_tables(self) -> None:
        cur = self.db.cursor()
        cur.execute("CREATE TABLE crmentity (crmid INTEGER PRIMARY KEY, setype TEXT NOT NULL, "
                    "deleted INTEGER NOT NULL DEFAULT 0)")
        for mod in self.modules.values():
            columns = ", ".join(f"{_q(f)} TEXT" for f in mod.fields)
            cur.execute(f"CREATE TABLE {mod.table} (crmid INTEGER PRIMARY KEY, deleted INTEGER NOT NULL "
                        f"DEFAULT 0, converted INTEGER NOT NULL DEFAULT 0, label TEXT, uniq TEXT, {columns})")

    def _create_indexes(self) -> None:
        for mod in self.modules.values():
            t = mod.table
            self.db.execute(f'CREATE INDEX IF NOT EXISTS {t}_mt ON {t} ("modifiedtime", crmid)')
            self.db.execute(f'CREATE INDEX IF NOT EXISTS {t}_owner_mt ON {t} ("assigned_user_id", "modifiedtime")')
            if mod.unique:
                self.db.execute(f"CREATE INDEX IF NOT EXISTS {t}_uniq ON {t} (uniq)")

    def _next_crmid(self) -> int:
        row = self.db.execute("SELECT max(crmid) FROM crmentity").fetchone()
        return (row[0] or 0) + 1

    def _auto_number(self, mod: Module) -> tuple[str, str] | None:
        spec = AUTO_NUMBER.get(mod.name)
        if spec is None:
            return None
        self.counters[mod.name] += 1
        field_name, v84, sp = spec
        return field_name, f"{sp if self.dialect.russian else v84}{self.counters[mod.name]}"

    def _uniq_key(self, mod: Module, values: dict[str, Any]) -> str | None:
        if not mod.unique:
            return None
        return "\x1f".join(str(values.get(f) or "").casefold() for f in mod.unique)

    def _insert(self, mod: Module, crmid: int, values: dict[str, Any], label: str, deleted: int = 0) -> None:
        names = ["crmid", "deleted", "label", "uniq", *mod.fields]
        row = [crmid, deleted, label, self._uniq_key(mod, values)] + [values.get(f) for f in mod.fields]
        self.db.execute(f"INSERT INTO {mod.table} ({', '.join(map(_q, names))}) "
                        f"VALUES ({', '.join('?' * len(names))})", row)
        self.db.execute("INSERT INTO crmentity (crmid, setype, deleted) VALUES (?, ?, ?)",
                        (crmid, mod.name, deleted))

    def _update(self, mod: Module, crmid: int, values: dict[str, Any], **meta: Any) -> None:
        sets = dict(values)
        if mod.unique and any(f in values for f in mod.unique):
            current = self._row(mod, crmid)
            sets["uniq"] = self._uniq_key(mod, {**current, **values})
        sets.update(meta)
        self.db.execute(f"UPDATE {mod.table} SET {', '.join(f'{_q(k)} = ?' for k in sets)} WHERE crmid = ?",
                        [*sets.values(), crmid])
        if "deleted" in meta:
            self.db.execute("UPDATE crmentity SET deleted = ? WHERE crmid = ?", (meta["deleted"], crmid))

    def _row(self, mod: Module, crmid: int) -> dict[str, Any]:
        cur = self.db.execute(f"SELECT * FROM {mod.table} WHERE crmid = ?", (crmid,))
        names = [d[0] for d in cur.description]
        row = cur.fetchone()
        return dict(zip(names, row, strict=False)) if row else {}

    def _live_targets(self, ids: set[int]) -> dict[int, str]:
        """crmid -> module of the non-deleted records among ``ids`` (reference resolution)."""
        if not ids:
            return {}
        found: dict[int, str] = {}
        ordered = sorted(ids)
        for start in range(0, len(ordered), 500):
            chunk = ordered[start:start + 500]
            cur = self.db.execute(f"SELECT crmid, setype FROM crmentity WHERE deleted = 0 AND crmid IN "
                                  f"({', '.join('?' * len(chunk))})", chunk)
            found.update(cur.fetchall())
        return found

    # -- output (§9) ------------------------------------------------------------------------

    def _present(self, mod: Module, rows: list[dict[str, Any]], fields: list[str], *, as_row: bool,
                 label: bool = False) -> list[dict[str, Any]]:
        """Rows as the API emits them: query/sync rows (as_row) or retrieve/create records."""
        plan = [(f, KINDS.get(mod.types[f], PLAIN)) for f in fields]
        plan = [(f, USERS if kind == REFERENCE and mod.refers[f] == ["Users"] else kind) for f, kind in plan]
        refs = {int(v) for r in rows for f, kind in plan if kind == REFERENCE
                for v in (r.get(f),) if v and str(v).isdigit()}
        live = self._live_targets(refs)
        empty_ref = None if self.nulls else ""
        empty_date = None if (self.nulls and as_row) else ""
        users_prefix = f"{self.prefixes['Users']}x"
        prefix = f"{mod.prefix}x"
        out = []
        for r in rows:
            rec: dict[str, Any] = {}
            for f, kind in plan:
                v = r[f]
                if kind == PLAIN:
                    rec[f] = "" if v is None else v
                elif kind == DATE:
                    rec[f] = v if v else empty_date
                elif kind == OWNER:
                    rec[f] = self._owner_out(v)
                elif kind == USERS:
                    rec[f] = users_prefix + v if v else ""
                elif v and str(v).isdigit() and int(v) in live:
                    rec[f] = f"{self.prefixes[live[int(v)]]}x{v}"
                else:
                    rec[f] = empty_ref
            rec["id"] = prefix + str(r["crmid"])
            if label:
                rec["label"] = r.get("label") or ""
            out.append(rec)
        return out

    def _owner_out(self, value: Any) -> str:
        if value is None or value == "":
            return ""
        text = str(value)
        if text.isdigit() and int(text) in self.users:
            return f"{self.prefixes['Users']}x{text}"
        if text.isdigit() and int(text) in self.groups:
            return f"{self.prefixes['Groups']}x{text}"
        return text

    def _record(self, mod: Module, crmid: int) -> dict[str, Any]:
        return self._present(mod, [self._row(mod, crmid)], mod.fields, as_row=False, label=True)[0]

    # -- input (§9) -------------------------------------------------------------------------

    def _stored(self, mod: Module, name: str, value: Any) -> Any:
        """An API input value as the database keeps it."""
        t = mod.types[name]
        if value is None:
            return None if t in ("reference", "date") else ""
        if t == "boolean":
            return "1" if value is True or value == 1 or str(value).lower() in ("1", "on") else "0"
        if isinstance(value, list):
            value = " |##| ".join(str(v) for v in value)
        elif isinstance(value, bool):
            value = "1" if value else ""
        text = str(value)
        if t == "reference":
            return text.rpartition("x")[2] or None
        if t == "owner":
            return text.rpartition("x")[2]
        if t == "date":
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                return text
            dotted = re.fullmatch(r"(\d{2})\.(\d{2})\.(\d{4})", text)
            if dotted and self.dialect.dotted_dates:
                return f"{dotted[3]}-{dotted[2]}-{dotted[1]}"
            return None
        if t in NUMBER_TYPES:
            try:
                number = float(text)
            except ValueError:
                number = 0.0
            return str(int(number)) if t == "integer" else f"{number:.8f}"
        if name == "description":
            text = text.replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")
        limit = MAX_LENGTH.get(mod.name, {}).get(name)
        return text[:limit] if limit else text

    def _defaults(self, mod: Module) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for f in mod.fields:
            t = mod.types[f]
            values[f] = ("0" if t in ("boolean", "integer") else "0.00000000" if t in ("currency", "double")
                         else None if t in ("reference", "date") else "")
        return values

    def _label(self, mod: Module, values: dict[str, Any]) -> str:
        text = " ".join(str(values.get(f) or "") for f in mod.label_fields)
        return _php_escape(text.strip() if self.dialect.trim_label else text)

    def _check_references(self, mod: Module, element: dict[str, Any]) -> None:
        for name, targets in mod.refers.items():
            value = element.get(name)
            if value in (None, ""):
                continue
            prefix = str(value).partition("x")[0]
            entity = self.entity_by_prefix.get(int(prefix)) if prefix.isdigit() else None
            if entity is None:
                raise WsError("ACCESS_DENIED", DENIED_FOR_ID)
            if entity not in targets:
                raise WsError("REFERENCE_INVALID", f"Invalid reference specified for {name}")

    @staticmethod
    def _check_mandatory(mod: Module, element: dict[str, Any], *, present_only: bool) -> None:
        for name in mod.mandatory:
            if present_only and name not in element:
                continue
            if element.get(name) is None or element.get(name) == "":
                raise WsError("MANDATORY_FIELDS_MISSING", f"{name} does not have a value")

    def _check_duplicate(self, mod: Module, values: dict[str, Any], crmid: int | None) -> None:
        key = self._uniq_key(mod, values)
        if key is None:
            return
        hit = self.db.execute(f"SELECT crmid FROM {mod.table} WHERE uniq = ? AND deleted = 0 AND crmid != ? "
                              "LIMIT 1", (key, crmid or 0)).fetchone()
        if hit:
            raise WsError(0, "Обнаружено дублирование!" if self.dialect.russian else "Duplicate(s) detected!")

    def _save(self, mod: Module, element: dict[str, Any], user_id: int, *, crmid: int | None = None,
              keep_empty_refs: bool = False, decode: bool = False, modifiedtime: str | None = None,
              createdtime: str | None = None) -> int:
        """Create (crmid None) or overlay ``element`` on a record; every save bumps modifiedtime."""
        now = modifiedtime or self.local(self.now())
        current = self._row(mod, crmid) if crmid else {}
        if decode:
            current = {k: _html_decode(v) if isinstance(v, str) and k in mod.types else v
                       for k, v in current.items()}
        given = {}
        for name, value in element.items():
            if name not in mod.types or name not in mod.editable:
                continue
            if keep_empty_refs and mod.types[name] == "reference" and value == "":
                continue
            given[name] = value
        stored = {name: self._stored(mod, name, value) for name, value in given.items()}
        stored.update(modifiedtime=now, modifiedby=str(user_id))
        merged = {**(current or self._defaults(mod)), **stored}
        self._check_duplicate(mod, merged, crmid)
        label_source = {f: given.get(f, merged.get(f)) for f in mod.label_fields}
        label = self._label(mod, label_source)
        if crmid is None:
            crmid = self._next_crmid()
            merged.update(createdtime=createdtime or now, source="WEBSERVICE")
            if "created_user_id" in mod.types:
                merged["created_user_id"] = str(user_id)
            auto = self._auto_number(mod)
            if auto:
                merged[auto[0]] = auto[1]
            self._insert(mod, crmid, merged, label)
        else:
            if decode:
                stored = {**{k: current[k] for k in mod.fields if k in current}, **stored}
            self._update(mod, crmid, stored, label=label)
        return crmid

    # -- ids --------------------------------------------------------------------------------

    def _resolve(self, ws_id: Any) -> tuple[Module, int]:
        """The module and crmid of a live record, with vtiger's error for each failure (§6.5)."""
        text = "" if ws_id is None else str(ws_id)
        prefix, sep, rest = text.partition("x")
        if not sep or not prefix.isdigit() or int(prefix) not in self.entity_by_prefix:
            raise WsError("ACCESS_DENIED", DENIED_FOR_ID)
        row = self.db.execute("SELECT setype FROM crmentity WHERE crmid = ? AND deleted = 0",
                              (int(rest) if rest.isdigit() else -1,)).fetchone()
        if row is None:
            raise WsError("ACCESS_DENIED", DENIED)
        if row[0] != self.entity_by_prefix[int(prefix)]:
            raise WsError("INVALID_ID_ATTRIBUTE", BAD_ID)
        return self.modules[row[0]], int(rest)

    def _crmid(self, ws_id: Any) -> tuple[Module, int]:
        """Test hooks: accept ``12x5`` or a bare crmid, deleted records included."""
        text = str(ws_id)
        crmid = int(text.rpartition("x")[2])
        row = self.db.execute("SELECT setype FROM crmentity WHERE crmid = ?", (crmid,)).fetchone()
        if row is None:
            raise ValueError(f"no record {ws_id}")
        return self.modules[row[0]], crmid

    def _entity_module(self, name: str | None) -> Module:
        if not name or name not in self.modules:
            raise WsError("ACCESS_DENIED", DENIED)
        return self.modules[name]

    # -- HTTP -------------------------------------------------------------------------------

    def operation(self, request: Request) -> str:
        return (request.form.get("operation") or request.query.get("operation") or "").lower() or "none"

    def fault_response(self) -> Response:
        return Response.empty(500)

    def expire_sessions(self) -> None:
        with self.lock:
            self.sessions.clear()

    def toml_section(self, name: str, url: str) -> str:
        env = f"{name.upper()}_ACCESS_KEY"
        user = self.users[ADMIN_ID]
        return (f"[systems.{name}]\nkind = \"{self.dialect.kind}\"\nurl = \"{url}\"\n"
                f"username = \"{user.user_name}\"\naccess_key = \"${{{env}}}\"   "
                f"# export {env}={user.access_key}\n")

    def _json(self, value: Any) -> Response:
        """PHP's json_encode: raw UTF-8 (8.4) or \\uXXXX and \\/ (PHP defaults, SalesPlatform)."""
        if self.dialect.escape:
            return Response.json(value, ensure_ascii=True, escape_slashes=True)
        return Response(200, orjson.dumps(value), "application/json")

    def _error(self, code: str | int, message: str) -> Response:
        code_key, message_key = self.dialect.error_keys
        error = ({message_key: message, code_key: code} if code_key == "code"
                 else {code_key: code, message_key: message})
        return self._json({"success": False, "error": error})

    def handle(self, request: Request) -> Response:
        if not request.path.endswith("/webservice.php"):
            return Response.html("<h1>Not Found</h1>", 404)
        with self.lock:
            try:
                result = self._dispatch(request)
            except Fatal:
                return Response.empty(self.fatal_status)
            except WsError as exc:
                return self._error(exc.code, exc.message)
            if isinstance(result, Response):
                return result
            return self._json({"success": True, "result": result})

    def _dispatch(self, request: Request) -> Any:
        name = self.operation(request)
        if name not in OPERATIONS:
            raise Fatal()  # UNKNOWN_OPERATION is thrown outside webservice.php's try block
        fmt = request.form.get("format") or request.query.get("format")
        if fmt not in (None, "", "0", "json"):
            return Response(500, b"", "application/json")
        op_type, prelogin = OPERATIONS[name]
        session_name = request.form.get("sessionName") or request.query.get("sessionName")
        user = None
        if session_name not in (None, "", "0", "null"):
            user = self._session_user(session_name)
        elif not prelogin:
            raise WsError("AUTHENTICATION_REQUIRED", "Authencation required")
        source = request.query if op_type == "GET" else request.form

        def param(key: str) -> str | None:
            value = source.get(key)
            return None if value in (None, "", "0") else value

        return getattr(self, f"_op_{name}")(request, param, user, session_name)

    def _session_user(self, session_name: str) -> User:
        session = self.sessions.get(session_name)
        now = self.now()
        if session is None or now - session["seen"] > self.session_idle:
            self.sessions.pop(session_name, None)
            raise WsError("INVALID_SESSIONID", "Session Identifier provided is Invalid")
        session["seen"] = now
        return self.users[session["user"]]

    # -- auth -------------------------------------------------------------------------------

    def _op_getchallenge(self, request: Request, param: Callable, user: User | None, _sn: Any) -> Any:
        username = param("username")
        if not username:
            raise WsError("ACCESS_DENIED", "No username given")
        found = next((u for u in self.users.values() if u.user_name == username), None)
        if found is None:
            raise WsError("ACCESS_DENIED", "username does not exists")
        now = int(self.now())
        token = self._uniqid()
        self.tokens[found.id] = (token, now + TOKEN_LIFETIME)
        return {"token": token, "serverTime": now, "expireTime": now + TOKEN_LIFETIME}

    def _op_login(self, request: Request, param: Callable, user: User | None, _sn: Any) -> Any:
        try:
            return self._login(param)
        except WsError as exc:
            if self.echo_login_request:  # some installs' error pages repeat the request, hash included
                raise WsError(exc.code, f"{exc.message}; request: {urlencode(request.form)}") from None
            raise

    def _login(self, param: Callable) -> Any:
        username, key = param("username"), param("accessKey")
        found = next((u for u in self.users.values() if u.user_name == username), None)
        token = self.tokens.get(found.id) if found else None
        if found is None or token is None or token[1] < self.now():
            raise WsError("INVALID_AUTH_TOKEN", "Specified token is invalid or expired")
        if not found.access_key:
            raise WsError("ACCESSKEY_UNDEFINED", "Access key for the user is undefined")
        if key != hashlib.md5((token[0] + found.access_key).encode()).hexdigest():
            raise WsError("INVALID_USER_CREDENTIALS", "Invalid username or password")
        session_name = f"{self._random.randrange(1 << 31):x}{self._uniqid()}"
        self.sessions[session_name] = {"user": found.id, "seen": self.now()}
        result: dict[str, Any] = {}
        if self.dialect.login_profile:
            result.update(username=found.user_name, first_name=found.first_name, last_name=found.last_name,
                          email=found.email, time_zone=self.timezone_name, hour_format="12",
                          date_format="yyyy-mm-dd", is_admin="on" if found.is_admin else "off",
                          call_duration="5", other_event_duration="5")
        result.update(sessionName=session_name, userId=f"{self.prefixes['Users']}x{found.id}",
                      version=API_VERSION, vtigerVersion=self.dialect.version)
        return result

    def _op_logout(self, request: Request, param: Callable, user: User | None, session_name: str) -> Any:
        if request.method != "POST":
            raise WsError("OPERATION_NOT_SUPPORTED", DENIED)
        self.sessions.pop(session_name, None)
        return {"message": "successfull"}

    def _op_extendsession(self, request: Request, param: Callable, user: User | None, _sn: Any) -> Any:
        if request.method != "POST" or "operation" not in request.form:
            raise WsError("AUTHENTICATION_REQUIRED", "Authencation required")
        raise WsError("AUTHENTICATION_FAILURE", "Authencation Failed")

    # -- metadata ---------------------------------------------------------------------------

    def _op_listtypes(self, request: Request, param: Callable, user: User | None, _sn: Any) -> Any:
        wanted = param("fieldTypeList")
        if wanted is None:
            return self.listtypes
        try:
            kinds = json.loads(wanted)
        except ValueError:
            kinds = None
        if not isinstance(kinds, list):
            return self.listtypes
        names = [m.name for m in self.modules.values() if set(m.types.values()) & set(map(str, kinds))]
        names.sort(key=self.listtypes["types"].index)
        return {"types": names, "information": {n: self.listtypes["information"][n] for n in names} or []}

    def _op_describe(self, request: Request, param: Callable, user: User | None, _sn: Any) -> Any:
        name = param("elementType")
        if not name or name not in self.modules:
            raise WsError("ACCESS_DENIED", f"{DENIED} for name : {name or ''}")
        return self.modules[name].describe

    # -- records ----------------------------------------------------------------------------

    def _op_retrieve(self, request: Request, param: Callable, user: User, _sn: Any) -> Any:
        mod, crmid = self._resolve(param("id"))
        return self._record(mod, crmid)

    def _element(self, raw: str | None) -> Any:
        """The decoded ``element`` parameter, with V84's PHP 8 failure modes."""
        if raw is None:
            if self.dialect.strict_element:
                raise Fatal()
            return None
        try:
            return json.loads(raw)
        except ValueError:
            if self.dialect.strict_element:
                raise WsError("INTERNAL_SERVER_ERROR", "Unknown Error while processing request") from None
            return None

    def _op_create(self, request: Request, param: Callable, user: User, _sn: Any) -> Any:
        mod = self._entity_module(param("elementType"))
        element = self._element(param("element"))
        element = element if isinstance(element, dict) else {}
        self._check_references(mod, element)
        self._check_mandatory(mod, element, present_only=False)
        crmid = self._save(mod, element, user.id)
        record = self._record(mod, crmid)
        owner = str(record.get(mod.owner_field, ""))
        if self.dialect.ghost_create and "x" not in owner and record.get("emailoptout") == "0":
            return Response(200, GHOST_REPLY.encode(), "text/html; charset=UTF-8")
        return record

    def _element_target(self, element: Any) -> tuple[Module, int]:
        ws_id = element.get("id") if isinstance(element, dict) else None
        if not ws_id:
            if self.dialect.missing_id_invalid:
                raise WsError("INVALID_ID_ATTRIBUTE", BAD_ID)
            raise WsError("ACCESS_DENIED", DENIED_FOR_ID)
        return self._resolve(ws_id)

    def _op_update(self, request: Request, param: Callable, user: User, _sn: Any) -> Any:
        return self._overlay(param("element"), user, revise=False)

    def _op_revise(self, request: Request, param: Callable, user: User, _sn: Any) -> Any:
        return self._overlay(param("element"), user, revise=True)

    def _overlay(self, raw: str | None, user: User, *, revise: bool) -> dict[str, Any]:
        """update (every mandatory field, "" keeps a reference) or revise (only what is sent, "" clears)."""
        element = self._element(raw)
        mod, crmid = self._element_target(element)
        self._check_references(mod, element)
        self._check_mandatory(mod, element, present_only=revise)
        self._save(mod, element, user.id, crmid=crmid, keep_empty_refs=not revise, decode=revise)
        return self._record(mod, crmid)

    def _op_delete(self, request: Request, param: Callable, user: User, _sn: Any) -> Any:
        mod, crmid = self._resolve(param("id"))
        self._trash(mod, crmid, user.id, deleted=1)
        return {"status": "successful"}

    def _trash(self, mod: Module, crmid: int, user_id: int, *, deleted: int) -> None:
        self._update(mod, crmid, {"modifiedtime": self.local(self.now()), "modifiedby": str(user_id)},
                     deleted=deleted)

    # -- query (§7) -------------------------------------------------------------------------

    def _op_query(self, request: Request, param: Callable, user: User, _sn: Any) -> Any:
        text = param("query")
        if not text:
            raise WsError("ACCESS_DENIED", f"{DENIED} for query")
        found = re.search(r"from\s+([^\s;]+)", text, re.IGNORECASE)
        name = found.group(1) if found else ""
        if name not in self.modules:
            raise WsError("ACCESS_DENIED", f"{DENIED} for name : {name}")
        mod = self.modules[name]
        try:
            stmt = vtql.parse(text)
        except vtql.VtqlLexError:
            raise WsError("INTERNAL_SERVER_ERROR", "Unknown Error while processing request") from None
        except vtql.VtqlSyntaxError as exc:
            raise WsError("QUERY_SYNTAX_ERROR", str(exc)) from None
        return self._run_query(mod, stmt, user)

    def _run_query(self, mod: Module, stmt: vtql.Select, user: User) -> list[dict[str, Any]]:
        for col in stmt.columns:
            if col != "id" and col not in mod.types:
                raise WsError("ACCESS_DENIED", f"Permission to access '.{col}.' attribute denied.")
        for _, cond in stmt.where:
            if cond.column != "id" and cond.column not in mod.types:
                raise WsError("ACCESS_DENIED", f"Permission to access {cond.column} attribute denied.")
        where_sql, params = self._where_sql(mod, stmt)
        base = f"FROM {mod.table} WHERE deleted = 0{' AND converted = 0' if mod.name == 'Leads' else ''}"
        if where_sql:
            base += f" AND ({where_sql})"
        by_id = bool(stmt.where) and all(cond.column == "id" for _, cond in stmt.where)
        hide = None if by_id else self.listing_filter(mod.name)
        if hide is not None:
            prefix = f"{mod.prefix}x"
            self.db.create_function("hidden_row", 1, lambda crmid: hide(prefix + str(crmid)), deterministic=True)
            base += " AND NOT hidden_row(crmid)"
        if stmt.count:
            if not self.dialect.count_rows:
                return []
            (n,) = self.db.execute(f"SELECT count(*) {base}", params).fetchone()
            return [{"count": str(n)}]
        fields = mod.fields if stmt.star else [c for c in dict.fromkeys(stmt.columns) if c != "id"]
        if self.tags_fatal and "tags" in fields:
            raise Fatal()
        order, bound_sql, bound_params = self._order_sql(mod, stmt)
        offset, count = self._limit(stmt)
        sql = (f"SELECT crmid{''.join(', ' + _q(f) for f in fields)} {base}{bound_sql} "
               f"ORDER BY {order} LIMIT ? OFFSET ?")
        try:
            cur = self.db.execute(sql, [*params, *bound_params, count, offset])
        except sqlite3.Error:
            raise WsError("DATABASE_QUERY_ERROR", DB_ERROR) from None
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=False)) for r in cur.fetchall()]
        out = self._present(mod, rows, fields, as_row=True)
        if not stmt.star:  # explicit lists: the requested order with id where vtiger puts it
            wanted = list(dict.fromkeys(stmt.columns))
            if "id" not in wanted:
                wanted.append("id")
            out = [{c: r[c] for c in wanted} for r in out]
        return out

    def _limit(self, stmt: vtql.Select) -> tuple[int, int]:
        if stmt.limit is None:
            return 0, QUERY_CAP
        offset, count = stmt.limit
        try:
            start = int(offset) if offset is not None else 0
            size = int(count)
        except ValueError:
            raise WsError("DATABASE_QUERY_ERROR", DB_ERROR) from None
        if start < 0 or size < 0:
            raise WsError("DATABASE_QUERY_ERROR", DB_ERROR)
        return start, min(size, QUERY_CAP)

    def _column(self, mod: Module, name: str) -> str:
        return "crmid" if name == "id" else _q(name)

    def _value(self, mod: Module, column: str, token: str) -> Any:
        """A VTQL literal as vtiger rewrites it and MySQL then reads it (§7.2)."""
        try:
            raw = vtql.mysql_string(token)
        except ValueError:
            raise WsError("DATABASE_QUERY_ERROR", DB_ERROR) from None
        t = "id" if column == "id" else mod.types[column]
        if t in ("id", "owner"):
            if "x" not in raw:
                raise WsError("DATABASE_QUERY_ERROR", DB_ERROR)
            part = raw.rpartition("x")[2]
            return int(part) if t == "id" and part.isdigit() else part
        if t == "reference":
            if "x" not in raw:
                raise WsError("INVALID_ID_ATTRIBUTE", BAD_ID)
            return raw.rpartition("x")[2]
        if t in ("datetime", "date"):
            if not re.match(r"\d{4}-\d{2}-\d{2}", raw):
                return "0000-00-00 00:00:00"  # MySQL reads an invalid date as the zero date
            if t == "datetime" and len(raw) == 10:
                return raw + " 00:00:00"
            return raw
        if t in NUMBER_TYPES:
            try:
                return float(raw)
            except ValueError:
                return 0.0
        return raw

    def _condition_sql(self, mod: Module, cond: vtql.Condition) -> tuple[str, list[Any]]:
        col = self._column(mod, cond.column)
        t = "id" if cond.column == "id" else mod.types[cond.column]
        values = [self._value(mod, cond.column, v) for v in cond.values]
        if t in NUMBER_TYPES:
            col = f"CAST({col} AS REAL)"
        collate = " COLLATE NOCASE" if t not in {"id", "datetime", "date"} | NUMBER_TYPES else ""
        if cond.op == "IN":
            return f"{col}{collate} IN ({', '.join('?' * len(values))})", values
        if cond.op == "LIKE":
            return f"{col} LIKE ?", values
        op = "!=" if cond.op == "!=" else cond.op
        return f"{col}{collate} {op} ?", values

    def _where_sql(self, mod: Module, stmt: vtql.Select) -> tuple[str, list[Any]]:
        parts: list[str] = []
        params: list[Any] = []
        for joiner, cond in stmt.where:
            sql, values = self._condition_sql(mod, cond)
            parts.append(f"{joiner} {sql}" if joiner else sql)
            params.extend(values)
        return " ".join(parts), params

    def _order_sql(self, mod: Module, stmt: vtql.Select) -> tuple[str, str, list[Any]]:
        """ORDER BY, plus a redundant range on its first column so keyset pages use the index."""
        tie = "(crmid * 2654435761) % 4294967291" if self.shuffle else "crmid"
        if not stmt.order_by:
            return tie, "", []
        terms = []
        for i, name in enumerate(stmt.order_by):
            if name != "id" and name not in mod.types:
                raise WsError("DATABASE_QUERY_ERROR", DB_ERROR)
            t = "id" if name == "id" else mod.types[name]
            col = self._column(mod, name)
            if t in NUMBER_TYPES:
                col = f"CAST({col} AS REAL)"
            elif t not in ("id", "datetime", "date"):
                col += " COLLATE NOCASE"
            last = i == len(stmt.order_by) - 1
            terms.append(f"{col} {'DESC' if last and stmt.descending else 'ASC'}")
        bound_sql, bound_params = self._implied_bound(mod, stmt)
        return ", ".join([*terms, tie]), bound_sql, bound_params

    def _implied_bound(self, mod: Module, stmt: vtql.Select) -> tuple[str, list[Any]]:
        """``a > T OR a = T AND …`` implies ``a >= T``: say so, so SQLite can seek instead of scan."""
        first = stmt.order_by[0]
        t = "id" if first == "id" else mod.types.get(first)
        if t not in ("id", "datetime", "date") or not stmt.where:
            return "", []
        terms: list[list[vtql.Condition]] = [[]]
        for joiner, cond in stmt.where:
            if joiner == "OR":
                terms.append([])
            terms[-1].append(cond)
        lower = ">" if not stmt.descending else "<"
        bounds = []
        for term in terms:
            found = [self._value(mod, c.column, c.values[0]) for c in term
                     if c.column == first and c.op in (lower, lower + "=", "=")]
            if not found:
                return "", []
            bounds.append(max(found) if lower == ">" else min(found))
        bound = min(bounds) if lower == ">" else max(bounds)
        return f" AND {self._column(mod, first)} {lower}= ?", [bound]

    # -- sync (§8) --------------------------------------------------------------------------

    def _op_sync(self, request: Request, param: Callable, user: User, _sn: Any) -> Any:
        if self.sync_broken:
            raise Fatal()  # vtws_sync(): Argument #3 ($syncType) not passed
        raw = param("modifiedTime")
        element_type = param("elementType")
        if self.php == "8":
            if raw is None or not re.fullmatch(r"\s*[+-]?\d+\s*", raw) or not element_type:
                raise Fatal()
            mtime = int(raw)
        else:
            leading = re.match(r"\s*[+-]?\d+", raw or "")
            if not leading or int(leading.group()) == 0:
                return {"updated": [], "deleted": [], "more": False, "lastModifiedTime": 0}
            mtime = int(leading.group())
        if element_type == "Users":
            return {"updated": [], "deleted": [], "lastModifiedTime": request.query.get("modifiedTime"),
                    "more": False}
        if element_type:
            info = self.listtypes["information"].get(element_type)
            if not info or not info["isEntity"]:
                raise WsError("ACCESS_DENIED", DENIED)
            modules = [self.modules[element_type]] if element_type in self.modules else []
        else:
            modules = sorted(self.modules.values(), key=lambda m: self.listtypes["types"].index(m.name))
        owners = self._sync_owners(param("syncType"), user)
        try:
            t0 = self.local(mtime)
        except (OverflowError, OSError, ValueError):
            raise Fatal() from None
        return self._sync(modules, owners, t0, mtime)

    def _sync_owners(self, sync_type: str | None, user: User) -> list[str] | None:
        if sync_type == "application":
            if not user.is_admin:
                raise WsError("ACCESS_DENIED", "Only admin users can perform application sync")
            return None
        if sync_type == "userandgroup":
            return [str(user.id), *map(str, user.groups)]
        return [str(user.id)]

    def _sync(self, modules: list[Module], owners: list[str] | None, t0: str, mtime: int) -> dict[str, Any]:
        owner_sql = f' AND "assigned_user_id" IN ({", ".join("?" * len(owners))})' if owners else ""
        owner_params = owners or []
        window: list[str] = []
        for mod in modules:  # 1. the first 100 change events, trashed rows included
            cur = self.db.execute(f'SELECT "modifiedtime" FROM {mod.table} WHERE "modifiedtime" > ?{owner_sql} '
                                  f'ORDER BY "modifiedtime" LIMIT {SYNC_WINDOW}', [t0, *owner_params])
            window.extend(r[0] for r in cur)
        window.sort()
        tmax = window[:SYNC_WINDOW][-1] if window else t0
        updated: list[dict[str, Any]] = []
        deleted: list[str] = []
        more = False
        for mod in modules:
            if window:  # 2. every row of the window, whole seconds, no ORDER BY in vtiger
                cur = self.db.execute(f'SELECT * FROM {mod.table} WHERE "modifiedtime" > ? AND "modifiedtime" <= ?'
                                      f'{owner_sql} ORDER BY crmid', [t0, tmax, *owner_params])
                names = [d[0] for d in cur.description]
                rows = [dict(zip(names, r, strict=False)) for r in cur.fetchall()]
                if self.shuffle:
                    self._random.shuffle(rows)
                live = [r for r in rows if not r["deleted"] and not r["converted"]]
                deleted.extend(f"{mod.prefix}x{r['crmid']}" for r in rows if r["deleted"] or r["converted"])
                updated.extend(self._present(mod, live, mod.fields, as_row=True))
            more = more or self.db.execute(f'SELECT 1 FROM {mod.table} WHERE "modifiedtime" > ?{owner_sql} LIMIT 1',
                                           [tmax, *owner_params]).fetchone() is not None
        return {"updated": updated, "deleted": deleted, "more": more,
                "lastModifiedTime": self.epoch(tmax) if window else mtime}

    # -- seeding ----------------------------------------------------------------------------

    def seed(self, contacts: int, accounts: int, seed: int) -> None:
        """Deterministic Russian sample data, a few records per second going back in time.

        Rows are built straight in column order and inserted in chunks: 200,000 contacts seed in
        seconds without holding them all in Python."""
        from .vtiger_seed import sample_records

        templates = {}
        for mod in self.modules.values():
            base = {**self._defaults(mod), "modifiedby": str(ADMIN_ID), "source": "CRM"}
            if "created_user_id" in mod.types:
                base["created_user_id"] = str(ADMIN_ID)
            names = ["crmid", "deleted", "label", "uniq", *mod.fields]
            templates[mod.name] = (
                [None, 0, None, None] + [base.get(f) for f in mod.fields],
                {f: i + 4 for i, f in enumerate(mod.fields)},
                f"INSERT INTO {mod.table} ({', '.join(map(_q, names))}) VALUES ({', '.join('?' * len(names))})")
        pending: dict[str, list[list[Any]]] = {name: [] for name in self.modules}
        entities: list[tuple[int, str]] = []

        def flush() -> None:
            for name, rows in pending.items():
                self.db.executemany(templates[name][2], rows)
                rows.clear()
            self.db.executemany("INSERT INTO crmentity (crmid, setype, deleted) VALUES (?, ?, 0)", entities)
            entities.clear()

        self.db.execute("BEGIN")
        end = int(self.now()) - 3600
        for crmid, module, values in sample_records(contacts, accounts, seed, end, self.local,
                                                    russian=self.dialect.russian):
            mod = self.modules[module]
            template, index, _ = templates[module]
            row = template.copy()
            for name, value in values.items():
                row[index[name]] = value
            auto = self._auto_number(mod)
            if auto:
                row[index[auto[0]]] = auto[1]
            row[0] = crmid
            row[2] = self._label(mod, values)
            row[3] = self._uniq_key(mod, values)
            pending[module].append(row)
            entities.append((crmid, module))
            if len(entities) >= 5000:
                flush()
        flush()
        self.db.execute("COMMIT")
        self._create_indexes()

    # -- Python accessors for tests ---------------------------------------------------------

    def live_records(self, module: str) -> dict[str, dict[str, Any]]:
        """What a correct client ends up with: every live record as retrieve returns it, minus label."""
        with self.lock:
            mod = self.modules[module]
            cur = self.db.execute(f"SELECT * FROM {mod.table} WHERE deleted = 0 AND converted = 0 ORDER BY crmid")
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, r, strict=False)) for r in cur.fetchall()]
            return {r["id"]: r for r in self._present(mod, rows, mod.fields, as_row=False)}

    def deleted_ids(self, module: str) -> set[str]:
        """Ids a change feed reports as deleted: trashed records (and converted leads)."""
        with self.lock:
            mod = self.modules[module]
            cur = self.db.execute(f"SELECT crmid FROM {mod.table} WHERE deleted = 1 OR converted = 1")
            return {f"{mod.prefix}x{r[0]}" for r in cur}

    # -- test hooks (also POST /__emulator__/<action>) ---------------------------------------

    def _hook_time(self, value: Any) -> str:
        if value is None:
            return self.local(self.now())
        if isinstance(value, (int, float)):
            return self.local(value)
        return datetime.strptime(str(value), TIME_FORMAT).strftime(TIME_FORMAT)

    def control_edit(self, id: str, values: dict[str, Any], by: str | int = ADMIN_ID) -> dict[str, Any]:
        """A UI user edits a record: values saved as given, modifiedtime and modifiedby bumped."""
        with self.lock:
            mod, crmid = self._crmid(id)
            user_id = int(str(by).rpartition("x")[2])
            stored = {k: self._stored(mod, k, v) for k, v in values.items() if k in mod.types}
            stored.update(modifiedtime=self.local(self.now()), modifiedby=str(user_id))
            merged = {**self._row(mod, crmid), **stored}
            self._update(mod, crmid, stored, label=self._label(mod, merged))
            return self._record(mod, crmid)

    def control_delete(self, id: str) -> str:
        """Move a record to the recycle bin (deleted=1, modifiedtime bumped)."""
        with self.lock:
            mod, crmid = self._crmid(id)
            self._trash(mod, crmid, ADMIN_ID, deleted=1)
            return f"{mod.prefix}x{crmid}"

    def control_restore(self, id: str) -> str:
        """Restore from the recycle bin (deleted=0, modifiedtime bumped)."""
        with self.lock:
            mod, crmid = self._crmid(id)
            self._trash(mod, crmid, ADMIN_ID, deleted=0)
            return f"{mod.prefix}x{crmid}"

    def control_purge(self, id: str) -> str:
        """Empty the recycle bin for one record: the row vanishes, no feed ever reports it."""
        with self.lock:
            mod, crmid = self._crmid(id)
            self.db.execute(f"DELETE FROM {mod.table} WHERE crmid = ?", (crmid,))
            self.db.execute("DELETE FROM crmentity WHERE crmid = ?", (crmid,))
            return f"{mod.prefix}x{crmid}"

    def control_reassign(self, id: str, owner: str | int) -> dict[str, Any]:
        """Give a record to another user (``19x5``) or group (``20x3``); the save bumps modifiedtime."""
        return self.control_edit(id, {"assigned_user_id": str(owner)})

    def control_convert_lead(self, id: str) -> dict[str, str]:
        """Convert a lead as the UI does: a Contact (and an Account for its company), lead converted=1."""
        with self.lock:
            mod, crmid = self._crmid(id)
            if mod.name != "Leads":
                raise ValueError(f"{id} is not a lead")
            lead = self._record(mod, crmid)
            owner = lead["assigned_user_id"]
            created = {}
            if lead.get("company"):
                existing = self.db.execute("SELECT crmid FROM m_Accounts WHERE uniq = ? AND deleted = 0",
                                           (self._uniq_key(self.modules["Accounts"],
                                                           {"accountname": lead["company"]}),)).fetchone()
                account = existing[0] if existing else self._save(
                    self.modules["Accounts"], {"accountname": lead["company"], "assigned_user_id": owner},
                    ADMIN_ID)
                created["Accounts"] = f"{self.modules['Accounts'].prefix}x{account}"
            contact = {"firstname": lead.get("firstname"), "lastname": lead["lastname"], "email": lead.get("email"),
                       "phone": lead.get("phone"), "mobile": lead.get("mobile"), "assigned_user_id": owner,
                       "isconvertedfromlead": "1", "account_id": created.get("Accounts")}
            contact_id = self._save(self.modules["Contacts"], contact, ADMIN_ID)
            created["Contacts"] = f"{self.modules['Contacts'].prefix}x{contact_id}"
            self._update(mod, crmid, {"modifiedtime": self.local(self.now()), "modifiedby": str(ADMIN_ID)},
                         converted=1)
            return created

    def control_write(self, module: str, values: dict[str, Any], modifiedtime: Any = None) -> str:
        """Create (or, with ``id`` in values, overwrite) a record with an explicit modifiedtime.

        ``modifiedtime`` is an epoch or a server-local ``Y-m-d H:i:s``; default now. Stages
        same-second races that the real clock cannot produce on demand."""
        with self.lock:
            mod = self.modules[module]
            stamp = self._hook_time(modifiedtime)
            owner = values.get("assigned_user_id", f"{self.prefixes['Users']}x{ADMIN_ID}")
            element = {**values, "assigned_user_id": owner}
            if "id" in values:
                _, crmid = self._crmid(values["id"])
                self._save(mod, element, ADMIN_ID, crmid=crmid, modifiedtime=stamp)
            else:
                crmid = self._save(mod, element, ADMIN_ID, modifiedtime=stamp, createdtime=stamp)
            return f"{mod.prefix}x{crmid}"

    def control_clock(self, now: Any = None, advance: float | None = None, real: bool = False) -> dict[str, Any]:
        """Freeze the server clock at ``now`` (epoch or local string), move it by ``advance`` seconds,
        or go back to real time (``real=True``). Returns the current server time."""
        with self.lock:
            if real:
                self._frozen, self._offset = None, 0.0
            if now is not None:
                self._frozen = float(now) if isinstance(now, (int, float)) else float(self.epoch(str(now)))
            if advance:
                if self._frozen is not None:
                    self._frozen += advance
                else:
                    self._offset += advance
            current = self.now()
            return {"epoch": int(current), "local": self.local(current), "frozen": self._frozen is not None}

    def control_sync_type(self, registered: bool = True) -> bool:
        """Register (or remove, as on a stock PHP 8 install) the ``syncType`` parameter row of ``sync``."""
        with self.lock:
            self.sync_broken = not registered
            return registered

    def control_expire_sessions(self) -> int:
        """Forget every session (the next call answers INVALID_SESSIONID)."""
        with self.lock:
            count = len(self.sessions)
            self.sessions.clear()
            return count


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def create_app(records: int = 100, *, dialect: str = "v84", username: str = "admin",
               access_key: str = "emulator", sync_broken: bool | None = None, php: str | None = None,
               timezone: str | None = None, seed: int = 1, session_idle: float = 1440,
               tags_fatal: bool | None = None, shuffle: bool = False, accounts: int | None = None,
               fatal_status: int = 500, id_prefixes: dict[str, int] | None = None,
               echo_login_request: bool = False, **other_switches: Any) -> VtigerApp:
    """A vtiger webservice with ``records`` Contacts and about records/10 (≥ 3) Accounts.

    ``sync_broken=True`` reproduces a stock install (every ``sync`` is HTTP 500, empty body); the
    default is an install whose admin registered ``syncType`` (like the recorded ones).
    ``php`` is ``"legacy"``, ``"7"`` or ``"8"`` (default per dialect); ``tags_fatal`` switches the
    SalesPlatform ``SELECT *`` fatal; ``shuffle`` makes unordered results and ties unpredictable;
    ``echo_login_request`` makes a failed login repeat the request (the md5 access hash included)
    in its error message, as some installs do.
    """
    if other_switches:
        raise TypeError(f"vtiger emulator: unknown option(s) {', '.join(sorted(other_switches))}")
    if dialect not in DIALECTS:
        raise ValueError(f"vtiger emulator: unknown dialect {dialect!r}; known: {', '.join(DIALECTS)}")
    profile = DIALECTS[dialect]
    php = str(php or profile.php)
    if php not in ("legacy", "7", "8"):
        raise ValueError(f"vtiger emulator: php must be legacy, 7 or 8, not {php!r}")
    prefixes = dict(STOCK_PREFIXES)
    for name in layouts.LISTTYPES_SP72["types"] if profile.russian else layouts.LISTTYPES_V84["types"]:
        prefixes.setdefault(name, max(prefixes.values()) + 1)
    prefixes.update(id_prefixes or {})
    app = VtigerApp(dialect=profile, username=username, access_key=access_key,
                    sync_broken=_flag(sync_broken), php=php, timezone_name=timezone or profile.timezone,
                    session_idle=float(session_idle),
                    tags_fatal=profile.tags_fatal if tags_fatal is None else _flag(tags_fatal),
                    shuffle=_flag(shuffle), fatal_status=int(fatal_status), id_prefixes=prefixes,
                    echo_login_request=_flag(echo_login_request))
    app.seed(int(records), max(3, int(records) // 10) if accounts is None else int(accounts), int(seed))
    return app
