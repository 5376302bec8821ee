"""Alfa CRM's ``/v2api`` as specs/alfacrm.md describes it: a PHP Yii2 REST app.

Every call is a POST with a JSON body; ``/v2api/auth/login`` hands out tokens that expire; ``index``
pages are 0-based (default 20 rows, ``?per-page=`` up to 50) and ordered by name for customers, so
edits shift rows between pages exactly as on the real server; archived customers and groups hide
unless ``removed`` is 1 or 2; validation failures are HTTP 200 ``success:false``; every write
appends a Log row. Rows are kept in their serialised form and customers in a name index kept sorted
with ``bisect``, so a page costs O(page) Python, not O(N), and 50,000 customers seed in about a
second.
"""
from __future__ import annotations

import bisect
import functools
import random
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from .base import EmulatorApp, Request, Response

ACTIVE_E_DATE = "2030-12-31"   # the e_date of every row that is not archived
SERVER_TZ = timezone(timedelta(hours=3))  # Alfa writes naive Moscow time
API_USER_ID = 1                # the user the API key belongs to (Log user_id of API writes)
UI_USER_ID = 2                 # the user the control hooks act as
TOKEN_EXPIRED = "Not Authorized. Token is expired or undefined."
TOKEN_INVALID = "Your request was made with invalid credentials."
_TOKEN_SHAPE = re.compile(r"^[0-9a-f]{32}$")
_PATH = re.compile(r"^/v2api/(?:(\d+)/)?([a-z][a-z-]*)/([a-z-]+)/?$")

# Field kinds: how a value is defaulted, validated on write and serialised.
#   int: id or enum, null by default   num: integer, 0 by default   bool: 0/1
#   str: text, ""                      list: array, []              money: "0.00"
#   date: yyyy-mm-dd or null           dob: dd.mm.yyyy or ""        datetime: "yyyy-mm-dd HH:MM:SS" or null
#   json: kept as sent ([] when empty)


@dataclass(frozen=True)
class Model:
    """One ``/v2api`` model: its Log class name, fields in the server's order and index rules."""

    cls: str
    fields: tuple[tuple[str, str], ...]
    order: str = "id"                       # "name" (case-insensitive), "id" or "-id"
    required: tuple[str, ...] = ()
    archivable: bool = False                # index hides archived rows unless removed=1/2
    parents: tuple[str, ...] = ()           # query parameters an index needs (nested resource)
    filters: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (how, field)

    @property
    def kinds(self) -> dict[str, str]:
        return dict(self.fields)

    @functools.cached_property
    def defaults(self) -> dict[str, Any]:
        return {name: _default(kind) for name, kind in self.fields}

    def blank(self) -> dict[str, Any]:
        """A row of defaults (its empty lists are shared: rows are never changed in place)."""
        return dict(self.defaults)


def _f(spec: str) -> tuple[tuple[str, str], ...]:
    """``"id:int name:str"`` → ((id, int), (name, str)): field lists stay one line per model."""
    return tuple(tuple(item.split(":")) for item in spec.split())  # type: ignore[misc]


