"""Replay the exchanges recorded from real installs (``shared/fixtures/real``) against our emulators.

Each fixture file runs top to bottom against a fresh emulator served over real HTTP. Redaction
markers are filled from what the emulator itself answered (tokens, sessions, keys), ids the
recording created are mapped to the ids the emulator created for the same step, and the emulator's
clock hook is set to the recorded time of each step, so tight loops that shared a second share it
again and timestamps in later requests (sync ``modifiedTime``, filter watermarks) mean the same.

A response matches when it has the recorded status, media type and body family (JSON / text /
empty), the same JSON shape (key sets and value types, recursively; lists by their elements), the
same error codes and messages, and the same relations between steps: every id created in the file
that the recording shows at a place in the body is there in the emulator's body, and no other such
id is; and for records created in the file, a field the recording shows empty is empty, and one it
shows filled is filled. Absolute ids, counts and timestamps are not compared: the real databases
held other records.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from syncengine import emulators

REPO = Path(__file__).resolve().parents[2]


def fixtures_root() -> Path | None:
    """``$SYNCENGINE_FIXTURES``, else ``<repo>/../shared/fixtures/real``; None when absent."""
    env = os.environ.get("SYNCENGINE_FIXTURES")
    root = Path(env) if env else REPO.parent / "shared" / "fixtures" / "real"
    return root if root.is_dir() else None


@dataclass
class Profile:
    """How to start the emulator that stands for one recorded install."""

    install: str
    kind: str
    options: dict[str, Any]
    why: str


PROFILES = {
    "vtiger-8.4": Profile("vtiger-8.4", "vtiger", {"records": 0, "accounts": 0},
                          "stock vtiger 8.4.0 on PHP 8 in UTC (dialect v84: count(*) gives [], null empty "
                          "references, raw UTF-8), syncType registered"),
    "salesplatform-7.2": Profile("salesplatform-7.2", "salesplatform",
                                 {"records": 0, "accounts": 0, "tags_fatal": False},
                                 "SalesPlatform 7.2 (dialect sp72: Europe/Moscow, count(*) rows, \"\" empties, "
                                 "\\u escapes, Russian duplicate message); tags_fatal=False because the "
                                 "recorded install answered SELECT * normally, unlike stock SP"),
    "rukovoditel-3.6": Profile("rukovoditel-3.6", "rukovoditel", {"records": 0, "timezone": "UTC"},
                               "Rukovoditel 3.6.2 on PHP 8, app time zone UTC, display_errors off"),
    "salesman": Profile("salesman", "salesman", {"records": 200, "login": "admin@example.com"},
                        "SalesMan CRM on PHP 8, account zone Europe/Moscow, person replies as on PHP 7"),
}


@dataclass
class Outcome:
    label: str
    ok: bool
    reasons: list[str] = field(default_factory=list)


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# -- comparison -------------------------------------------------------------------------------

def _type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def compare_shape(recorded: Any, actual: Any, path: str = "$") -> list[str]:
    """Key sets and value types, recursively; a list by the union of its elements' shapes.

    Elements of a list hold different data on the two sides, so a place in them matches when the
    emulator's elements and the recorded ones share a type there (``null`` everywhere against
    strings everywhere is still a mismatch)."""
    if isinstance(recorded, dict) and isinstance(actual, dict):
        out = []
        missing, extra = recorded.keys() - actual.keys(), actual.keys() - recorded.keys()
        if missing or extra:
            out.append(f"{path}: keys missing {sorted(missing)[:6]} extra {sorted(extra)[:6]}")
        for key in recorded.keys() & actual.keys():
            out.extend(compare_shape(recorded[key], actual[key], f"{path}.{key}"))
        return out
    if isinstance(recorded, list) and isinstance(actual, list):
        if bool(recorded) != bool(actual):
            return [f"{path}: list {'empty' if not actual else 'not empty'}, recorded "
                    f"{'empty' if not recorded else 'not empty'}"]
        return compare_shape(_merge(recorded), _merge(actual), path + "[]") if recorded else []
    if isinstance(recorded, _Types) or isinstance(actual, _Types):
        rec = recorded if isinstance(recorded, _Types) else _Types({_type(recorded)})
        act = actual if isinstance(actual, _Types) else _Types({_type(actual)})
        return [] if act & rec else [f"{path}: types {sorted(act)} where the recording has {sorted(rec)}"]
    if _type(recorded) != _type(actual):
        return [f"{path}: {_type(actual)} where the recording has {_type(recorded)}"]
    return []


class _Types(frozenset):
    """The scalar types seen at one place of a list's elements."""


