"""Alfa CRM's models as data (fields, order, filters, parents) and how values are checked and served."""
from __future__ import annotations

import functools
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from ..base import Response

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
    if "email" in clean and any(e and "@" not in e for e in clean["email"]):  # Yii skips empty values
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