_DICTIONARY = _f("id:int name:str is_enabled:bool weight:num")
MODELS: dict[str, Model] = {
    "customer": Model(
        "Customer",
        _f("id:int branch_ids:list teacher_ids:list name:str barcode:str color:str is_study:bool "
           "study_status_id:int lead_status_id:int lead_reject_id:int lead_source_id:int "
           "assigned_id:int legal_type:int legal_name:str company_id:int dob:dob balance:money "
           "balance_base:money balance_bonus:num paid_count:num next_lesson_date:datetime "
           "paid_till:datetime last_attend_date:date b_date:datetime e_date:date note:str "
           "paid_lesson_count:num paid_lesson_date:datetime phone:list email:list web:list "
           "addr:list custom_gorod:str custom_datakontrakta:str"),
        order="name", required=("name", "is_study", "legal_type", "branch_ids"), archivable=True,
        filters={"id": ("eq", "id"), "is_study": ("eq", "is_study"), "name": ("like", "name"),
                 "phone": ("like", "phone"), "legal_type": ("eq", "legal_type"),
                 "legal_name": ("like", "legal_name"), "note": ("like", "note"),
                 "study_status_id": ("eq", "study_status_id"), "lead_status_id": ("eq", "lead_status_id"),
                 "lead_source_id": ("eq", "lead_source_id"), "assigned_id": ("eq", "assigned_id"),
                 "color": ("eq", "color"), "customer_reject_id": ("eq", "lead_reject_id"),
                 "date_from": ("from", "b_date"), "date_to": ("to", "b_date"),
                 "removed_from": ("from", "e_date"), "removed_to": ("to", "e_date")}),
    "group": Model(
        "Group",
        _f("id:int branch_ids:list teacher_ids:list name:str level_id:int status_id:int "
           "company_id:int streaming_id:int limit:num note:str b_date:date e_date:date "
           "created_at:datetime updated_at:datetime"),
        required=("name",), archivable=True,
        filters={"id": ("eq", "id"), "name": ("like", "name"), "teacher_id": ("has", "teacher_ids"),
                 "level_id": ("eq", "level_id"), "status_id": ("eq", "status_id")}),
    "lesson": Model(
        "Lesson",
        _f("id:int branch_id:int date:date time_from:datetime time_to:datetime lesson_type_id:int "
           "status:int subject_id:int room_id:int teacher_ids:list customer_ids:list group_ids:list "
           "streaming:num note:str topic:str homework:str details:list"),
        required=("date", "lesson_type_id"),
        filters={"id": ("eq", "id"), "date_from": ("from", "date"), "date_to": ("to", "date"),
                 "status": ("eq", "status"), "lesson_type_id": ("eq", "lesson_type_id"),
                 "customer_id": ("has", "customer_ids"), "group_id": ("has", "group_ids"),
                 "subject_id": ("eq", "subject_id"), "teacher_id": ("has", "teacher_ids")}),
    "pay": Model(
        "Pay",
        _f("id:int branch_id:int location_id:int customer_id:int pay_type_id:int pay_account_id:int "
           "pay_item_id:int teacher_id:int commodity_id:int ctt_id:int document_date:date "
           "income:money payer_name:str note:str is_confirmed:bool"),
        required=("customer_id", "income"),
        filters={"id": ("eq", "id"), "customer_id": ("eq", "customer_id"),
                 "pay_type_id": ("eq", "pay_type_id")}),
    "teacher": Model(
        "Teacher",
        _f("id:int branch_ids:list name:str dob:dob gender:int streaming_id:int note:str e_date:date "
           "avatar_url:str phone:list email:list web:list addr:list teacher-to-skill:list"),
        required=("name",), filters={"id": ("eq", "id"), "phone": ("like", "phone"), "name": ("like", "name")}),
    "task": Model(
        "Task",
        _f("id:int company_id:int branch_ids:list user_id:int assigned_ids:list group_ids:list "
           "customer_ids:list title:str text:str is_archive:bool created_at:datetime is_done:bool "
           "is_private:bool due_date:date done_date:datetime is_public_entry:bool is_notify:bool "
           "priority:num"),
        required=("text",), filters={"id": ("eq", "id"), "is_done": ("eq", "is_done")}),
    "communication": Model(
        "Communication", _f("id:int type_id:int class:str related_id:int user_id:int added:datetime comment:str"),
        required=("class", "related_id", "comment"), parents=("class", "related_id"),
        filters={"id": ("eq", "id"), "class": ("eq", "class"), "related_id": ("eq", "related_id")}),
    "lead-status": Model("LeadStatus", _DICTIONARY, required=("name",),
                         filters={"id": ("eq", "id"), "name": ("like", "name"), "is_enabled": ("eq", "is_enabled")}),
    "study-status": Model("StudyStatus", _DICTIONARY, required=("name",),
                          filters={"id": ("eq", "id"), "name": ("like", "name"), "is_enabled": ("eq", "is_enabled")}),
    "lead-reject": Model("LeadReject", _DICTIONARY, required=("name",),
                         filters={"id": ("eq", "id"), "name": ("like", "name"), "is_enabled": ("eq", "is_enabled")}),
    "lead-source": Model("LeadSource", _f("id:int code:str name:str is_enabled:bool weight:num"), required=("name",),
                         filters={"id": ("eq", "id"), "name": ("like", "name"), "code": ("eq", "code"),
                                  "is_enabled": ("eq", "is_enabled")}),
    "subject": Model("Subject", _f("id:int name:str weight:num"), required=("name",),
                     filters={"id": ("eq", "id"), "name": ("like", "name")}),
    "branch": Model("Branch", _f("id:int name:str is_active:bool subject_ids:list weight:num"), required=("name",),
                    filters={"id": ("eq", "id"), "name": ("like", "name"), "is_active": ("eq", "is_active")}),
    "location": Model("Location", _f("id:int branch_id:int is_active:bool name:str weight:num"), required=("name",),
                      filters={"id": ("eq", "id"), "name": ("like", "name"), "is_active": ("eq", "is_active")}),
    "log": Model("Log", _f("id:int entity:str entity_id:int user_id:int event:int fields_old:json "
                           "fields_new:json fields_rel:json date_time:datetime"),
                 order="-id", filters={"id": ("eq", "id"), "entity": ("eq", "entity"),
                                       "entity_id": ("eq", "entity_id"), "user_id": ("eq", "user_id"),
                                       "event": ("eq", "event"), "date_from": ("from", "date_time"),
                                       "date_to": ("to", "date_time")}),
}
READ_ONLY = {"log"}
EVENT_CREATE, EVENT_UPDATE, EVENT_DELETE = 1, 2, 3

# Labels the server puts in validation messages (Yii: "Необходимо заполнить «Label».").
LABELS = {"name": "Имя", "is_study": "Клиент/лид", "legal_type": "Тип клиента", "branch_ids": "Филиалы",
          "dob": "Дата рождения", "email": "E-mail", "phone": "Телефон", "balance": "Баланс",
          "date": "Дата", "lesson_type_id": "Тип урока", "customer_id": "Клиент", "income": "Сумма",
          "text": "Текст", "comment": "Комментарий", "class": "Класс", "related_id": "Объект",
          "title": "Заголовок", "document_date": "Дата документа"}

_MALE = ["Александр", "Алексей", "Андрей", "Антон", "Артём", "Борис", "Вадим", "Виктор", "Владимир", "Дмитрий",
         "Евгений", "Иван", "Игорь", "Кирилл", "Максим", "Михаил", "Никита", "Николай", "Олег", "Павел", "Роман",
         "Сергей", "Степан", "Юрий", "Ярослав"]
