"""SalesMan's state and what every resource shares: clock, request parsing, visibility, paging, webhooks, hooks."""
from __future__ import annotations

import queue
import random
import re
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ...jsonutil import dumps, loads
from ..base import Clock, EmulatorApp, Request, Response, page_of
from .common import (
    _BRACKETS,
    ACTIONS,
    CONTENT_TYPE,
    ID_KEY,
    PAGE,
    RECV_KEYS,
    STEPS,
    _Fail,
    _filters,
    _intval,
    _is_numeric,
    _loose_equal,
    _moment,
    _post,
    _strings,
    fatal_page,
)
from .seed import sample_data


class SalesManState(EmulatorApp):
    """The CRM's data, clock, webhooks, test hooks and the helpers every resource shares."""
    kind = "salesman"

    def __init__(self, records: int = 100, *, login: str = "admin", api_key: str = "emulator",
                 seed: int = 1, webhook_url: str | None = None, timezone_name: str = "Europe/Moscow",
                 person_update_overwrites: bool = True, deal_update_clears: bool = True,
                 change_start_bug: bool = True, deal_info_nulls: bool = True,
                 task_list_needs_active: bool = True, task_update_resets: bool = True,
                 unstable_order: bool = True, person_write_fatal: bool = False,
                 deal_numbering: bool = True, workers: int = 4):
        super().__init__()
        self.workers = workers  # PHP's built-in server with PHP_CLI_SERVER_WORKERS=4
        self.login, self.api_key = login, api_key
        self.zone = ZoneInfo(timezone_name)
        self.timezone_name = timezone_name
        self.person_update_overwrites = person_update_overwrites
        self.deal_update_clears = deal_update_clears
        self.change_start_bug = change_start_bug
        self.deal_info_nulls = deal_info_nulls
        self.task_list_needs_active = task_list_needs_active
        self.task_update_resets = task_update_resets
        self.unstable_order = unstable_order
        self.person_write_fatal = person_write_fatal
        self.deal_numbering = deal_numbering
        self.random = random.Random(seed)
        self.clock = Clock()
        self.users: dict[int, dict[str, Any]] = {
            1: {"iduser": 1, "login": login, "title": "Админ Админов", "tip": "Руководитель организации",
                "user_post": "Руководитель", "email": f"{login}@example.com" if "@" not in login else login,
                "active": "yes", "isadmin": "on"},
            2: {"iduser": 2, "login": "manager@example.com", "title": "Менеджер Петров", "tip": "Менеджер продаж",
                "user_post": "Менеджер", "email": "manager@example.com", "active": "yes", "isadmin": "off"},
        }
        self.categories = {1: ("Физические лица", "client"), 2: ("Розница", "client"), 3: ("Опт", "client")}
        self.territories = {1: "Пермь", 3: "Тюмень", 4: "Челябинск", 5: "Москва"}
        self.relations = {1: ("0 - Не работаем", "#333333"), 2: ("1 - Холодный клиент", "#99ccff"),
                          3: ("3 - Текущий клиент", "#3366ff"), 4: ("2 - Потенциальный клиент", "#99ff66")}
        self.clientpaths = {1: ("Личные связи", ""), 2: ("Маркетинг", ""), 3: ("Справочник", ""),
                            4: ("Заказ с сайта", ""), 5: ("Рекомендации клиентов", "fromfriend")}
        self.loyalties = {1: "Нейтрален", 2: "Лоялен", 3: "Адвокат бренда"}
        self.default_clientpath = 2
        self.clients: dict[int, dict[str, Any]] = {}
        self.persons: dict[int, dict[str, Any]] = {}
        self.deals: dict[int, dict[str, Any]] = {}
        self.tasks: dict[int, dict[str, Any]] = {}
        self.history: dict[int, dict[str, Any]] = {}
        self.leads: dict[int, dict[str, Any]] = {}
        self.next_id = {"client": 1, "person": 1, "deal": 1, "task": 1, "history": 1, "lead": 1}
        self.deal_number = 0
        self.webhooks: list[tuple[str, str]] = [("*", webhook_url)] if webhook_url else []
        self.webhook_log: list[dict[str, Any]] = []
        self._outbox: queue.Queue[tuple[str, bytes] | None] = queue.Queue()
        self._sender: threading.Thread | None = None
        self._html_errors: list[str] = []
        sample_data(self, records)

    def now(self) -> datetime:
        """Account-local wall time (naive), shifted by the clock hook."""
        return datetime.fromtimestamp(self.clock.now(), self.zone).replace(tzinfo=None, microsecond=0)

    def stamp(self) -> str:
        return self.now().strftime("%Y-%m-%d %H:%M:%S")

    def today(self) -> str:
        return self.now().strftime("%Y-%m-%d")

    def _new_id(self, table: str) -> int:
        value = self.next_id[table]
        self.next_id[table] += 1
        return value

    def _parse(self, request: Request) -> dict[str, Any]:
        cached = getattr(request, "_salesman", None)
        if cached is not None:
            return cached
        match = re.fullmatch(r"/developer/v2/([A-Za-z]+)(?:\.php)?/?", request.path)
        method = match.group(1) if match else None
        json_mode = request.headers.get("content-type") == "application/json"
        if json_mode:
            body = request.json()
            params = dict(body) if isinstance(body, dict) else {}
            for key, value in request.query.items():
                params.setdefault(key, value)
            login = request.headers.get("login", params.get("login"))
            apikey = request.headers.get("apikey", params.get("apikey"))
        else:
            params = {}
            raw = {**request.query, **request.form}
            for key, value in raw.items():
                m = _BRACKETS.match(key)
                if not m:
                    params[key] = value.replace('"', "”").replace("'", "&acute;").strip()
                    continue
                node = params.setdefault(m.group(1), {})
                parts = re.findall(r"\[([^\[\]]*)\]", m.group(2))
                for part in parts[:-1]:
                    node = node.setdefault(part, {}) if isinstance(node, dict) else {}
                if isinstance(node, dict):
                    node[parts[-1] or str(len(node))] = value
            login, apikey = params.get("login"), params.get("apikey")
        parsed = {"method": method, "action": str(params.get("action") or ""), "params": params,
                  "json": json_mode, "login": login, "apikey": apikey}
        setattr(request, "_salesman", parsed)  # noqa: B010 - parsed once per request, read by operation and handle
        return parsed

    def operation(self, request: Request) -> str:
        parsed = self._parse(request)
        if not parsed["method"] or parsed["method"] not in ACTIONS:
            return request.path
        return f"{parsed['method']}.{parsed['action'] or '-'}"

    def fault_response(self) -> Response:
        return Response.html("<html><body><h1>500 Internal Server Error</h1></body></html>", 500)

    def _fatal(self, message: str, file: str, line: int) -> _Fail:
        return _Fail(Response(200, fatal_page(message, f"/var/www/salesman/{file}", line).encode("utf-8"),
                              CONTENT_TYPE))

    def _people(self, user: dict[str, Any]) -> set[int]:
        if user["tip"] in ("Руководитель организации", "Руководитель с доступом", "Поддержка продаж",
                           "Администратор"):
            return set(self.users)
        return {user["iduser"]}

    def _visible(self, table: dict[int, dict[str, Any]], params: dict[str, Any],
                 user: dict[str, Any]) -> list[dict[str, Any]]:
        """Client/deal list visibility: ``user=<login>`` replaces it, ``isadmin`` lifts it."""
        if params.get("user"):
            owner = self._user_id(params["user"])
            return [r for r in table.values() if _intval(r["iduser"]) == owner]
        if user.get("isadmin") == "on":
            return list(table.values())
        people = self._people(user)
        return [r for r in table.values() if _intval(r["iduser"]) in people]

    def _user_id(self, login: Any) -> int:
        return next((u["iduser"] for u in self.users.values() if u["login"] == login), 0)

    def _login(self, iduser: Any) -> str | None:
        u = self.users.get(_intval(iduser))
        return u["login"] if u else None

    def _dictionary(self, name: str) -> dict[int, Any]:
        """A client dictionary by its field name: idcategory, territory or clientpath."""
        tables: dict[str, dict[int, Any]] = {"idcategory": self.categories, "territory": self.territories,
                                             "clientpath": self.clientpaths}
        return tables[name]

    def _dictionary_id(self, table: dict[int, Any], value: Any, create: bool) -> int:
        """An id or a name; unknown names are created (as the client card does)."""
        if value in (None, ""):
            return 0
        if _is_numeric(value):
            return int(value)
        for key, entry in table.items():
            if (entry[0] if isinstance(entry, tuple) else entry) == value:
                return key
        if not create:
            return 0
        key = max(table, default=0) + 2
        if table is self.categories:
            table[key] = (str(value), "client")
        elif table is self.clientpaths:
            table[key] = (str(value), "")
        else:
            table[key] = str(value)
        return key

    @staticmethod
    def _title_of(table: dict[int, Any], key: Any) -> str | None:
        entry = table.get(_intval(key))
        if entry is None:
            return None
        return entry[0] if isinstance(entry, tuple) else entry

    def _order(self, rows: list[dict[str, Any]], params: dict[str, Any], columns: set[str], default: str,
               synonyms: dict[str, str], id_key: str) -> list[dict[str, Any]]:
        """``order`` is a raw column (unknown: SQL error page); ``first=old`` ascending; no tie-breaker."""
        order = str(params.get("order") or default)
        order = synonyms.get(order, order)
        if order not in columns:
            raise self._fatal(f"Uncaught mysqli_sql_exception: Unknown column '{order}' in 'ORDER BY'",
                              "vendor/colshrapnel/safemysql/safemysql.class.php", 466)
        rows = sorted(rows, key=lambda r: r[id_key])
        if self.unstable_order:
            self.random.shuffle(rows)  # ties come back in no particular order

        def key(row: dict[str, Any]) -> tuple[int, float, str]:
            value = row.get(order)
            if value is None:
                return (0, 0.0, "")
            if isinstance(value, (int, float)):
                return (1, float(value), "")
            return (1, 0.0, str(value))
        return sorted(rows, key=key, reverse=params.get("first") != "old")

    def _shown(self, entity: str, rows: list[dict[str, Any]], params: dict[str, Any]) -> list[dict[str, Any]]:
        """A listing's rows less those ``hide_rows`` hides; a listing filtered by id is a read by id."""
        key = ID_KEY[entity]
        filters = _filters(params)
        hide = self.listing_filter(entity, by_id=bool(key in filters or params.get(key)))
        return rows if hide is None else [r for r in rows if not hide(r[key])]

    @staticmethod
    def _page(rows: list[Any], params: dict[str, Any]) -> list[Any]:
        page = max(_intval(params.get("offset")), 0)
        return page_of(rows, page, PAGE)

    @staticmethod
    def _select(record: dict[str, Any], params: dict[str, Any], enabled: dict[str, str],
                groups: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
        """``fields=a,b``: the listed enabled names in the asked order, each with its companion keys."""
        wanted = [f.strip() for f in str(params.get("fields") or "").split(",") if f.strip()]
        if not wanted:
            return record
        out: dict[str, Any] = {}
        for name in wanted:
            if name in enabled:
                out.update({key: record[key] for key in groups.get(name, (name,)) if key in record})
        return out

    @staticmethod
    def _date_window(value_of: Callable[[dict[str, Any]], str | None], rows: list[dict[str, Any]],
                     start: Any, end: Any, strict: bool) -> list[dict[str, Any]]:
        if not start and not end:
            return rows
        lo, hi = _moment(start) if start else None, _moment(end) if end else None

        def inside(value: str) -> bool:
            if lo is not None and hi is not None:
                return lo <= value <= hi
            if lo is not None:
                return value > lo if strict else value >= lo
            return hi is not None and (value < hi if strict else value <= hi)
        return [r for r in rows for value in (value_of(r),) if value is not None and inside(value)]

    def _change_window(self, rows: list[dict[str, Any]], params: dict[str, Any], column: str,
                       as_moment: Callable[[Any], str | None]) -> list[dict[str, Any]]:
        start, end = params.get("dateChangeStart"), params.get("dateChangeEnd")
        if start and not end and self.change_start_bug:
            # client.php:280: the start compares with dateStart, or with '' when that is absent
            bound = _moment(params["dateStart"]) if params.get("dateStart") else ""
            return [r for r in rows for value in (as_moment(r.get(column)),) if value is not None and value > bound]
        return self._date_window(lambda r: as_moment(r.get(column)), rows, start, end, strict=False)

    def fire(self, event: str, payload: dict[str, Any]) -> None:
        """Queue ``event`` for every URL registered for it (delivered by a background thread)."""
        urls = [url for name, url in self.webhooks if name in ("*", event)]
        if not urls:
            return
        body = {**payload, "event": event, "identity": "1", "iduser1": "1"}
        raw = dumps(_strings(body), ascii_only=True).replace("/", "\\/").encode("ascii")
        for url in urls:
            self._outbox.put((url, raw))
        if self._sender is None or not self._sender.is_alive():
            self._sender = threading.Thread(target=self._deliver, daemon=True, name="salesman-webhooks")
            self._sender.start()

    def _deliver(self) -> None:
        while True:
            item = self._outbox.get()
            try:
                if item is None:
                    return
                url, raw = item
                status = _post(url, raw)
                with self.lock:
                    self.webhook_log.append({"url": url, "body": loads(raw), "status": status})
            finally:
                self._outbox.task_done()

    def flush_webhooks(self) -> None:
        """Wait until every queued webhook has been sent (or has failed)."""
        self._outbox.join()

    def control_webhook(self, url: str, event: str = "*") -> int:
        self.webhooks.append((event, url))
        return len(self.webhooks)

    def control_clock(self, advance: float = 0, days: float = 0) -> str:
        self.clock.set(advance=advance + days * 86400)
        return self.stamp()

    def control_html_error_next(self, message: str = "Uncaught Error: Call to a member function "
                                "getOne() on null", count: int = 1) -> int:
        self._html_errors.extend([message] * count)
        return len(self._html_errors)

    def control_edit(self, entity: str, id: int | str, values: dict[str, Any],
                     bump_change_date: bool = True) -> dict[str, Any]:
        """Change a record as the UI does; ``bump_change_date=False`` is an owner/flag-like change."""
        row = self._table(entity).get(int(id))
        if row is None:
            raise ValueError(f"no {entity} {id}")
        diff = {k: v for k, v in values.items() if not _loose_equal(row.get(k), v)}
        row.update(values)
        if bump_change_date and entity in ("client", "person"):
            row["date_edit"] = self.stamp()
        elif bump_change_date and entity == "deal":
            row["datum_izm"] = self.today()
        if entity in ("client", "person", "deal"):
            key = ID_KEY[entity]
            extra = {"user": "0"} if entity == "client" else {}
            self.fire(f"{entity}.edit", {key: row[key], "autor": 1, **extra, "newparam": diff})
        elif entity == "task":
            self.fire("task.edit", {"id": row["tid"], "autor": 0})
        return dict(row)

    def control_delete(self, entity: str, id: int | str) -> bool:
        """Hard delete from the UI (no checks); fires ``<entity>.delete`` where the CRM has it."""
        row = self._table(entity).pop(int(id), None)
        if row is not None and entity in ("client", "person", "deal"):
            self.fire(f"{entity}.delete", {ID_KEY[entity]: int(id), "autor": 1})
        return row is not None

    def control_create(self, entity: str, values: dict[str, Any]) -> int:
        """Insert a record as the UI would (no webhook)."""
        key = ID_KEY[entity]
        new = self._new_id(entity)
        stamp = self.stamp()
        by_entity: dict[str, dict[str, Any]] = {"client": {"type": "client", "date_create": stamp, "date_edit": None,
                                               "iduser": 1, "idcategory": 0, "head_clid": 0, "pid": 0,
                                               "territory": 0, "clientpath": self.default_clientpath, "recv": {}},
                                    "person": {"date_create": stamp, "date_edit": None, "clid": 0, "iduser": 1,
                                               "loyalty": 0, "clientpath": self.default_clientpath},
                                    "deal": {"datum": self.today(), "datum_izm": None, "clid": 0, "payer": 0,
                                             "iduser": 1, "idcategory": STEPS[0][0], "tip": 6, "direction": 1,
                                             "kol": 0.0, "marga": 0.0, "close": "no", "sid": 0, "kol_fact": 0,
                                             "pid_list": "", "coid1": "", "mcid": 0, "dog_num": 0}}
        defaults = by_entity.get(entity, {})
        self._table(entity)[new] = {key: new, **defaults, **values}
        return new

    def _table(self, entity: str) -> dict[int, dict[str, Any]]:
        tables = {"client": self.clients, "person": self.persons, "deal": self.deals, "task": self.tasks,
                  "lead": self.leads, "history": self.history}
        if entity not in tables:
            raise ValueError(f"unknown entity {entity!r}; one of {', '.join(tables)}")
        return tables[entity]

    def live_records(self, entity: str) -> list[dict[str, Any]]:
        """Stored rows of ENTITY (copies), by id."""
        with self.lock:
            return [dict(row) for _, row in sorted(self._table(entity).items())]

    def toml_section(self, name: str, url: str) -> str:
        var = f"{name.upper()}_API_KEY"
        return (f"# export {var}={self.api_key}\n[systems.{name}]\nkind = \"salesman\"\nurl = \"{url}\"\n"
                f"login = \"{self.login}\"\napi_key = \"${{{var}}}\"\ntimezone = \"{self.timezone_name}\"\n")

    def _recv(self, row: dict[str, Any]) -> dict[str, str]:
        return {key: str(row.get("recv", {}).get(key, "")) for key in RECV_KEYS}

    def _local_time(self, value: str) -> str:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return self.stamp()
        if moment.tzinfo is not None:
            moment = moment.astimezone(self.zone).replace(tzinfo=None)
        return moment.strftime("%Y-%m-%d %H:%M:%S")

    def _add_history(self, content: str, *, user: dict[str, Any], clid: int = 0, pid: Any = "", did: int = 0,
                     datum: str | None = None, tip: str = "Событие") -> int:
        cid = self._new_id("history")
        self.history[cid] = {"cid": cid, "datum": datum or self.stamp(), "content": content, "tip": tip,
                             "iduser": user["iduser"], "clid": clid, "pid": str(pid or ""), "did": did}
        return cid