def _merge(items: list[Any]) -> Any:
    """One shape for all elements of a list: dict keys united, scalar types collected."""
    dicts = [i for i in items if isinstance(i, dict)]
    if dicts and len(dicts) == len(items):
        keys: dict[str, list[Any]] = {}
        for d in dicts:
            for k, v in d.items():
                keys.setdefault(k, []).append(v)
        return {k: _merge(v) for k, v in keys.items()}
    lists = [i for i in items if isinstance(i, list)]
    if lists and len(lists) == len(items):
        flat = [x for sub in lists for x in sub]
        return [_merge(flat)] if flat else []
    return _Types(_type(i) for i in items)


def family(body: Any, kind: str | None = None) -> str:
    if kind:
        return {"json": "json", "text": "text", "empty": "empty"}[kind]
    if body == "":
        return "empty"
    return "text" if isinstance(body, str) else "json"


def actual_family(raw: bytes) -> tuple[str, Any]:
    if not raw:
        return "empty", ""
    text = raw.decode("utf-8", "replace")
    try:
        return "json", json.loads(text)
    except ValueError:
        return "text", text


ERROR_MARKERS = (("success", False), ("status", "error"), ("result", "Error"))
VERDICT_KEYS = ("success", "status", "result")


def compare_errors(recorded: Any, actual: Any) -> list[str]:
    """Error codes and messages word for word; success/error verdicts everywhere."""
    if not isinstance(recorded, dict) or not isinstance(actual, dict):
        return []
    out = []
    for key in VERDICT_KEYS:
        if key in recorded and key in actual and recorded[key] != actual[key] and (
                key != "result" or "Error" in (recorded[key], actual[key])):
            out.append(f"${key}: {actual[key]!r} where the recording has {recorded[key]!r}")
    if any(recorded.get(k) == v for k, v in ERROR_MARKERS):
        for key in ("error", "error_code", "error_message"):
            if key in recorded and recorded[key] != actual.get(key):
                out.append(f"${key}: {json.dumps(actual.get(key), ensure_ascii=False)[:160]} where the recording "
                           f"has {json.dumps(recorded[key], ensure_ascii=False)[:160]}")
    return out


def compare_text(recorded: str, actual: str) -> list[str]:
    """Short texts word for word; PHP/SQL error pages by their kind and error number."""
    if "<app_db_error>" in recorded:
        errno = re.search(r"Database Error:</strong> (\d+)", recorded)
        if "<app_db_error>" not in actual or (errno and errno.group(0) not in actual):
            return [f"text: not the recorded database error page {errno.group(1) if errno else ''}"]
        return []
    if len(recorded) < 200 and recorded.strip() != actual.strip():
        return [f"text: {actual[:80]!r} where the recording has {recorded[:80]!r}"]
    return []


# -- relations: ids created in the file ----------------------------------------------------------

def walk(value: Any, path: str = "$") -> Iterator[tuple[str, Any, Any]]:
    """(path without list indices, key, value) for every scalar, plus each dict as value."""
    if isinstance(value, dict):
        yield path, None, value
        for k, v in value.items():
            if isinstance(v, (dict, list)):
                yield from walk(v, f"{path}.{k}")
            else:
                yield f"{path}.{k}", k, v
    elif isinstance(value, list):
        for v in value:
            if isinstance(v, (dict, list)):
                yield from walk(v, path + "[]")
            else:
                yield path + "[]", None, v


def _empty(value: Any) -> bool:
    return value in (None, "", [], {}, 0, "0") or value == "01/01/1970 00:00"


# -- the replay -----------------------------------------------------------------------------------