_FEMALE = ["Анна", "Алина", "Валентина", "Вера", "Виктория", "Дарья", "Екатерина", "Елена", "Ирина", "Ксения",
           "Любовь", "Мария", "Марина", "Наталья", "Ольга", "Полина", "Светлана", "София", "Татьяна", "Юлия", "Яна"]
_SURNAMES = ["Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов", "Новиков",
             "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров", "Павлов", "Козлов",
             "Степанов", "Николаев", "Орлов", "Андреев", "Макаров", "Никитин", "Захаров", "Зайцев", "Соловьёв",
             "Борисов", "Яковлев", "Григорьев", "Романов", "Воробьёв"]
_PATRONYMS = ["Александров", "Алексеев", "Андреев", "Викторов", "Дмитриев", "Иванов", "Михайлов", "Николаев",
              "Олегов", "Павлов", "Сергеев", "Юрьев"]
_CITIES = ("Москва", "Самара", "Казань", "Тверь", "Пермь", "")
_SUBJECTS = ("Английский язык", "Математика", "Робототехника", "Шахматы", "Рисование", "Программирование")


def _person(rnd: random.Random) -> str:
    """A Russian full name: surname, first name, patronymic, with female forms."""
    surname, patronym = rnd.choice(_SURNAMES), rnd.choice(_PATRONYMS)
    if rnd.random() < 0.5:
        return f"{surname} {rnd.choice(_MALE)} {patronym}ич"
    return f"{surname}а {rnd.choice(_FEMALE)} {patronym}на"


def _error(status: int, name: str, message: str) -> Response:
    """The Yii2 REST error object."""
    return Response.json({"name": name, "message": message, "code": 0, "status": status}, status)


