"""The state of the vtiger emulator and what every operation shares: storage, rendering, ids, hooks."""
from __future__ import annotations

import copy
import random
import re
import sqlite3
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ...jsonutil import dumpb
from ..base import Clock, EmulatorApp, Request, Response
from . import layouts
from .model import (
    ADMIN_ID,
    AUTO_NUMBER,
    BAD_ID,
    DATE,
    DENIED,
    DENIED_FOR_ID,
    KINDS,
    MAX_LENGTH,
    NUMBER_TYPES,
    OWNER,
    PLAIN,
    REFERENCE,
    TIME_FORMAT,
    USERS,
    Dialect,
    Module,
    User,
    WsError,
    _html_decode,
    _module,
    _php_escape,
    _q,
)
from .sample import sample_records


class VtigerState(EmulatorApp):
    """One install's users, sessions, clock and records (SQLite), how values go in and come out,
    and the test hooks; the operations are the mixins of :class:`.app.VtigerApp`."""
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
        self.clock = Clock()
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

    def now(self) -> float:
        return self.clock.now()

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
        return Response(200, dumpb(value), "application/json")

    def _error(self, code: str | int, message: str) -> Response:
        code_key, message_key = self.dialect.error_keys
        error = ({message_key: message, code_key: code} if code_key == "code"
                 else {code_key: code, message_key: message})
        return self._json({"success": False, "error": error})

    def _session_user(self, session_name: str) -> User:
        session = self.sessions.get(session_name)
        now = self.now()
        if session is None or now - session["seen"] > self.session_idle:
            self.sessions.pop(session_name, None)
            raise WsError("INVALID_SESSIONID", "Session Identifier provided is Invalid")
        session["seen"] = now
        return self.users[session["user"]]

    def _trash(self, mod: Module, crmid: int, user_id: int, *, deleted: int) -> None:
        self._update(mod, crmid, {"modifiedtime": self.local(self.now()), "modifiedby": str(user_id)},
                     deleted=deleted)

    def seed(self, contacts: int, accounts: int, seed: int) -> None:
        """Deterministic Russian sample data, a few records per second going back in time.

        Rows are built straight in column order and inserted in chunks: 200,000 contacts seed in
        seconds without holding them all in Python."""
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
            at = None if now is None else float(now) if isinstance(now, (int, float)) else float(self.epoch(str(now)))
            current = self.clock.set(at=at, advance=advance or 0.0, real=real)
            return {"epoch": int(current), "local": self.local(current), "frozen": self.clock.frozen is not None}

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