class Replayer:
    """Common machinery; one subclass per family of installs."""

    def __init__(self, profile: Profile, exchanges: list[dict[str, Any]]):
        self.profile = profile
        self.exchanges = exchanges
        options = dict(profile.options)
        records = options.pop("records", 100)
        self.server = emulators.start(profile.kind, records, **options)
        self.conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        self.ids: dict[Any, Any] = {}      # real id -> emulator id (per replayer's key scheme)
        self.created: set[Any] = set()    # real ids created in this file

    def close(self) -> None:
        self.conn.close()
        self.server.stop()

    def run(self) -> list[Outcome]:
        try:
            self.prepare()
            return [self.step(i, ex) for i, ex in enumerate(self.exchanges)]
        finally:
            self.close()

    def prepare(self) -> None:
        """Stage what the recording shows existed before the file ran."""

    def label(self, ex: dict[str, Any]) -> str:
        return f"{ex.get('scenario', ex.get('event'))}#{ex.get('step', '')}"

    def control(self, action: str, **payload: Any) -> Any:
        self.conn.request("POST", f"/__emulator__/{action}", json.dumps(payload),
                          {"Content-Type": "application/json"})
        reply = self.conn.getresponse()
        body = json.loads(reply.read())
        if reply.status != 200:
            raise RuntimeError(f"control {action}: {body}")
        return body["result"]

    def send(self, method: str, path: str, query: dict[str, Any], body: bytes | None,
             headers: dict[str, str]) -> tuple[int, str, bytes, dict[str, str]]:
        url = path + ("?" + urlencode(query, doseq=True) if query else "")
        self.conn.request(method, url, body=body, headers=headers)
        reply = self.conn.getresponse()
        return reply.status, reply.getheader("Content-Type") or "", reply.read(), dict(reply.getheaders())

    def step(self, index: int, ex: dict[str, Any]) -> Outcome:
        self.set_clock(ex)
        req = ex["request"]
        query = self.fill(req.get("query") or {})
        headers = {k: self.fill(v) for k, v in (req.get("headers") or {}).items()}
        body: bytes | None = None
        if "json" in req:
            body = json.dumps(self.fill(req["json"]), ensure_ascii=False).encode()
        elif "text" in req:
            body = self.fill(req["text"]).encode()
        elif req.get("form"):
            body = urlencode(self.fill(req["form"]), doseq=True).encode()
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        status, ctype, raw, _ = self.send(req["method"], req["path"], query, body, headers)
        fam, parsed = actual_family(raw)
        rec = ex["response"]
        rec_fam = family(rec.get("body"), rec.get("body_kind"))
        reasons = []
        if status != rec["status"]:
            reasons.append(f"status {status} where the recording has {rec['status']}")
        if ctype.split(";")[0].strip().lower() != rec["content_type"].split(";")[0].strip().lower():
            reasons.append(f"content type {ctype!r} where the recording has {rec['content_type']!r}")
        if fam != rec_fam:
            reasons.append(f"body is {fam} where the recording has {rec_fam}")
        elif fam == "json":
            reasons += compare_errors(self.expected(rec["body"]), parsed)
            reasons += compare_shape(rec["body"], parsed)
        elif fam == "text" and status < 400:  # web-server error pages differ by server, not by CRM
            reasons += compare_text(rec["body"], parsed)
        self.learn(ex, parsed if fam == "json" else None)
        if fam == "json" and rec_fam == "json":
            reasons += self.relations(rec["body"], parsed)
        return Outcome(self.label(ex), not reasons, reasons)

    # -- hooks for subclasses ---------------------------------------------------------------

    def expected(self, body: Any) -> Any:
        """The recorded body with the ids it quotes in messages turned into the emulator's."""
        return body

    def fill(self, value: Any) -> Any:
        """Markers and ids of the recording → the emulator's."""
        if isinstance(value, dict):
            return {k: self.fill_value(k, self.fill(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        if isinstance(value, str):
            return self.fill_text(value)
        return value

    def fill_text(self, text: str) -> str:
        return text

    def fill_value(self, key: str, value: Any) -> Any:
        return value

    def set_clock(self, ex: dict[str, Any]) -> None:
        pass

    def learn(self, ex: dict[str, Any], actual: Any) -> None:
        pass

    def id_places(self, body: Any) -> set[tuple[str, Any]]:
        """(place, real or emulator id) of every record id in a body."""
        return set()

    def relations(self, recorded: Any, actual: Any) -> list[str]:
        mine = set(self.ids.values())
        back = {v: k for k, v in self.ids.items()}
        want = {(p, self.ids[i]) for p, i in self.id_places(recorded) if i in self.created}
        got = {(p, i) for p, i in self.id_places(actual) if i in mine and back[i] in self.created}
        out = []
        if want - got:
            out.append(f"created ids missing from the reply: {sorted(map(str, want - got))[:4]}")
        if got - want:
            out.append(f"created ids the recording does not show: {sorted(map(str, got - want))[:4]}")
        out += self.emptiness(recorded, actual)
        return out

    def emptiness(self, recorded: Any, actual: Any) -> list[str]:
        """Fields of records created in the file: empty where the recording is empty, filled where filled."""
        def records(body: Any, real: bool) -> dict[Any, dict[str, Any]]:
            found = {}
            for _, key, value in walk(body):
                if key is None and isinstance(value, dict):
                    rid = self.record_id(value)
                    if rid is not None:
                        rid = rid if real else {v: k for k, v in self.ids.items()}.get(rid)
                        if rid in self.created:
                            found[rid] = value
            return found
        return self.empty_mismatches(records(recorded, True), records(actual, False))

    def empty_mismatches(self, theirs: dict[Any, dict[str, Any]], ours: dict[Any, dict[str, Any]]) -> list[str]:
        """Fields empty on one side and filled on the other, per created record (at most 6)."""
        out = []
        for rid, rec in theirs.items():
            act = ours.get(rid)
            if act is None:
                continue
            for key, value in rec.items():
                if key in act and not isinstance(value, (dict, list)) and key not in self.volatile \
                        and _empty(value) != _empty(act[key]):
                    out.append(f"record {rid}: {key} is {act[key]!r} where the recording has {value!r}")
        return out[:6]

    volatile: frozenset[str] = frozenset()

    def record_id(self, record: dict[str, Any]) -> Any:
        return None


# -- vtiger and SalesPlatform ------------------------------------------------------------------

VT_ID = re.compile(r"\b(\d+)x(\d+)\b")
VT_MODULES = {10: "Leads", 11: "Accounts", 12: "Contacts"}
VT_NOT_RECORDS = {19, 20}  # Users and Groups ids are not remapped


# What the recording's admin changed on the install between two steps (note prefix -> control hook).
INSTALL_CHANGES = {
    "STOCK vtiger 8.4 on PHP 8 (syncType parameter row not registered)": ("sync_type", {"registered": False}),
    "after registering the syncType parameter row again": ("sync_type", {"registered": True}),
}


class VtigerReplayer(Replayer):
    volatile = frozenset({"modifiedtime", "createdtime", "contact_no", "account_no", "lead_no", "label"})

    def __init__(self, profile: Profile, exchanges: list[dict[str, Any]]):
        super().__init__(profile, exchanges)
        self.app = self.server.app
        self.zone = ZoneInfo(self.app.timezone_name)
        self.access_key = self.app.users[1].access_key
        self.token = ""
        self.tokens: dict[str, str] = {}
        self.sessions: dict[str, str] = {}
        self.now: float | None = None
        self.times = self.step_times()

    # crmids are the id space; prefixes are kept as sent
    def fill_text(self, text: str) -> str:
        text = re.sub(r"<ACCESS_KEY_HASH(_\d+)?>", self._hash, text)
        text = re.sub(r"<TOKEN(_\d+)?>", lambda m: self.tokens.get(m.group(0), self.token), text)
        text = re.sub(r"<ACCESS_KEY>", self.access_key, text)
        text = re.sub(r"<SESSION(_\d+)?>", lambda m: self.sessions.get(m.group(0), m.group(0)), text)

        def remap(m: re.Match[str]) -> str:
            prefix, crmid = int(m.group(1)), int(m.group(2))
            if prefix in VT_NOT_RECORDS or crmid not in self.ids:
                return m.group(0)
            return f"{prefix}x{self.ids[crmid]}"
        return VT_ID.sub(remap, text)

    def _hash(self, marker: re.Match[str]) -> str:
        """md5(token + access key); ``_n`` hashes pair with ``_n`` tokens, else the newest token."""
        token = self.tokens.get(f"<TOKEN{marker.group(1) or ''}>", self.token)
        return hashlib.md5((token + self.access_key).encode()).hexdigest()

    def record_time(self, ex: dict[str, Any]) -> float | None:
        body = ex["response"].get("body")
        result = body.get("result") if isinstance(body, dict) else None
        if isinstance(result, dict):
            if "serverTime" in result:
                return float(result["serverTime"])
            if result.get("modifiedtime"):
                return self.epoch(result["modifiedtime"])
        return None

    def epoch(self, local: str) -> float:
        return datetime.strptime(local, "%Y-%m-%d %H:%M:%S").replace(tzinfo=self.zone).timestamp()

    def step_times(self) -> list[float | None]:
        """The recorded server time of each step where the recording tells it: its own reply, or for a
        delete the ``lastModifiedTime`` of the first sync that lists the id as deleted."""
        times = [self.record_time(ex) for ex in self.exchanges]
        for i, ex in enumerate(self.exchanges):
            form = ex["request"].get("form") or {}
            if form.get("operation") != "delete":
                continue
            for later in self.exchanges[i + 1:]:
                result = (later["response"].get("body") or {}).get("result") if isinstance(
                    later["response"].get("body"), dict) else None
                if isinstance(result, dict) and form.get("id") in (result.get("deleted") or []):
                    times[i] = float(result["lastModifiedTime"])
                    break
        return times

    def set_clock(self, ex: dict[str, Any]) -> None:
        at = self.times[self.exchanges.index(ex)]
        if at is None and self.now is None:
            at = next((t for t in self.times if t is not None), time.time())
        if at is not None and at != self.now:
            self.now = at
            self.control("clock", now=at)
        change = INSTALL_CHANGES.get(ex.get("note", "").split(":")[0])
        if change:
            self.control(*change[:1], **change[1])

    def learn(self, ex: dict[str, Any], actual: Any) -> None:
        rec = ex["response"].get("body")
        if not isinstance(rec, dict) or not isinstance(actual, dict):
            return
        r_res, a_res = rec.get("result"), actual.get("result")
        if not isinstance(r_res, dict) or not isinstance(a_res, dict):
            return
        if "token" in a_res:
            self.token = a_res["token"]
            self.tokens[str(r_res.get("token"))] = self.token
        marker = r_res.get("sessionName")
        if isinstance(marker, str) and marker.startswith("<SESSION") and "sessionName" in a_res:
            self.sessions[marker] = a_res["sessionName"]
        form = ex["request"].get("form") or {}
        if form.get("operation") == "create" and "id" in r_res and "id" in a_res:
            real, ours = int(r_res["id"].split("x")[1]), int(a_res["id"].split("x")[1])
            self.ids[real] = ours
            self.created.add(real)

    def id_places(self, body: Any) -> set[tuple[str, Any]]:
        out = set()
        for path, _, value in walk(body):
            if isinstance(value, str) and VT_ID.fullmatch(value) and int(value.split("x")[0]) not in VT_NOT_RECORDS:
                out.add((path, int(value.split("x")[1])))
        return out

    def record_id(self, record: dict[str, Any]) -> Any:
        value = record.get("id")
        return int(value.split("x")[1]) if isinstance(value, str) and VT_ID.fullmatch(value) else None

    def prepare(self) -> None:
        """Write the records the recording shows but did not create, with their recorded times."""
        created = set()
        for ex in self.exchanges:
            body = ex["response"].get("body")
            form = ex["request"].get("form") or {}
            if form.get("operation") == "create" and isinstance(body, dict) and isinstance(body.get("result"), dict):
                created.add(body["result"].get("id"))
        seen: dict[str, dict[str, Any]] = {}
        for ex in self.exchanges:
            for _, key, value in walk(ex["response"].get("body")):
                if key is None and isinstance(value, dict) and isinstance(value.get("id"), str) \
                        and VT_ID.fullmatch(value["id"]) and value["id"] not in created \
                        and int(value["id"].split("x")[0]) in VT_MODULES and value.get("modifiedtime"):
                    known = seen.setdefault(value["id"], {})
                    for k, v in value.items():
                        known.setdefault(k, v)
        order = sorted(seen, key=lambda i: (int(i.split("x")[0]) != 11, int(i.split("x")[1])))
        for ws_id in order:
            values = dict(seen[ws_id])
            module = VT_MODULES[int(ws_id.split("x")[0])]
            stamp = values.pop("modifiedtime")
            values.pop("id")
            values = {k: self.fill_text(v) if isinstance(v, str) else v for k, v in values.items()
                      if k in self.app.modules[module].types}
            values.setdefault("assigned_user_id", "19x1")
            if module == "Contacts":
                values.setdefault("lastname", "Staged")
            if module == "Accounts":
                values.setdefault("accountname", f"Staged {ws_id}")
            ours = self.control("write", module=module, values=values, modifiedtime=stamp)
            self.ids[int(ws_id.split("x")[1])] = int(ours.split("x")[1])
        self._stage_deleted(created)

    def _stage_deleted(self, created: set[str]) -> None:
        """Records a sync lists as deleted that the file did not delete: trashed at the start of that page."""
        deleted_here = {(ex["request"].get("form") or {}).get("id") for ex in self.exchanges}
        staged: set[str] = set()
        for ex in self.exchanges:
            body = ex["response"].get("body")
            result = body.get("result") if isinstance(body, dict) else None
            if not isinstance(result, dict) or not isinstance(result.get("deleted"), list):
                continue
            for ws_id in result["deleted"]:
                prefix = int(ws_id.split("x")[0])
                if ws_id in created or ws_id in deleted_here or ws_id in staged or prefix not in VT_MODULES:
                    continue
                staged.add(ws_id)
                module = VT_MODULES[prefix]
                values = {"assigned_user_id": "19x1", "lastname": "Deleted", "accountname": f"Deleted {ws_id}"}
                values = {k: v for k, v in values.items() if k in self.app.modules[module].types}
                at = float((ex["request"].get("query") or {}).get("modifiedTime", 0)) + 1  # earliest in the page
                self.control("clock", now=at)
                ours = self.control("write", module=module, values=values, modifiedtime=at)
                self.control("delete", id=ours)
                self.ids[int(ws_id.split("x")[1])] = int(ours.split("x")[1])


# -- Rukovoditel -----------------------------------------------------------------------------------

RUK_ID_KEYS = re.compile(r"^(update_by_field|delete_by_field|filters)\[id\](\[\])?$|^(item_id|parent_item_id)$")


class RukovoditelReplayer(Replayer):
    volatile = frozenset({"date_added", "date_updated", "209", "210", "208"})

    def __init__(self, profile: Profile, exchanges: list[dict[str, Any]]):
        super().__init__(profile, exchanges)
        app = self.server.app
        self.secrets = {"<API_KEY>": app.api_key, "<PASSWORD>": app_password(app)}
        self.last: float | None = None

    def prepare(self) -> None:
        """Insert the Contacts rows the recording shows but did not insert, in id order, at their times."""
        created = set()
        for ex in self.exchanges:
            params = ex["request"].get("form") or ex["request"].get("json") or {}
            body = ex["response"].get("body")
            if params.get("action") == "insert" and isinstance(body, dict) and isinstance(body.get("data"), dict):
                created.update(str(body["data"].get("id", "")).split(","))
        seen: dict[int, dict[str, Any]] = {}
        for ex in self.exchanges:
            params = ex["request"].get("form") or ex["request"].get("json") or {}
            if str(params.get("entity_id")) != "25":
                continue
            for _, key, row in walk(ex["response"].get("body")):
                if key is None and isinstance(row, dict) and "parent_item_id" in row \
                        and str(row.get("id")) not in created:
                    known = seen.setdefault(int(row["id"]), {})
                    for k, v in row.items():
                        known.setdefault(k, v)
        for real in sorted(seen):
            row = seen[real]
            values = {k: row.get(f"{k}_db_value", v) for k, v in row.items() if k.isdigit() and k in RUK_STAGED}
            if re.fullmatch(r"\d\d/\d\d/\d{4}", str(row.get("218", ""))):
                values["218"] = str(int(datetime.strptime(row["218"], "%m/%d/%Y").replace(
                    tzinfo=UTC).timestamp()))
            self.control("clock", at=_ruk_time(row["date_added"]))
            ours = self.control("insert", entity=25, values=values)
            if row.get("date_updated") not in (None, "", "01/01/1970 00:00"):
                self.control("clock", at=_ruk_time(row["date_updated"]))
                self.control("edit", entity=25, id=ours, values={})
            self.ids[real] = ours

    def fill_text(self, text: str) -> str:
        for marker, value in self.secrets.items():
            text = text.replace(marker, value)
        return text

    def _map_ids(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._map_ids(v) for v in value]
        if isinstance(value, int):
            return self.ids.get(value, value)
        if isinstance(value, str):
            return re.sub(r"\d+", lambda m: str(self.ids.get(int(m.group()), m.group())), value)
        return value

    def fill_value(self, key: str, value: Any) -> Any:
        if RUK_ID_KEYS.match(key) or key == "id":
            return self._map_ids(value)
        if key in ("update_by_field", "delete_by_field", "filters") and isinstance(value, dict) and "id" in value:
            return {**value, "id": self._map_ids(value["id"])}
        return value

    def set_clock(self, ex: dict[str, Any]) -> None:
        stamp = ex["response"].get("date")
        if stamp:
            at = parsedate_to_datetime(stamp).timestamp()
            if at != self.last:
                self.last = at
                self.control("clock", at=at)

    def learn(self, ex: dict[str, Any], actual: Any) -> None:
        rec = ex["response"].get("body")
        action = (ex["request"].get("form") or ex["request"].get("json") or {}).get("action")
        if action == "insert" and isinstance(rec, dict) and isinstance(actual, dict):
            real = str((rec.get("data") or {}).get("id", "")).split(",")
            data = actual.get("data")
            ours = str(data.get("id", "")).split(",") if isinstance(data, dict) else []
            for r, o in zip(real, ours, strict=False):
                if r.isdigit() and o.isdigit():
                    self.ids[int(r)] = int(o)
                    self.created.add(int(r))

    def id_places(self, body: Any) -> set[tuple[str, Any]]:
        out = set()
        for path, key, value in walk(body):
            if key == "id" and path.endswith(".id"):
                for part in str(value).split(","):
                    if part.isdigit():
                        out.add((path, int(part)))
        return out

    def record_id(self, record: dict[str, Any]) -> Any:
        value = record.get("id")
        return int(value) if isinstance(value, str) and value.isdigit() and "parent_item_id" in record else None


RUK_STAGED = {str(f) for f in (213, 214, 215, 216, 217, 220, 221, 222, 223, 224, 225)}


def _ruk_time(text: str) -> float:
    """A Rukovoditel ``m/d/Y H:i`` display time of the recorded install (UTC) as an epoch, in the middle
    of its minute (the display drops the seconds; second-precision filters of the recording then still
    cut where they cut on the real install)."""
    return datetime.strptime(text, "%m/%d/%Y %H:%M").replace(tzinfo=UTC).timestamp() + 30


def app_password(app: Any) -> str:
    """The admin's password of a Rukovoditel emulator (a create_app option)."""
    return getattr(app, "password", None) or "emulator"


# -- SalesMan ---------------------------------------------------------------------------------------

SM_NAMESPACE = {"clid": "client", "payer": "client", "head_clid": "client", "pid": "person", "pid_list": "person",
                "did": "deal", "tid": "task"}


class SalesManReplayer(Replayer):
    volatile = frozenset({"date_create", "date_edit", "created", "edited", "datum", "datum_izm", "hid", "count"})

    def __init__(self, profile: Profile, exchanges: list[dict[str, Any]]):
        super().__init__(profile, exchanges)
        self.api_key = self.server.app.api_key
        self.path = ""
        self.zone = ZoneInfo("Europe/Moscow")

    def prepare(self) -> None:
        """Create the clients the file uses but did not add (e.g. one added by client-crud), by title."""
        added: set[int] = set()
        titles: dict[int, str] = {}
        used: set[int] = set()
        for ex in self.exchanges:
            req = ex["request"]
            params = {**(req.get("query") or {}), **(req.get("form") or {}), **(req.get("json") or {})}
            used.update(int(v) for k, v in params.items() if self._ns_of(k) == "client" and str(v).isdigit())
            body = ex["response"].get("body")
            if params.get("action") == "add" and req["path"].endswith("/client") and isinstance(body, dict) \
                    and isinstance(body.get("data"), int):
                added.add(body["data"])
            for _, key, value in walk(body):
                if key is None and isinstance(value, dict) and str(value.get("clid", "")).isdigit():
                    title = value.get("client") or value.get("title")
                    if isinstance(title, str) and title:
                        titles.setdefault(int(value["clid"]), title)
        for real in sorted(set(titles) & used - added):
            self.ids[("client", real)] = self.control("create", entity="client", values={"title": titles[real]})

    def _ns_of(self, key: str) -> str | None:
        return SM_NAMESPACE.get(re.sub(r"^filter\[(\w+)\]$", r"\1", key).split("[")[0])

    def _ns(self, key: str) -> str | None:
        base = re.sub(r"^filter\[(\w+)\]$", r"\1", key).split("[")[0]
        if base == "id":
            return self.path.rstrip("/").rsplit("/", 1)[-1]
        return SM_NAMESPACE.get(base)

    def fill_text(self, text: str) -> str:
        return text.replace("<API_KEY>", self.api_key)

    def fill_value(self, key: str, value: Any) -> Any:
        ns = self._ns(key)
        if ns is None:
            return value
        def one(v: Any) -> Any:
            if isinstance(v, list):
                return [one(x) for x in v]
            if isinstance(v, int) and not isinstance(v, bool):
                return self.ids.get((ns, v), v)
            if isinstance(v, str):
                return re.sub(r"\d+", lambda m: str(self.ids.get((ns, int(m.group())), m.group())), v)
            return v
        return one(value)

    def step(self, index: int, ex: dict[str, Any]) -> Outcome:
        self.path = ex["request"]["path"]
        return super().step(index, ex)

    def expected(self, body: Any) -> Any:
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and isinstance(error.get("text"), str):
            text = re.sub(r"\(clid = (\d+)\)",
                          lambda m: f"(clid = {self.ids.get(('client', int(m.group(1))), m.group(1))})", error["text"])
            return {**body, "error": {**body["error"], "text": text}}
        return body

    def set_clock(self, ex: dict[str, Any]) -> None:
        stamp = ex["response"].get("date")
        if not stamp:
            return
        target = parsedate_to_datetime(stamp).astimezone(self.zone).replace(tzinfo=None)
        current = datetime.strptime(self.control("clock", advance=0), "%Y-%m-%d %H:%M:%S")
        delta = (target - current).total_seconds()
        if abs(delta) >= 1:
            self.control("clock", advance=delta)

    def learn(self, ex: dict[str, Any], actual: Any) -> None:
        rec = ex["response"].get("body")
        req = ex["request"]
        params = {**(req.get("query") or {}), **(req.get("form") or {}), **(req.get("json") or {})}
        if params.get("action") != "add" or not isinstance(rec, dict) or not isinstance(actual, dict):
            return
        ns = self.path.rstrip("/").rsplit("/", 1)[-1]
        real, ours = rec.get("data"), actual.get("data")
        if isinstance(real, int) and isinstance(ours, int):
            self.ids[(ns, real)] = ours
            self.created.add((ns, real))

    def relations(self, recorded: Any, actual: Any) -> list[str]:
        back = {(ns, ours): (ns, real) for (ns, real), ours in self.ids.items()}
        want, got = set(), set()
        for p, ns, i in self._places(recorded):
            if (ns, i) in self.created:
                want.add((p, ns, self.ids[(ns, i)]))
        for p, ns, i in self._places(actual):
            if back.get((ns, i)) in self.created:
                got.add((p, ns, i))
        out = []
        if want - got:
            out.append(f"created ids missing from the reply: {sorted(map(str, want - got))[:4]}")
        if got - want:
            out.append(f"created ids the recording does not show: {sorted(map(str, got - want))[:4]}")
        out += self.emptiness(recorded, actual)
        return out

    def _places(self, body: Any) -> set[tuple[str, str, int]]:
        out = set()
        for path, key, value in walk(body):
            ns = SM_NAMESPACE.get(key or "") if key not in (None, "payer", "head_clid") else None
            if ns and isinstance(value, (int, str)) and str(value).isdigit():
                out.add((path, ns, int(value)))
        return out

    def emptiness(self, recorded: Any, actual: Any) -> list[str]:
        def records(body: Any, real: bool) -> dict[Any, dict[str, Any]]:
            back = {(ns, ours): (ns, r) for (ns, r), ours in self.ids.items()}
            found = {}
            for _, key, value in walk(body):
                if key is None and isinstance(value, dict):
                    for k in ("did", "pid", "clid", "tid"):
                        if str(value.get(k, "")).isdigit():
                            ref = (SM_NAMESPACE[k], int(value[k]))
                            ref = ref if real else back.get(ref)
                            if ref in self.created:
                                found[ref] = value
                            break
            return found
        return self.empty_mismatches(records(recorded, True), records(actual, False))


REPLAYERS = {"vtiger-8.4": VtigerReplayer, "salesplatform-7.2": VtigerReplayer,
             "rukovoditel-3.6": RukovoditelReplayer, "salesman": SalesManReplayer}


def accepted_deviations() -> set[tuple[str, str, str]]:
    """(install, file stem, step label) of every row of the table in DEVIATIONS.md."""
    text = (Path(__file__).parent / "DEVIATIONS.md").read_text(encoding="utf-8")
    return {(m[1], m[2], m[3]) for m in re.finditer(r"^\| `([\w.-]+)/([\w-]+)` \| `([^`]+)` \|", text, re.M)}


def fixture_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*.jsonl") if p.parent.name in PROFILES)


def replay_file(path: Path) -> list[Outcome]:
    """Replay one fixture file against a fresh emulator of its install."""
    install = path.parent.name
    exchanges = load(path)
    if path.name == "webhooks.jsonl":
        from .webhooks import replay_webhooks
        return replay_webhooks(PROFILES[install], exchanges)
    return REPLAYERS[install](PROFILES[install], exchanges).run()