def _parse_date(value: Any) -> date | None:
    """``dd.mm.yyyy`` or ``yyyy-mm-dd`` (also the date part of a date-time); None if neither."""
    text = str(value or "").strip()[:10]
    for fmt in ("%d.%m.%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            pass
    return None


class Invalid(Exception):
    """A write refused by validation: (field, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]):
        super().__init__(problems)
        self.problems = problems


class AlfaApp(EmulatorApp):
    kind = "alfacrm"

    def __init__(self, *, email: str, api_key: str, branch: int, branches: int, token_ttl: float,
                 page_size: int, max_page_size: int, honour_per_page: bool, past_end: str,
                 delete_mode: str, validation_style: str, log_access: bool, retry_after_header: bool):
        super().__init__()
        if past_end not in ("empty", "clamp"):
            raise ValueError("past_end must be 'empty' or 'clamp'")
        if delete_mode not in ("hard", "archive"):
            raise ValueError("delete_mode must be 'hard' or 'archive'")
        if validation_style not in ("list", "map", "422"):
            raise ValueError("validation_style must be 'list', 'map' or '422'")
        self.email, self.api_key = email, api_key
        self.branch_ids = list(range(branch, branch + max(1, branches)))
        self.token_ttl = token_ttl
        self.page_size, self.max_page_size = page_size, max_page_size
        self.honour_per_page, self.past_end = honour_per_page, past_end
        self.delete_mode, self.validation_style = delete_mode, validation_style
        self.log_access, self.retry_after_header = log_access, retry_after_header
        self.tokens: dict[str, float] = {}          # token -> monotonic expiry
        self.tables: dict[str, dict[int, dict[str, Any]]] = {m: {} for m in MODELS}
        self.next_id: dict[str, int] = dict.fromkeys(MODELS, 1)
        self.version: dict[str, int] = dict.fromkeys(MODELS, 0)
        self._by_name: dict[str, list[tuple[str, int]]] = {m: [] for m, s in MODELS.items() if s.order == "name"}
        self._log_by_entity: dict[str, list[int]] = {}
        self._views: dict[tuple[Any, ...], tuple[int, list[int]]] = {}
        self._page_hooks: list[tuple[str, int, Callable[[], Any]]] = []
        self._broken_pages: dict[tuple[str, int], list[Any]] = {}   # (model, page) -> [mode, times]
        self._frozen: datetime | None = None
        self._offset = timedelta()

    def now(self) -> datetime:
        """Server-local (Moscow) wall time, naive, to the second: what b_date and Log date_time hold."""
        moment = self._frozen or datetime.now(SERVER_TZ).replace(tzinfo=None) + self._offset
        return moment.replace(microsecond=0)

    # -- HTTP ------------------------------------------------------------------------------

    def operation(self, request: Request) -> str:
        match = _PATH.match(request.path)
        return f"{match.group(2)}/{match.group(3)}" if match else request.path

    def fault_response(self) -> Response:
        return _error(500, "Internal Server Error", "An internal server error occurred.")

    def rate_limited_response(self, retry_after: int) -> Response:
        headers = {"Retry-After": str(retry_after)} if self.retry_after_header else {}
        return Response.json({"name": "Too Many Requests", "message": "Rate limit exceeded.",
                              "code": 0, "status": 429}, 429, headers=headers)

    def expire_sessions(self) -> None:
        self.tokens.clear()

    def handle(self, request: Request) -> Response:
        if request.method != "POST":
            return _error(405, "Method Not Allowed", "Method Not Allowed. This URL can only handle "
                          "the following request methods: POST.")
        body = request.json() if request.body.strip() else {}
        if not isinstance(body, dict):
            body = {}
        if request.path.rstrip("/") == "/v2api/auth/login":
            return self._login(body)
        match = _PATH.match(request.path)
        if not match or match.group(2) not in MODELS or match.group(3) not in ("index", "create", "update", "delete"):
            return _error(404, "Not Found", "Page not found.")
        branch, model, action = match.groups()
        token = request.headers.get("x-alfacrm-token", "")
        with self.lock:
            if not _TOKEN_SHAPE.match(token):
                return _error(401, "Unauthorized", TOKEN_INVALID if token else TOKEN_EXPIRED)
            if self.tokens.get(token, 0) < time.monotonic():
                self.tokens.pop(token, None)
                return _error(401, "Unauthorized", TOKEN_EXPIRED)
            if model == "log" and not self.log_access:
                return _error(403, "Forbidden", "Access Denied")
            branch_id = int(branch) if branch else None
            if action == "index":
                return self._index(model, branch_id, body, request.query)
            if model in READ_ONLY:
                return _error(404, "Not Found", "Page not found.")
            return self._write(model, branch_id, action, body, request.query)

    def _login(self, body: dict[str, Any]) -> Response:
        if body.get("email") != self.email or body.get("api_key") != self.api_key:
            return _error(403, "Forbidden", "Not Authorized")
        token = secrets.token_hex(16)
        with self.lock:
            self.tokens[token] = time.monotonic() + self.token_ttl
        return Response.json({"token": token})

    # -- index -----------------------------------------------------------------------------

    def _index(self, model: str, branch: int | None, body: dict[str, Any], query: dict[str, str]) -> Response:
        spec = MODELS[model]
        missing = [p for p in spec.parents if not query.get(p)]
        if missing:
            return _error(400, "Bad Request", f"Missing required parameters: {', '.join(missing)}")
        page = _int(body.get("page"), 0) or 0
        size = self.page_size
        if self.honour_per_page and query.get("per-page"):
            size = min(max(_int(query["per-page"], size) or 1, 1), self.max_page_size)
        for hook_model, hook_page, hook in list(self._page_hooks):
            if hook_model == model and hook_page == page:
                self._page_hooks.remove((hook_model, hook_page, hook))
                hook()
        filters = {**body, **{p: query[p] for p in spec.parents}}
        ids = self._select(model, branch, filters)
        hide = None if filters.get("id") not in (None, "", []) else self.listing_filter(model, spec.cls)
        if hide is not None:
            ids = [i for i in ids if not hide(i)]
        total = len(ids)
        if page * size >= total and total and self.past_end == "clamp":
            page = (total - 1) // size
        items = [self.tables[model][i] for i in ids[page * size:(page + 1) * size]]
        broken = self._broken_pages.get((model, page))
        if broken:
            broken[1] -= 1
            if broken[1] <= 0:
                del self._broken_pages[(model, page)]
            if broken[0] == "error":
                return self.fault_response()
            items = []
        return Response.json({"total": total, "count": len(items), "page": page, "items": items})

    def _select(self, model: str, branch: int | None, filters: dict[str, Any]) -> list[int]:
        """The ids an index lists, in the server's order."""
        spec = MODELS[model]
        removed = _int(filters.get("removed"), 0) if spec.archivable else 1
        order = "-id" if model == "customer" and _int(filters.get("is_study"), None) == 0 else spec.order
        checks = [check for name, value in filters.items() if name in spec.filters and value not in (None, "", [])
                  for check in (_check(spec, name, value),) if check is not None]
        table = self.tables[model]
        if "id" in filters and filters["id"] not in (None, "", []):
            wanted = filters["id"] if isinstance(filters["id"], list) else [filters["id"]]
            rows = [table[i] for i in dict.fromkeys(_int(w, -1) for w in wanted) if i in table]
            rows = [r for r in rows if self._visible(r, branch, removed) and all(c(r) for c in checks)]
            return [r["id"] for r in sorted(rows, key=_sort_key(order))]
        if model == "log" and set(filters) <= {"entity", "page"} and filters.get("entity"):
            return self._log_by_entity.get(str(filters["entity"]), [])[::-1]
        ids = self._view(model, branch, removed, order)
        if checks:
            ids = [i for i in ids if all(c(table[i]) for c in checks)]
        return ids

    def _view(self, model: str, branch: int | None, removed: int | None, order: str) -> list[int]:
        """Ids visible in BRANCH with the archive filter, in ORDER; cached until the model changes."""
        key = (model, branch, removed, order)
        cached = self._views.get(key)
        if cached and cached[0] == self.version[model]:
            return cached[1]
        table = self.tables[model]
        if order == "name":
            ordered = [i for _, i in self._by_name[model]]
        elif order == "-id":
            ordered = list(reversed(table))
        else:
            ordered = list(table)
        if branch is not None or removed != 1:
            ordered = [i for i in ordered if self._visible(table[i], branch, removed)]
        self._views[key] = (self.version[model], ordered)
        return ordered

    @staticmethod
    def _visible(row: dict[str, Any], branch: int | None, removed: int | None) -> bool:
        if branch is not None:
            if "branch_ids" in row and branch not in row["branch_ids"]:
                return False
            if "branch_id" in row and row["branch_id"] not in (branch, None):
                return False
        if removed in (0, 2) and "e_date" in row:
            archived = _archived(row)
            return archived if removed == 2 else not archived
        return True

    # -- create / update / delete ----------------------------------------------------------

    def _write(self, model: str, branch: int | None, action: str, body: dict[str, Any],
               query: dict[str, str]) -> Response:
        spec = MODELS[model]
        try:
            if action == "create":
                values = {**body, **{p: query[p] for p in spec.parents if p in query}}
                kinds = spec.kinds
                if branch and "branch_id" in kinds:
                    values.setdefault("branch_id", branch)
                if branch and "branch_ids" in kinds and "branch_ids" not in spec.required:
                    values.setdefault("branch_ids", [branch])
                row = self.insert(model, values, API_USER_ID)
                return Response.json({"success": True, "errors": [], "model": row})
            row_id = _int(query.get("id"), None)
            if row_id is None or row_id not in self.tables[model]:
                return _error(404, "Not Found", f"Object not found: {query.get('id', '')}")
            if action == "update":
                row = self.change(model, row_id, body, API_USER_ID)
                return Response.json({"success": True, "errors": [], "model": row})
            if spec.archivable and self.delete_mode == "archive":
                self.change(model, row_id, {"e_date": self.now().date().isoformat()}, API_USER_ID)
            else:
                self.remove(model, row_id, API_USER_ID)
            return Response.json({"success": True, "errors": []})
        except Invalid as exc:
            return self._invalid(exc.problems)

    def _invalid(self, problems: list[tuple[str, str]]) -> Response:
        if self.validation_style == "422":
            return Response.json([{"field": f, "message": m} for f, m in problems], 422)
        if self.validation_style == "map":
            errors: Any = {}
            for f, m in problems:
                errors.setdefault(f, []).append(m)
        else:
            errors = [m for _, m in problems]
        return Response.json({"success": False, "errors": errors, "model": None})

    def insert(self, model: str, values: dict[str, Any], user_id: int = UI_USER_ID) -> dict[str, Any]:
        """Validate and store a new row; append its Log row. Returns the row as served."""
        spec = MODELS[model]
        row = spec.blank()
        if "e_date" in row:
            row["e_date"] = ACTIVE_E_DATE
        if model == "customer":
            row["b_date"] = self.now().strftime("%Y-%m-%d %H:%M:%S")
        row.update(_clean(spec, values, creating=True))
        row["id"] = self.next_id[model]
        self.next_id[model] += 1
        self._store(model, row)
        self._log(spec.cls, row["id"], EVENT_CREATE, [], {k: v for k, v in row.items() if k != "id"}, user_id)
        return row

    def change(self, model: str, row_id: int, values: dict[str, Any], user_id: int = UI_USER_ID, *,
               logged: bool = True) -> dict[str, Any]:
        """Partial update; logs only the attributes that changed (LOGGED=False: a Log blind spot)."""
        spec = MODELS[model]
        row = self.tables[model][row_id]
        new = _clean(spec, values, creating=False)
        old = {k: row[k] for k, v in new.items() if row[k] != v}
        if old:
            self._unindex(model, row)
            row.update(new)
            self._store(model, row)
            if logged:
                self._log(spec.cls, row_id, EVENT_UPDATE, old, {k: row[k] for k in old}, user_id)
        return row

    def remove(self, model: str, row_id: int, user_id: int = UI_USER_ID) -> None:
        row = self.tables[model].pop(row_id)
        self._unindex(model, row)
        self.version[model] += 1
        self._log(MODELS[model].cls, row_id, EVENT_DELETE, {k: v for k, v in row.items() if k != "id"}, [], user_id)

    def _store(self, model: str, row: dict[str, Any]) -> None:
        self.tables[model][row["id"]] = row
        if model in self._by_name:
            bisect.insort(self._by_name[model], (row["name"].casefold(), row["id"]))
        self.version[model] += 1

    def _unindex(self, model: str, row: dict[str, Any]) -> None:
        if model in self._by_name:
            index = self._by_name[model]
            at = bisect.bisect_left(index, (row["name"].casefold(), row["id"]))
            if at < len(index) and index[at][1] == row["id"]:
                del index[at]

    def _log(self, cls: str, entity_id: int, event: int, old: Any, new: Any, user_id: int) -> None:
        log_id = self.next_id["log"]
        self.next_id["log"] += 1
        self.tables["log"][log_id] = {
            "id": log_id, "entity": cls, "entity_id": entity_id, "user_id": user_id, "event": event,
            "fields_old": old or [], "fields_new": new or [], "fields_rel": [],
            "date_time": self.now().strftime("%Y-%m-%d %H:%M:%S")}
        self._log_by_entity.setdefault(cls, []).append(log_id)
        self.version["log"] += 1

    # -- test hooks (POST /__emulator__/<action>) and accessors ----------------------------

    def control_create(self, model: str, values: dict[str, Any]) -> dict[str, Any]:
        return self.insert(model, values)

    def control_edit(self, model: str, id: int, values: dict[str, Any], logged: bool = True) -> dict[str, Any]:
        """Edit a row as a UI user; ``logged=False`` as an import or bulk action the Log misses."""
        return self.change(model, int(id), values, logged=logged)

    def control_delete(self, model: str, id: int) -> None:
        """A hard delete, as an admin purging a row: the row is gone, the Log keeps the event."""
        self.remove(model, int(id))

    def control_archive(self, model: str, id: int, archived: bool = True) -> dict[str, Any]:
        """Archive (e_date = today) or restore (e_date = 2030-12-31) a customer or group."""
        if not MODELS[model].archivable:
            raise ValueError(f"{model} rows cannot be archived")
        e_date = self.now().date().isoformat() if archived else ACTIVE_E_DATE
        return self.change(model, int(id), {"e_date": e_date})

    def control_rename(self, model: str = "customer", ids: list[int] | None = None, count: int = 1,
                       seed: int | None = None) -> list[int]:
        """Give rows new random names (moving them in the name order); returns their ids."""
        rnd = random.Random(seed)
        chosen = [int(i) for i in ids] if ids else rnd.sample(sorted(self.tables[model]), count)
        for row_id in chosen:
            self.change(model, row_id, {"name": f"{_person(rnd)} {rnd.randint(1, 999)}"})
        return chosen

    def control_move_branch(self, id: int, branch: int | list[int], model: str = "customer") -> dict[str, Any]:
        """Move a row to another branch as a UI user does (logged): listings of its old branch no
        longer show it, the row itself lives on."""
        branches = [int(b) for b in branch] if isinstance(branch, list) else [int(branch)]
        kinds = MODELS[model].kinds
        if "branch_ids" in kinds:
            return self.change(model, int(id), {"branch_ids": branches})
        if "branch_id" in kinds:
            return self.change(model, int(id), {"branch_id": branches[0]})
        raise ValueError(f"{model} rows belong to no branch")

    def control_clock(self, now: str | None = None, advance: float = 0, real: bool = False) -> str:
        """Freeze the server clock at ``now`` (``yyyy-mm-dd HH:MM:SS``, Moscow), move it by ``advance``
        seconds, or go back to real time; returns the server time (what the next Log row says)."""
        if real:
            self._frozen, self._offset = None, timedelta()
        if now is not None:
            self._frozen = datetime.strptime(str(now), "%Y-%m-%d %H:%M:%S")
        if advance:
            if self._frozen is not None:
                self._frozen += timedelta(seconds=advance)
            else:
                self._offset += timedelta(seconds=advance)
        return self.now().strftime("%Y-%m-%d %H:%M:%S")

    def control_expire_tokens(self) -> int:
        expired = len(self.tokens)
        self.tokens.clear()
        return expired

    def control_at_page(self, model: str, page: int, action: str, payload: dict[str, Any] | None = None) -> None:
        """Run ``control_<action>(**payload)`` when ``{model}/index`` page PAGE is next asked for."""
        method = getattr(self, f"control_{action.replace('-', '_')}")
        self.on_page(model, page, lambda: method(**(payload or {})))

    def control_break_page(self, model: str, page: int, mode: str = "error", times: int = 1) -> None:
        """The next TIMES requests of page PAGE answer HTTP 500 (``error``) or no items (``empty``)."""
        if mode not in ("error", "empty"):
            raise ValueError("mode must be 'error' or 'empty'")
        self._broken_pages[(model, int(page))] = [mode, int(times)]

    def control_options(self, **values: Any) -> dict[str, Any]:
        """Switch behaviours at run time (page_size, delete_mode, log_access, validation_style, …)."""
        allowed = {"page_size", "max_page_size", "honour_per_page", "past_end", "delete_mode",
                   "validation_style", "log_access", "retry_after_header", "token_ttl"}
        for name, value in values.items():
            if name not in allowed:
                raise ValueError(f"unknown option {name!r}; known: {', '.join(sorted(allowed))}")
            setattr(self, name, value)
        return {name: getattr(self, name) for name in sorted(allowed)}

    def on_page(self, model: str, page: int, hook: Callable[[], Any]) -> None:
        """Python form of :meth:`control_at_page` for in-process tests."""
        with self.lock:
            self._page_hooks.append((model, int(page), hook))

    def live_records(self, model: str) -> dict[str, dict[str, Any]]:
        """Every existing row (archived ones too), by id as a string: what a mirror should hold."""
        with self.lock:
            return {str(i): dict(row) for i, row in self.tables[model].items()}

    def archived_ids(self, model: str) -> set[str]:
        with self.lock:
            return {str(i) for i, row in self.tables[model].items() if _archived(row)}

    def toml_section(self, name: str, url: str) -> str:
        var = f"{name.upper().replace('-', '_')}_API_KEY"
        return (f"# export {var}={self.api_key}\n"
                f"[systems.{name}]\n"
                f'kind = "alfacrm"\n'
                f'url = "{url}"\n'
                f'email = "{self.email}"\n'
                f'api_key = "${{{var}}}"\n'
                f"branch = {self.branch_ids[0]}\n")

    # -- seed ------------------------------------------------------------------------------

    def seed(self, records: int, rnd: random.Random) -> None:
        """N customers (5% archived, 10% leads) with groups, lessons, payments and dictionaries."""
        for model, names in (("study-status", ("Учится", "Пауза", "Закончил")),
                             ("lead-status", ("Новый", "Пробное занятие", "Договор", "Отказ")),
                             ("lead-reject", ("Дорого", "Не подошло время")),
                             ("subject", _SUBJECTS)):
            for weight, name in enumerate(names):
                self._seed_row(model, {"name": name, "weight": weight, "is_enabled": 1})
        for weight, (code, name) in enumerate((("site", "Сайт"), ("vk", "ВКонтакте"), ("friend", "Рекомендация"))):
            self._seed_row("lead-source", {"code": code, "name": name, "is_enabled": 1, "weight": weight})
        subjects = list(self.tables["subject"])
        for b in self.branch_ids:
            self._seed_row("branch", {"name": f"Филиал {b}", "is_active": 1, "subject_ids": subjects, "weight": b})
            self._seed_row("location", {"branch_id": b, "name": f"Учебный центр {b}", "is_active": 1})
        teachers = [self._seed_row("teacher", {
            "branch_ids": self._branches_for(rnd), "name": _person(rnd), "gender": rnd.randint(1, 2),
            "dob": f"{rnd.randint(1, 28):02d}.{rnd.randint(1, 12):02d}.{rnd.randint(1965, 2000)}",
            "phone": [_phone(rnd)], "e_date": ACTIVE_E_DATE})["id"] for _ in range(max(2, records // 100))]
        groups = [self._seed_row("group", {
            "branch_ids": self._branches_for(rnd), "teacher_ids": [rnd.choice(teachers)],
            "name": f"{rnd.choice(_SUBJECTS)} — группа {g + 1}", "limit": 10, "b_date": "2024-09-01",
            "e_date": ACTIVE_E_DATE, "created_at": "2024-08-20 10:00:00", "updated_at": "2024-08-20 10:00:00",
        })["id"] for g in range(max(2, records // 25))]
        customers = []
        for n in range(records):
            archived = rnd.random() < 0.05
            created = datetime(2022, 1, 1) + timedelta(minutes=rnd.randrange(1_500_000))
            row = self._seed_row("customer", {
                "branch_ids": self._branches_for(rnd), "teacher_ids": [rnd.choice(teachers)],
                "name": _person(rnd), "is_study": 0 if rnd.random() < 0.1 else 1,
                "study_status_id": rnd.randint(1, 3), "lead_status_id": rnd.randint(1, 4),
                "lead_source_id": rnd.randint(1, 3), "assigned_id": API_USER_ID, "legal_type": 1,
                "dob": "" if rnd.random() < 0.1 else
                f"{rnd.randint(1, 28):02d}.{rnd.randint(1, 12):02d}.{rnd.randint(1980, 2018)}",
                "balance": f"{rnd.randint(-5000, 20000)}.{rnd.choice(('00', '50'))}",
                "balance_base": f"{rnd.randint(0, 5000)}.00", "balance_bonus": rnd.randint(0, 500),
                "paid_count": rnd.randint(-2, 12), "paid_lesson_count": rnd.randint(0, 8),
                "b_date": created.strftime("%Y-%m-%d %H:%M:%S"),
                "e_date": (created + timedelta(days=rnd.randint(30, 600))).date().isoformat()
                if archived else ACTIVE_E_DATE,
                "phone": [_phone(rnd)], "email": [f"client{n + 1}@example.ru"] if rnd.random() < 0.7 else [],
                "custom_gorod": rnd.choice(_CITIES)})
            customers.append(row)
        for _ in range(records // 2):
            customer = rnd.choice(customers)
            day = date(2024, 9, 1) + timedelta(days=rnd.randrange(300))
            hour = rnd.randint(9, 19)
            self._seed_row("lesson", {
                "branch_id": customer["branch_ids"][0], "date": day.isoformat(),
                "time_from": f"{day} {hour:02d}:00:00", "time_to": f"{day} {hour:02d}:45:00",
                "lesson_type_id": 2, "status": rnd.choice((1, 1, 2, 3, 3)), "subject_id": rnd.choice(subjects),
                "teacher_ids": customer["teacher_ids"], "customer_ids": [customer["id"]],
                "group_ids": [rnd.choice(groups)]})
            self._seed_row("pay", {
                "branch_id": customer["branch_ids"][0], "customer_id": customer["id"], "pay_type_id": 1,
                "pay_account_id": 1, "pay_item_id": 1, "document_date": day.isoformat(),
                "income": f"{rnd.randint(5, 60) * 100}.00", "payer_name": customer["name"], "is_confirmed": 1})
        for _ in range(max(1, records // 10) if customers else 0):
            customer = rnd.choice(customers)
            self._seed_row("communication", {"type_id": 1, "class": "Customer", "related_id": customer["id"],
                                              "user_id": API_USER_ID, "added": customer["b_date"],
                                              "comment": "Позвонить, уточнить расписание"})
            self._seed_row("task", {"branch_ids": customer["branch_ids"], "user_id": API_USER_ID,
                                    "customer_ids": [customer["id"]], "title": "Звонок",
                                    "text": f"Перезвонить: {customer['name']}", "created_at": customer["b_date"]})

    def _seed_row(self, model: str, values: dict[str, Any]) -> dict[str, Any]:
        """A row as if it had always been there: no validation, no Log entry, indexed later."""
        row = MODELS[model].blank()
        row.update(values)
        row["id"] = self.next_id[model]
        self.next_id[model] += 1
        self.tables[model][row["id"]] = row
        return row

    def _branches_for(self, rnd: random.Random) -> list[int]:
        if len(self.branch_ids) == 1:
            return list(self.branch_ids)
        roll = rnd.random()
        return list(self.branch_ids[:2]) if roll < 0.1 else [rnd.choice(self.branch_ids)]

    def finish_seed(self) -> None:
        for model, index in self._by_name.items():
            index[:] = sorted((row["name"].casefold(), i) for i, row in self.tables[model].items())


class _FastRandom(random.Random):
    """Seeding draws millions of numbers; these float-based draws are 3x faster than the stock ones."""

    def randint(self, a: int, b: int) -> int:
        return a + int(self.random() * (b - a + 1))

    def randrange(self, stop: int) -> int:  # type: ignore[override]
        return int(self.random() * stop)

    def choice(self, seq: Any) -> Any:
        return seq[int(self.random() * len(seq))]


def _phone(rnd: random.Random) -> str:
    return f"+7({rnd.randint(900, 999)}){rnd.randint(100, 999)}-{rnd.randint(10, 99)}-{rnd.randint(10, 99)}"


def _archived(row: dict[str, Any]) -> bool:
    return bool(row.get("e_date")) and row["e_date"] != ACTIVE_E_DATE


def _sort_key(order: str) -> Callable[[dict[str, Any]], Any]:
    if order == "name":
        return lambda r: (r["name"].casefold(), r["id"])
    if order == "-id":
        return lambda r: -r["id"]
    return lambda r: r["id"]


def _int(value: Any, default: int | None) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _default(kind: str) -> Any:
    return {"num": 0, "bool": 0, "str": "", "list": [], "money": "0.00", "dob": "", "json": []}.get(kind)


def _check(spec: Model, name: str, value: Any) -> Callable[[dict[str, Any]], bool] | None:
    """One index filter as a row predicate (None: the filter is handled elsewhere)."""
    how, column = spec.filters[name]
    if name == "id":
        return None
    if how == "like":
        needle = str(value).casefold()
        return lambda r: any(needle in str(v).casefold()
                             for v in (r[column] if isinstance(r[column], list) else [r[column]]))
    if how == "has":
        wanted = _int(value, None)
        return lambda r: wanted in r[column]
    if how in ("from", "to"):
        bound = _parse_date(value)
        if bound is None:
            return None
        if how == "from":
            return lambda r: (d := _parse_date(r[column])) is not None and d >= bound
        return lambda r: (d := _parse_date(r[column])) is not None and d <= bound
    wanted_any: set[Any] = {str(v) for v in value} if isinstance(value, list) else {str(value)}
    return lambda r: str(r[column]) in wanted_any


def _clean(spec: Model, values: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """Known attributes converted to their served form; unknown keys ignored, as Yii's safe attributes."""
    kinds = spec.kinds
    clean: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for name, value in values.items():
        kind = kinds.get(name)
        if kind is None or name == "id":
            continue
        try:
            clean[name] = _convert(kind, value)
        except ValueError:
            problems.append((name, f"Значение «{LABELS.get(name, name)}» неверно."))
    if "email" in clean and any("@" not in e for e in clean["email"]):
        problems.append(("email", f"Значение «{LABELS['email']}» не является правильным email адресом."))
    for name in spec.required:
        value = clean.get(name) if (creating or name in values) else "set"
        if value in (None, "", []) and name not in dict(problems):
            problems.append((name, f"Необходимо заполнить «{LABELS.get(name, name)}»."))
    if "is_study" in clean and clean["is_study"] not in (0, 1):
        problems.append(("is_study", f"Значение «{LABELS['is_study']}» неверно."))
    if spec.cls == "Customer" and "legal_type" in clean and clean["legal_type"] not in (1, 2, None):
        problems.append(("legal_type", f"Значение «{LABELS['legal_type']}» неверно."))
    if problems:
        raise Invalid(problems)
    return clean


def _convert(kind: str, value: Any) -> Any:
    if kind in ("int", "num", "bool"):
        if value in (None, "") and kind == "int":
            return None
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return int(value)
    if kind == "list":
        if value in (None, ""):
            return []
        return list(value) if isinstance(value, (list, tuple)) else [value]
    if kind == "money":
        return f"{float(value):.2f}"
    if kind in ("dob", "date"):
        if value in (None, ""):
            return "" if kind == "dob" else None
        parsed = _parse_date(value)
        if parsed is None:
            raise ValueError(value)
        return parsed.strftime("%d.%m.%Y") if kind == "dob" else parsed.isoformat()
    if kind == "json":
        return value if value else []
    if value is None:
        return None if kind == "datetime" else ""
    if isinstance(value, (dict, list)):
        raise ValueError(value)
    return str(value)


def create_app(records: int = 100, *, email: str = "admin@example.com", api_key: str = "emulator",
               branch: int = 1, branches: int = 1, token_ttl: float = 3600.0, seed: int = 1,
               page_size: int = 20, max_page_size: int = 50, honour_per_page: bool = True,
               past_end: str = "empty", delete_mode: str = "hard", validation_style: str = "list",
               log_access: bool = True, retry_after_header: bool = True) -> AlfaApp:
    """An Alfa CRM with RECORDS customers (and ~RECORDS/2 lessons and payments) in BRANCHES branches."""
    app = AlfaApp(email=email, api_key=api_key, branch=branch, branches=branches, token_ttl=token_ttl,
                  page_size=page_size, max_page_size=max_page_size, honour_per_page=honour_per_page,
                  past_end=past_end, delete_mode=delete_mode, validation_style=validation_style,
                  log_access=log_access, retry_after_header=retry_after_header)
    app.seed(records, _FastRandom(seed))
    app.finish_seed()
    return app
