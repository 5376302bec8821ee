"""Rukovoditel 3.6.2 REST API (``/api/rest.php``) as the spec's "Emulator requirements" describe it.

One endpoint; every call carries ``key``, ``username``, ``password`` and ``action``; entities and
fields are numeric ids; ``select`` answers display values with ``<id>_db_value`` twins, dates as
``m/d/Y H:i`` strings in the app time zone, and pages with the real quirks (a page past the end
repeats the last page). Errors come in the three PHP 8 shapes: HTTP 500 + JSON, HTTP 500 with an
empty body (string error codes such as ``login_fail``), and ``<app_db_error>`` HTML with HTTP 200.
Everything is answered as ``text/html; charset=UTF-8`` with ``\\/``-escaped JSON.

Seed: the default entities (Users, Projects, Tasks, Tickets, Discussions) and the spec's §13
"Contacts" entity (id 25, fields 213-225) with N Russian sample records, reports 66/67, users
``admin`` (administrator), ``manager`` (no Contacts access) and ``client`` (only view_assigned).
"""
from __future__ import annotations

import json
import random
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from ..translit import identifier
from .base import EmulatorApp, Request, Response

HTML = "text/html; charset=UTF-8"
RESERVED = {"fieldtype_id", "fieldtype_date_added", "fieldtype_date_updated", "fieldtype_created_by",
            "fieldtype_parent_item_id"}
SINGLE_CHOICE = {"fieldtype_dropdown", "fieldtype_radioboxes"}
MULTI_CHOICE = {"fieldtype_dropdown_multiple", "fieldtype_checkboxes", "fieldtype_tags"}
USERS = {"fieldtype_users", "fieldtype_users_ajax", "fieldtype_grouped_users"}
LINKS = {"fieldtype_entity", "fieldtype_entity_ajax"}
DB_VALUE = SINGLE_CHOICE | MULTI_CHOICE | USERS | LINKS
DATES = {"fieldtype_input_date", "fieldtype_input_date_extra"}
DATETIMES = {"fieldtype_input_datetime"}
BOOLEANS = {"fieldtype_boolean", "fieldtype_boolean_checkbox"}
# one-line inputs live in varchar(255) columns: MySQL cuts a longer value (in characters) silently
TEXT_INPUTS = {"fieldtype_input", "fieldtype_input_email", "fieldtype_input_url", "fieldtype_phone",
               "fieldtype_input_masked"}
INPUT_LENGTH = 255
ADMIN_ONLY = {"get_entities", "get_field_choices", "get_global_lists"}
ACTION_RIGHT = {"select": "view", "insert_comment": "view", "insert": "create", "update": "update",
                "delete": "delete"}
WIDE = '{"width":"input-large"}'


class ApiError(Exception):
    """``api::response_error``: CODE None is a plain error, a string code is a PHP 8 fatal."""

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.message, self.code = message, code


class DbError(Exception):
    """``db_query`` failing: the HTML ``<app_db_error>`` block, HTTP 200."""

    def __init__(self, errno: int, message: str, query: str):
        super().__init__(message)
        self.errno, self.message, self.query = errno, message, query


class Fatal(Exception):
    """A PHP fatal error: HTTP 500, empty body."""


@dataclass
class FieldDef:
    id: int
    type: str
    name: str
    heading: bool = False
    config: str = WIDE
    choices: list[tuple[int, str]] = field(default_factory=list)
    target: int = 0          # entity fields: the linked entity
    unique: bool = False

    @property
    def column(self) -> str:
        return f"field_{self.id}"


@dataclass
class EntityDef:
    id: int
    name: str
    fields: list[FieldDef]
    parent: int = 0
    sort_order: int = 0

    def field(self, field_id: int) -> FieldDef | None:
        return next((f for f in self.fields if f.id == field_id), None)

    def reserved(self, ftype: str) -> FieldDef | None:
        return next((f for f in self.fields if f.type == ftype), None)

    @property
    def heading(self) -> FieldDef | None:
        return next((f for f in self.fields if f.heading), None)


@dataclass
class Item:
    id: int
    date_added: int
    date_updated: int = 0
    created_by: int | None = 1
    parent_item_id: int = 0
    values: dict[int, str] = field(default_factory=dict)


@dataclass
class User:
    id: int
    username: str
    password: str
    group_id: int
    firstname: str
    lastname: str
    email: str
    active: bool = True

    @property
    def name(self) -> str:
        return f"{self.firstname} {self.lastname}"


def _reserved(ids: tuple[int, int, int, int, int | None], date_updated: int | None = None) -> list[FieldDef]:
    id_, added, created, parent, updated = ids
    out = [FieldDef(id_, "fieldtype_id", "ID", config=""),
           FieldDef(added, "fieldtype_date_added", "Date Added", config="")]
    if updated:
        out.append(FieldDef(updated, "fieldtype_date_updated", "Date Updated", config=""))
    out.append(FieldDef(created, "fieldtype_created_by", "Created By", config=""))
    if parent:
        out.append(FieldDef(parent, "fieldtype_parent_item_id", "Parent", config=""))
    return out


def _contacts_fields(ru: bool) -> list[FieldDef]:
    def n(en: str, russian: str) -> str:
        return russian if ru else en

    return [
        *_reserved((208, 209, 211, 212, 210)),
        FieldDef(207, "fieldtype_action", "Action", config=""),
        FieldDef(213, "fieldtype_input", n("First Name", "Имя"), heading=True),
        FieldDef(214, "fieldtype_input", n("Last Name", "Фамилия")),
        FieldDef(215, "fieldtype_input_email", n("Email", "E-mail")),
        FieldDef(216, "fieldtype_phone", n("Phone", "Телефон")),
        FieldDef(217, "fieldtype_dropdown", n("Status", "Статус"), choices=[
            (68, n("New", "Новый")), (69, n("Active", "Активный")), (70, n("Inactive", "Неактивный"))]),
        FieldDef(218, "fieldtype_input_date", n("Birthday", "Дата рождения")),
        FieldDef(219, "fieldtype_input_datetime", n("Last Contacted", "Последний контакт")),
        FieldDef(220, "fieldtype_dropdown_multiple", n("Tags", "Метки"), choices=[
            (71, n("Customer", "Клиент")), (72, n("Partner", "Партнёр")), (73, n("Supplier", "Поставщик"))]),
        FieldDef(221, "fieldtype_input_numeric", n("Score", "Баллы")),
        FieldDef(222, "fieldtype_textarea", n("Notes", "Заметки")),
        FieldDef(223, "fieldtype_users", n("Owner", "Ответственный"),
                 config='{"width":"input-large","display_as":"dropdown"}'),
        FieldDef(224, "fieldtype_boolean_checkbox", n("VIP", "VIP")),
        FieldDef(225, "fieldtype_entity", n("Company", "Компания"), target=21,
                 config='{"width":"input-large","entity_id":"21","display_as":"dropdown"}'),
    ]


def _entities(ru: bool) -> dict[int, EntityDef]:
    """The default install plus the spec's Contacts entity, with the field ids a real one has."""
    status = [(41, "New"), (42, "Open"), (43, "Waiting"), (44, "Closed"), (45, "Canceled")]
    priority = [(46, "Urgent"), (47, "High"), (48, "Medium")]
    users = [FieldDef(12, "fieldtype_user_username", "Username", config=""),
             FieldDef(7, "fieldtype_user_firstname", "First Name", config=""),
             FieldDef(8, "fieldtype_user_lastname", "Last Name", config=""),
             FieldDef(9, "fieldtype_user_email", "Email", config=""),
             FieldDef(5, "fieldtype_user_status", "Status", config=""),
             FieldDef(6, "fieldtype_user_accessgroups", "Group", config="")]
    projects = [FieldDef(197, "fieldtype_date_updated", "Date Updated", config=""),
                *_reserved((153, 154, 155, 0, None)),
                FieldDef(156, "fieldtype_dropdown", "Status", choices=status),
                FieldDef(157, "fieldtype_dropdown", "Priority", choices=priority),
                FieldDef(158, "fieldtype_input", "Name", heading=True),
                FieldDef(203, "fieldtype_input_date", "Start Date"),
                FieldDef(159, "fieldtype_textarea", "Description"),
                FieldDef(160, "fieldtype_attachments", "Attachments"),
                FieldDef(162, "fieldtype_input_numeric", "Estimated Time"),
                FieldDef(161, "fieldtype_users", "Team")]
    tasks = [FieldDef(198, "fieldtype_date_updated", "Date Updated", config=""),
             *_reserved((164, 165, 166, 0, None)),
             FieldDef(167, "fieldtype_dropdown", "Type", choices=[(49, "Task"), (50, "Change"), (51, "Bug")]),
             FieldDef(168, "fieldtype_input", "Name", heading=True),
             FieldDef(204, "fieldtype_input_date", "Due Date"),
             FieldDef(169, "fieldtype_dropdown", "Status", choices=[(52, "New"), (53, "Open"), (54, "Done")]),
             FieldDef(170, "fieldtype_dropdown", "Priority", choices=[(55, "High"), (56, "Medium")]),
             FieldDef(171, "fieldtype_users", "Assigned To"),
             FieldDef(172, "fieldtype_textarea", "Description"),
             FieldDef(177, "fieldtype_input_numeric", "Estimated Time"),
             FieldDef(173, "fieldtype_input_date", "Start Date"),
             FieldDef(174, "fieldtype_input_date", "End Date"),
             FieldDef(175, "fieldtype_input_numeric", "Progress"),
             FieldDef(176, "fieldtype_attachments", "Attachments")]
    tickets = [FieldDef(199, "fieldtype_date_updated", "Date Updated", config=""),
               *_reserved((178, 179, 180, 0, None)),
               FieldDef(181, "fieldtype_dropdown", "Type", choices=[(57, "Question"), (58, "Problem")]),
               FieldDef(182, "fieldtype_input", "Subject", heading=True),
               FieldDef(183, "fieldtype_textarea", "Description"),
               FieldDef(184, "fieldtype_dropdown", "Status", choices=[(59, "New"), (60, "Closed")])]
    discussions = [FieldDef(200, "fieldtype_date_updated", "Date Updated", config=""),
                   *_reserved((186, 187, 188, 0, None)),
                   FieldDef(189, "fieldtype_input", "Name", heading=True),
                   FieldDef(190, "fieldtype_textarea", "Description"),
                   FieldDef(191, "fieldtype_dropdown", "Status", choices=[(61, "Open"), (62, "Closed")])]
    return {e.id: e for e in [
        EntityDef(25, "Контакты" if ru else "Contacts", _contacts_fields(ru), sort_order=0),
        EntityDef(21, "Projects", projects, sort_order=1),
        EntityDef(22, "Tasks", tasks, parent=21, sort_order=1),
        EntityDef(23, "Tickets", tickets, parent=21, sort_order=2),
        EntityDef(24, "Discussions", discussions, parent=21, sort_order=3),
        EntityDef(1, "Users", users, sort_order=10),
    ]}


FIRST = ["Иван", "Мария", "Алексей", "Ольга", "Дмитрий", "Елена", "Сергей", "Анна", "Андрей",
         "Наталья", "Павел", "Татьяна", "Михаил", "Светлана", "Николай", "Юлия"]
LAST = ["Петров", "Иванова", "Смирнов", "Кузнецова", "Попов", "Соколова", "Лебедев", "Козлова",
        "Новиков", "Морозова", "Волков", "Алексеева", "Фёдоров", "Михайлова", "Орлов", "Белова"]
LATIN = {"Иван": "ivan", "Мария": "maria", "Алексей": "alexey", "Ольга": "olga", "Дмитрий": "dmitry",
         "Елена": "elena", "Сергей": "sergey", "Анна": "anna", "Андрей": "andrey", "Наталья": "natalia",
         "Павел": "pavel", "Татьяна": "tatiana", "Михаил": "mikhail", "Светлана": "svetlana",
         "Николай": "nikolay", "Юлия": "yulia"}
COMPANIES = ["ООО «Ромашка»", "АО «Вектор»", "ИП Смирнов А. В.", "ООО «Северный ветер»", "ООО «Техносервис»"]
NOTES = ["Звонить после 15:00", "Просил прислать прайс\nи договор", "Постоянный клиент", "",
         "Интересуется оптом", "Скидка 5% <b>согласована</b>"]


class RukovoditelApp(EmulatorApp):
    kind = "rukovoditel"

    def __init__(self, records: int = 100, *, username: str = "admin", password: str = "emulator",
                 api_key: str = "emulator", timezone: str = "Europe/Moscow", seed: int = 1,
                 language: str = "en", error_mode: str = "php8", display_errors: bool = False,
                 unique_email: bool = False):
        super().__init__()
        if error_mode not in ("php8", "legacy"):
            raise ValueError("error_mode must be php8 or legacy")
        self.api_key = api_key
        self.tz = ZoneInfo(timezone)
        self.timezone = timezone
        self.error_mode = error_mode
        self.display_errors = display_errors
        self.yes_no = ("Да", "Нет") if language == "ru" else ("Yes", "No")
        self.date_format, self.datetime_format = "m/d/Y", "m/d/Y H:i"
        self._offset = 0.0
        self._frozen: float | None = None
        self.entities = _entities(language == "ru")
        self.fields = {f.id: (e, f) for e in self.entities.values() for f in e.fields}
        self.entities[25].field(215).unique = unique_email
        self.items: dict[int, dict[int, Item]] = {eid: {} for eid in self.entities}
        self.next_id = dict.fromkeys(self.entities, 1)
        self.reports = {66: (25, "210_desc,208_asc"), 67: (25, "208_asc")}
        self.groups = {0: None, 4: {21: "view,create,update,delete,reports", 22: "view,create,update,delete"},
                       6: {21: "view_assigned"}}
        self.users: dict[int, User] = {}
        self._comments = 0
        for user in (User(1, username, password, 0, "Admin", "User", "admin@example.com"),
                     User(2, "manager", password, 4, "Mary", "Manager", "manager@example.com"),
                     User(3, "client", password, 6, "Carl", "Client", "carl@example.com")):
            self._add_user(user, created_by=None if user.id == 1 else 1)
        self._seed(records, random.Random(seed))

    # -- clock and time formats ---------------------------------------------------------------
    def now(self) -> int:
        return int(self._frozen if self._frozen is not None else time.time() + self._offset)

    def format_ts(self, ts: int, fmt: str) -> str:
        """PHP ``date()`` for the few letters Rukovoditel's formats use."""
        moment = datetime.fromtimestamp(ts, self.tz)
        letters = {"d": "%d", "m": "%m", "Y": "%Y", "y": "%y", "H": "%H", "i": "%M", "s": "%S",
                   "j": str(moment.day), "n": str(moment.month), "G": str(moment.hour)}
        return "".join(moment.strftime(letters[c]) if c in letters and "%" in letters[c]
                       else letters.get(c, c) for c in fmt)

    def timestamp(self, text: str) -> int:
        """``get_date_timestamp``: date_parse + mktime in the app time zone; zone suffixes ignored."""
        text = str(text).strip()
        m = re.match(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?", text)
        if m:
            y, mo, d = m.group(1, 2, 3)
        else:
            m = re.match(r"(\d{1,2})/(\d{1,2})/(\d{4})(?: (\d{1,2}):(\d{2})(?::(\d{2}))?)?", text)
            if not m:
                return 0
            mo, d, y = m.group(1, 2, 3)
        h, mi, s = (int(v or 0) for v in m.group(4, 5, 6))
        try:
            return int(datetime(int(y), int(mo), int(d), h, mi, s, tzinfo=self.tz).timestamp())
        except ValueError:
            return 0

    # -- seed -------------------------------------------------------------------------------
    def _add_user(self, user: User, created_by: int | None) -> None:
        self.users[user.id] = user
        self.items[1][user.id] = Item(user.id, self.now() - 90 * 86400, created_by=created_by, values={
            12: user.username, 7: user.firstname, 8: user.lastname, 9: user.email, 5: "1",
            6: str(user.group_id)})
        self.next_id[1] = max(self.next_id[1], user.id + 1)

    def _new_item(self, entity: int, when: int, values: dict[int, str], parent: int = 0,
                  created_by: int | None = 1) -> Item:
        item = Item(self.next_id[entity], when, created_by=created_by, parent_item_id=parent, values={
            f.id: "" for f in self.entities[entity].fields if f.type not in RESERVED | {"fieldtype_action"}})
        item.values.update(values)
        self.items[entity][item.id] = item
        self.next_id[entity] += 1
        return item

    def _seed(self, records: int, rnd: random.Random) -> None:
        start = self.now() - 30 * 86400
        for i, name in enumerate(COMPANIES):
            self._new_item(21, start - 86400 * (10 - i), {158: name, 156: str(41 + i % 3), 161: "1,2"})
        self._new_item(22, start, {168: "Подготовить КП", 169: "52"}, parent=1)
        for i in range(records):
            first, last = rnd.choice(FIRST), rnd.choice(LAST)
            if first[-1] in "ая" and not last.endswith("а"):
                last += "а"
            added = start + i * (29 * 86400 // max(records, 1)) + rnd.randrange(3600)
            values = {213: first, 214: last, 215: f"{LATIN[first]}.{i + 1}@example.ru" if i % 7 else "",
                      216: f"+7 (9{rnd.randrange(10, 99)}) {rnd.randrange(100, 999)}-{rnd.randrange(10, 99)}-"
                           f"{rnd.randrange(10, 99)}",
                      217: str(rnd.choice((68, 69, 69, 70))),
                      218: str(self.timestamp(f"{rnd.randrange(1960, 2003)}-{rnd.randrange(1, 13):02d}-"
                                             f"{rnd.randrange(1, 29):02d}")) if i % 3 else "0",
                      219: str(added + rnd.randrange(86400)) if i % 2 else "0",
                      220: ",".join(str(c) for c in sorted(rnd.sample((71, 72, 73), rnd.randrange(3)))),
                      221: rnd.choice(("10", "42.5", "7", "100", "0", "")),
                      222: rnd.choice(NOTES), 223: rnd.choice(("1", "1,2", "2", "")),
                      224: rnd.choice(("true", "false")), 225: rnd.choice(("1", "2", "3", ""))}
            item = self._new_item(25, added, values)
            if i % 5 < 3:
                item.date_updated = added + rnd.randrange(60, 86400)

    # -- transport ----------------------------------------------------------------------------
    def params(self, request: Request) -> dict[str, Any]:
        """PHP's ``$_REQUEST``, or the decoded JSON body when no form body was sent (3.5+)."""
        ctype = request.headers.get("content-type", "").lower()
        pairs: list[tuple[str, Any]] = []
        if ctype.startswith("application/x-www-form-urlencoded"):
            pairs = parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        elif ctype.startswith("multipart/form-data"):
            message = BytesParser(policy=HTTP).parsebytes(
                f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode() + request.body)
            pairs = [(part.get_param("name", header="content-disposition"),
                      part.get_payload(decode=True).decode("utf-8", "replace"))
                     for part in message.iter_parts() if not part.get_filename()]
        if not pairs and request.body:
            try:
                decoded = json.loads(request.body)
            except ValueError:
                decoded = None
            if isinstance(decoded, dict):
                if "page" in request.query:
                    decoded["page"] = request.query["page"]
                else:
                    decoded.pop("page", None)
                return decoded
            if request.method == "POST":
                return {}
        return _php_nest([*request.query.items(), *pairs])

    def operation(self, request: Request) -> str:
        action = self.params(request).get("action")
        return action if isinstance(action, str) and action else "(none)"

    def handle(self, request: Request) -> Response:
        if request.path.rstrip("/") != "/api/rest.php":
            return Response.html("<h1>Not Found</h1>", 404)
        self._warnings: list[str] = []
        try:
            with self.lock:
                data = self._dispatch(self.params(request))
        except ApiError as exc:
            return self._error(exc)
        except DbError as exc:
            return Response.html(_db_error_html(exc))
        except Fatal:
            return Response.empty(500)
        body = Response.json(data, escape_slashes=True, content_type=HTML)
        if self._warnings:
            body.body = "".join(self._warnings).encode() + body.body
        return body

    def _error(self, exc: ApiError) -> Response:
        if self.error_mode == "legacy":
            return Response.json({"status": "error", "error_code": exc.code or "", "error_message": exc.message},
                                 200, escape_slashes=True, content_type=HTML)
        if exc.code:   # http_response_code('login_fail') throws a TypeError on PHP 8
            return Response.empty(500)
        return Response.json({"status": "error", "error_code": 500, "error_message": exc.message}, 500,
                             escape_slashes=True, content_type=HTML)

    def _dispatch(self, p: dict[str, Any]) -> dict[str, Any]:
        if not p.get("key"):
            raise ApiError("key is required")
        if p["key"] != self.api_key:
            raise ApiError("API Key mismatch")
        for name in ("username", "password"):
            if not p.get(name):
                raise ApiError(f"{name} is required")
        user = next((u for u in self.users.values() if u.username == p["username"]), None)
        if user is None or user.password != p["password"]:
            raise ApiError("No match for Username and/or Password", "login_fail")
        if not user.active:
            raise ApiError("Your account is not active", "account_not_active")
        action = p.get("action")
        if not action:
            raise ApiError("action is required")
        handler = getattr(self, f"_action_{action}", None) if isinstance(action, str) else None
        if handler is None:
            raise ApiError(f'action "{action}" not exist')
        if action in ADMIN_ONLY and user.group_id != 0:
            raise ApiError("Access denied", "access_denied")
        if action in ACTION_RIGHT:
            entity_id = _php_int(_require(p, "entity_id"))
            access = self.groups.get(user.group_id)
            if access is not None and ACTION_RIGHT[action] not in access.get(entity_id, "").split(","):
                raise ApiError("Access denied", "access_denied")
        self.user = user
        result = handler(p)
        return result if isinstance(result, dict) and "status" in result else {"status": "success", "data": result}

    # -- metadata actions ---------------------------------------------------------------------
    def _action_login(self, p: dict[str, Any]) -> dict[str, Any]:
        u = self.user
        return {"id": str(u.id), "group_id": u.group_id, "multiple_access_groups": "", "language": "english.php",
                "name": u.name, "email": u.email, "username": u.username, "is_email_verified": "1", "photo": ""}

    def _action_get_entities(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        out = []

        def walk(parent: int, path: list[str]) -> None:
            for e in sorted((e for e in self.entities.values() if e.parent == parent),
                            key=lambda e: (e.sort_order, e.name)):
                out.append({"id": str(e.id), "parent_id": str(e.parent), "group_id": "0", "group_name": None,
                            "name": e.name, "notes": "", "sort_order": str(e.sort_order), "level": len(path),
                            "path": path})
                walk(e.id, [*path, str(e.id)])
        walk(0, [])
        return out

    def _entity_or_error(self, p: dict[str, Any]) -> EntityDef:
        eid = _php_int(_require(p, "entity_id"))
        if eid not in self.entities:
            raise ApiError(f"Entity #{eid} does not exist")
        return self.entities[eid]

    def _action_get_entity_fields(self, p: dict[str, Any]) -> dict[str, Any]:
        return {str(f.id): {"id": str(f.id), "type": f.type, "name": f.name, "short_name": "",
                            "is_heading": "1" if f.heading else "0", "tooltip": "", "is_required": "0",
                            "required_message": "", "configuration": f.config}
                for f in self._entity_or_error(p).fields}

    def _action_get_field_choices(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        entity = self._entity_or_error(p)
        fid = _php_int(_require(p, "field_id"))
        f = entity.field(fid)
        if f is None:
            raise ApiError(f"Field #{fid} does not exist in Entity #{entity.id}")
        return [{"id": str(cid), "parent_id": "0", "fields_id": str(f.id), "is_active": "1", "name": name,
                 "icon": "", "is_default": "1" if i == 0 and f.type in SINGLE_CHOICE else "0", "bg_color": "",
                 "sort_order": str(i + 1), "users": "", "value": "", "filename": "", "level": 0}
                for i, (cid, name) in enumerate(f.choices)]

    def _action_get_global_lists(self, p: dict[str, Any]) -> list[Any]:
        return []

    def _action_get_global_list_choices(self, p: dict[str, Any]) -> list[Any]:
        _require(p, "list_id")
        return []

    # -- select ------------------------------------------------------------------------------
    def _action_select(self, p: dict[str, Any]) -> dict[str, Any]:
        eid = _php_int(p["entity_id"])
        base_sql = f"select e.*  from app_entity_{eid} e  where e.id&gt;0 "
        order = None
        if p.get("reports_id"):
            report = self.reports.get(_php_int(p["reports_id"]))
            if report is None or report[0] != eid:
                raise ApiError(f"Report {p['reports_id']} not found for Entity {eid}")
            order = report[1]
        columns = self._selected_fields(eid, p.get("select_fields"))
        if eid not in self.entities:
            raise DbError(1146, f"Table 'rukovoditel.app_entity_{eid}' doesn't exist", base_sql)
        entity = self.entities[eid]
        rows = list(self.items[eid].values())
        filters = p.get("filters") or {}
        if isinstance(filters, dict):
            for key, value in filters.items():
                rows = self._filter(entity, rows, str(key), value)
        parent = _php_int(p.get("parent_item_id"))
        if parent > 0:
            rows = [r for r in rows if r.parent_item_id == parent]
        hide = None if isinstance(filters, dict) and "id" in filters else self.listing_filter(str(eid), entity.name)
        if hide is not None:
            rows = [r for r in rows if not hide(r.id)]
        rows = self._ordered(entity, rows, order)
        limit = _php_int(p.get("limit"))
        per_page = _php_int(p.get("rows_per_page"))
        if limit > 0 and per_page > 0:
            raise DbError(1064, "You have an error in your SQL syntax; check the manual that corresponds to your "
                          f"MariaDB server version for the right syntax to use near 'limit 0, {per_page}' at line 1",
                          f"{base_sql} limit {limit} limit 0, {per_page}")
        if limit > 0:
            rows = rows[:limit]
        envelope: dict[str, Any] = {"status": "success"}
        if per_page > 0:
            count = len(rows)
            pages = -(-count // per_page)
            raw_page = p.get("page")
            page = _php_int(raw_page) if raw_page not in (None, "") else 1
            page = 1 if page == 0 else page
            page = min(page, pages)
            offset = per_page * (max(page, 1) - 1)
            rows = rows[offset:offset + per_page]
            extra = {"page": page, "number_of_rows": count, "number_of_pages": pages}
        elif "rows_per_page" in p:
            extra = {}
        else:
            extra = {"page": 1, "number_of_rows": len(rows), "number_of_pages": 1}
        envelope["data"] = [self._row(entity, r, columns) for r in rows]
        envelope.update(extra)
        return envelope

    def _selected_fields(self, eid: int, select_fields: Any) -> list[FieldDef]:
        entity = self.entities.get(eid)
        listed = [f for f in entity.fields if f.type != "fieldtype_action"] if entity else []
        if select_fields in (None, ""):
            return listed
        tokens = [t.strip() for t in str(select_fields).split(",")]
        bad = next((t for t in tokens if not re.fullmatch(r"-?\d+", t)), None)
        if bad is not None:
            raise DbError(1054, f"Unknown column '{bad}' in 'WHERE'",
                          "select f.*, t.name as tab_name from app_fields f, app_forms_tabs t where f.type not in "
                          f"('fieldtype_action') and f.entities_id='{eid}'  and f.id in ({select_fields}) and "
                          "f.forms_tabs_id=t.id order by t.sort_order, t.name, f.sort_order, f.name")
        wanted = {int(t) for t in tokens}
        return [f for f in listed if f.id in wanted]

    def _row(self, entity: EntityDef, item: Item, columns: list[FieldDef]) -> dict[str, Any]:
        row: dict[str, Any] = {
            "id": str(item.id), "parent_item_id": str(item.parent_item_id),
            "date_added": self.format_ts(item.date_added, self.datetime_format),
            "date_updated": self.format_ts(item.date_updated, self.datetime_format),
            "created_by": None if item.created_by is None else str(item.created_by)}
        for f in columns:
            row[str(f.id)] = self._display(entity, item, f)
            if f.type in DB_VALUE:
                row[f"{f.id}_db_value"] = item.values.get(f.id, "")
        return row

    def _display(self, entity: EntityDef, item: Item, f: FieldDef) -> str:
        t = f.type
        if t == "fieldtype_id":
            return str(item.id)
        if t == "fieldtype_date_added":
            return self.format_ts(item.date_added, self.datetime_format)
        if t == "fieldtype_date_updated":
            return self.format_ts(item.date_updated, self.datetime_format) if item.date_updated else ""
        if t == "fieldtype_created_by":
            user = self.users.get(item.created_by or 0)
            return user.name if user else ""
        if t == "fieldtype_parent_item_id":
            return self._heading(entity.parent, item.parent_item_id) if item.parent_item_id else ""
        raw = item.values.get(f.id, "")
        ids = [v for v in raw.split(",") if v]
        if t in SINGLE_CHOICE | MULTI_CHOICE:
            names = dict(f.choices)
            return ", ".join(names.get(_php_int(v), "") for v in ids)
        if t in USERS:
            return ", ".join(self.users[_php_int(v)].name for v in ids if _php_int(v) in self.users)
        if t in LINKS:
            return ", ".join(self._heading(f.target, _php_int(v)) for v in ids)
        if t in DATES | DATETIMES:
            ts = _php_int(raw)
            return self.format_ts(ts, self.date_format if t in DATES else self.datetime_format) if ts else ""
        if t in BOOLEANS:
            return self.yes_no[0] if raw in ("true", "1") else self.yes_no[1]
        if t == "fieldtype_textarea":
            return raw.replace("\n", "<br />\n").strip()
        return raw

    def _heading(self, eid: int, item_id: int) -> str:
        entity, item = self.entities.get(eid), self.items.get(eid, {}).get(item_id)
        if entity is None or item is None or entity.heading is None:
            return ""
        return item.values.get(entity.heading.id, "")

    def _ordered(self, entity: EntityDef, rows: list[Item], order: str | None) -> list[Item]:
        rows = sorted(rows, key=lambda r: r.id)
        for part in reversed((order or "").split(",")):
            fid, _, direction = part.partition("_")
            f = entity.field(_php_int(fid))
            if f is None:
                continue
            key = {"fieldtype_id": lambda r: r.id, "fieldtype_date_added": lambda r: r.date_added,
                   "fieldtype_date_updated": lambda r: r.date_updated}.get(
                f.type, lambda r, fid=f.id: r.values.get(fid, ""))
            rows.sort(key=key, reverse=direction == "desc")
        return rows

    # -- filters ------------------------------------------------------------------------------
    def _filter(self, entity: EntityDef, rows: list[Item], key: str, value: Any) -> list[Item]:
        if key in ("id", "parent_item_id"):
            wanted = {_php_int(v) for v in str(value).split(",")}
            attr = "id" if key == "id" else "parent_item_id"
            return [r for r in rows if getattr(r, attr) in wanted]
        if key in ("date_added", "date_updated"):
            return self._date_range(rows, lambda r: getattr(r, key), value) if isinstance(value, str) else rows
        if not re.fullmatch(r"\d+", key) or int(key) not in self.fields:
            return rows
        owner, f = self.fields[int(key)]
        condition = "include"
        if isinstance(value, dict):
            condition = value.get("condition") or "include"
            value = value.get("value", "")
        value = "" if value is None else str(value) if not isinstance(value, (dict, list)) else value
        where = f"{_sql(entity)}  and (field_{f.id}=&#039;{value}&#039;)"
        if owner.id != entity.id or f.type in ("fieldtype_id", "fieldtype_parent_item_id"):
            raise DbError(1054, f"Unknown column 'field_{f.id}' in 'WHERE'", where)
        if f.type in ("fieldtype_date_added", "fieldtype_date_updated"):
            attr = "date_added" if f.type == "fieldtype_date_added" else "date_updated"
            if condition == "filter_by_days":
                return self._date_range(rows, lambda r: getattr(r, attr), value)
            return rows
        if f.type == "fieldtype_created_by":
            wanted = {self.user.id if v == "current_user_id" else _php_int(v) for v in value.split(",")}
            return [r for r in rows if r.created_by in wanted]
        raw = lambda r: r.values.get(f.id, "")  # noqa: E731
        if condition in ("empty_value", "not_empty_value"):
            numeric_empty = f.type in DATES | DATETIMES | SINGLE_CHOICE
            empty = lambda r: (raw(r) in ("", "0")) if numeric_empty else raw(r) == ""  # noqa: E731
            return [r for r in rows if empty(r) == (condition == "empty_value")]
        if value != "" and condition in ("search", "search_match"):
            if f.type == "fieldtype_phone":
                digits = re.sub(r"\D", "", value)
                return [r for r in rows if digits in re.sub(r"\D", "", raw(r))]
            return [r for r in rows if value.lower() in raw(r).lower()]
        exclude = condition == "exclude"
        if f.type in SINGLE_CHOICE:
            if value == "":
                return rows
            tokens = [t.strip() for t in value.split(",")]
            bad = next((t for t in tokens if not re.fullmatch(r"-?\d+(\.\d+)?", t)), None)
            if bad is not None:
                raise DbError(1054, f"Unknown column '{bad}' in 'WHERE'",
                              f"{_sql(entity)}  and (e.field_{f.id} in ({value}) )")
            wanted = {float(t) for t in tokens}
            return [r for r in rows if (_php_float(raw(r)) in wanted) != exclude]
        if f.type in MULTI_CHOICE | USERS | LINKS:
            wanted = {str(self.user.id) if v == "current_user_id" else v.strip() for v in value.split(",")}
            return [r for r in rows if bool(wanted & set(raw(r).split(","))) != exclude]
        if f.type in DATES | DATETIMES:
            return self._date_range(rows, lambda r: _php_int(raw(r)), value)
        if f.type == "fieldtype_input_numeric":
            return [r for r in rows if _numeric_match(_php_float(raw(r)), value)]
        if f.type in BOOLEANS:
            return [r for r in rows if (raw(r) == value) != exclude]
        return [r for r in rows if raw(r).rstrip().lower() == value.rstrip().lower()]

    def _date_range(self, rows: list[Item], column: Any, value: Any) -> list[Item]:
        parts = ("," + str(value)).split(",")
        if len(parts) < 3 and self.display_errors:
            self._warnings.append("<br />\n<b>Warning</b>:  Undefined array key 2 in <b>includes/classes/reports/"
                                  "reports.php</b> on line <b>924</b><br />\n")
        start, end = parts[1].strip(), parts[2].strip() if len(parts) > 2 else ""
        low = self.timestamp(start) if start else None
        high = (self.timestamp(end) + (86399 if len(end) == 10 else 0)) if end else None
        return [r for r in rows if column(r) != 0 and (low is None or column(r) >= low)
                and (high is None or column(r) <= high)]

    # -- writes -------------------------------------------------------------------------------
    def _writable_entity(self, p: dict[str, Any]) -> EntityDef:
        eid = _php_int(p["entity_id"])
        if eid not in self.entities:
            raise ApiError(f"entity {eid} not found")
        return self.entities[eid]

    def _store(self, entity: EntityDef, item: Item, column: str, value: Any) -> None:
        if isinstance(value, (dict, list)):
            raise Fatal()   # an array where PHP expects a string
        if column in ("parent_item_id", "created_by"):
            setattr(item, column, _php_int(value))
            return
        f = entity.field(int(column[len("field_"):]))
        text = "1" if value is True else "" if value in (None, False) else str(value)
        if f.type in DATES:
            text = str(self.timestamp(text)) if text else "0"
        elif f.type in DATETIMES:  # kept to the minute: 10:15:30 is stored and read back as 10:15
            text = str(self.timestamp(text) // 60 * 60) if text else "0"
        elif f.type in TEXT_INPUTS:
            text = text[:INPUT_LENGTH]
        item.values[f.id] = text

    def _columns(self, entity: EntityDef) -> set[str]:
        return {f.column for f in entity.fields if f.type not in RESERVED | {"fieldtype_action"}}

    def _action_insert(self, p: dict[str, Any]) -> dict[str, Any]:
        entity = self._writable_entity(p)
        items = _require(p, "items")
        if not isinstance(items, (dict, list)):
            raise ApiError("items is not array")
        if not items:
            raise ApiError("items is ampty")
        if isinstance(items, dict):
            items = list(items.values()) if "0" in items else [items]
        ids: list[str] = []
        warnings: list[dict[str, str]] = []
        for values in items:
            if not isinstance(values, dict):
                raise Fatal()
            if entity.id == 1:
                ids.append(self._insert_user(values))
                continue
            parent = _php_int(values.get("parent_item_id"))
            if entity.parent:
                if not parent:
                    raise ApiError("parent_item_id is required")
                if parent not in self.items[entity.parent]:
                    raise ApiError(f"parent_item_id {parent} not found!")
            columns = self._columns(entity)
            for key in values:
                if key not in columns and key not in ("parent_item_id", "created_by"):
                    raise ApiError(f"{key} not exist in entity {entity.id}")
            if any(isinstance(v, (dict, list)) for v in values.values()):
                raise Fatal()
            clash = next((f for f in entity.fields if f.unique and values.get(f.column) not in (None, "")
                          and any(i.values.get(f.id) == str(values[f.column]) for i in self.items[entity.id].values())),
                         None)
            if clash:
                warnings.append({"id": str(clash.id), "value": str(values[clash.column])})
                continue
            item = self._new_item(entity.id, self.now(), {}, parent=parent if entity.parent else 0,
                                  created_by=self.user.id)
            for key, value in values.items():
                self._store(entity, item, key, value)
            ids.append(str(item.id))
        data: dict[str, Any] = {"id": ",".join(ids)}
        if warnings:
            data["unique_fields_warning"] = warnings
        return data

    def _insert_user(self, values: dict[str, Any]) -> str:
        for key in ("group_id", "firstname", "lastname", "username", "email", "password"):
            if not values.get(key) or (key == "group_id" and not _php_int(values[key])):
                raise ApiError(f"{key} is required")
        if any(u.username == values["username"] for u in self.users.values()):
            raise ApiError("Username already exist!", "email_exist")
        user = User(self.next_id[1], str(values["username"]), str(values["password"]), _php_int(values["group_id"]),
                    str(values["firstname"]), str(values["lastname"]), str(values["email"]))
        self._add_user(user, created_by=self.user.id)
        self.items[1][user.id].date_added = self.now()
        return str(user.id)

    def _matching(self, entity: EntityDef, by: Any, param: str) -> list[Item]:
        if not isinstance(by, dict) or not by:
            raise ApiError(f"{param} is required")
        column, value = next(iter(by.items()))
        allowed = self._columns(entity) | {"id", "parent_item_id", "created_by", "date_added", "date_updated"}
        if column not in allowed:
            raise ApiError(f"{column} not exist in entity {entity.id}")

        def current(item: Item) -> Any:
            if column.startswith("field_"):
                return item.values.get(int(column[6:]), "")
            return getattr(item, column)
        rows = list(self.items[entity.id].values())
        if isinstance(value, (dict, list)):
            tokens = [str(v) for v in (value.values() if isinstance(value, dict) else value)] or ["0"]
            bad = next((t for t in tokens if not re.fullmatch(r"-?\d+(\.\d+)?", t)), None)
            if bad is not None:
                raise DbError(1054, f"Unknown column '{bad}' in 'WHERE'",
                              f"select * from app_entity_{entity.id} where {column} in ({','.join(tokens)})")
            wanted = {float(t) for t in tokens}
            return [r for r in rows if _php_float(str(current(r) or 0)) in wanted]
        if isinstance(current(rows[0]) if rows else "", int):
            return [r for r in rows if current(r) == _php_int(value)]
        return [r for r in rows if str(current(r)).rstrip().lower() == str(value).rstrip().lower()]

    def _action_update(self, p: dict[str, Any]) -> dict[str, Any]:
        entity = self._writable_entity(p)
        data = p.get("data")
        if not data:
            raise ApiError("data is required")
        if "update_by_field" not in p:
            raise ApiError("update_by_field is required")
        matched = self._matching(entity, p["update_by_field"], "update_by_field")
        columns = self._columns(entity) | {"parent_item_id", "created_by"}
        for item in matched:
            for key, value in (data.items() if isinstance(data, dict) else []):
                if entity.id == 1 and key == "password":
                    self.users[item.id].password = str(value)
                elif key in columns:
                    self._store(entity, item, key, value)
            item.date_updated = self.now()
        return {"id": ",".join(str(i.id) for i in matched)}

    def _action_delete(self, p: dict[str, Any]) -> dict[str, Any]:
        entity = self._writable_entity(p)
        if "delete_by_field" not in p:
            raise ApiError("delete_by_field is required")
        matched = self._matching(entity, p["delete_by_field"], "delete_by_field")
        for item in matched:
            self._delete(entity.id, item.id)
        return {"id": ",".join(str(i.id) for i in matched)}

    def _delete(self, eid: int, item_id: int) -> None:
        """A hard delete, cascading to the records of child entities."""
        self.items[eid].pop(item_id, None)
        for child in (e for e in self.entities.values() if e.parent == eid):
            for kid in [i.id for i in self.items[child.id].values() if i.parent_item_id == item_id]:
                self._delete(child.id, kid)

    def _action_insert_comment(self, p: dict[str, Any]) -> dict[str, Any]:
        entity = self._writable_entity(p)
        item_id = _php_int(_require(p, "item_id"))
        item = self.items[entity.id].get(item_id)
        if item is None:
            raise ApiError(f"item {item_id} not found in Entity {entity.id}")
        changes = p.get("comment_fields") or {}
        for key, value in (changes.items() if isinstance(changes, dict) else []):
            fid = _php_int(str(key).removeprefix("field_"))
            if f"field_{fid}" not in self._columns(entity):
                raise ApiError(f"field  {key} not found in Entity {entity.id}")
            self._store(entity, item, f"field_{fid}", value)
        if changes:
            item.date_updated = self.now()
        self._comments += 1
        return {"id": self._comments}

    # -- test hooks (not in the real API) ------------------------------------------------------
    def entity(self, entity: str | int) -> EntityDef:
        """An entity by id or name."""
        for e in self.entities.values():
            if str(entity) in (str(e.id), e.name):
                return e
        raise ValueError(f"no entity {entity!r}; known: {', '.join(e.name for e in self.entities.values())}")

    def _set(self, e: EntityDef, item: Item, values: dict[str, Any]) -> None:
        for key, value in values.items():
            f = next((f for f in e.fields if str(key) in (f.column, str(f.id), f.name)), None)
            if f is None:
                raise ValueError(f"no field {key!r} in {e.name}")
            self._store(e, item, f.column, ",".join(map(str, value)) if isinstance(value, list) else value)

    def _item(self, entity: str | int, item_id: str | int) -> tuple[EntityDef, Item]:
        e = self.entity(entity)
        item = self.items[e.id].get(int(item_id))
        if item is None:
            raise ValueError(f"no record {item_id} in {e.name}")
        return e, item

    def control_edit(self, entity: str | int, id: str | int, values: dict[str, Any]) -> int:
        """A UI edit: changes fields and bumps date_updated."""
        e, item = self._item(entity, id)
        self._set(e, item, values)
        item.date_updated = self.now()
        return item.date_updated

    def control_kanban_move(self, entity: str | int, id: str | int, field: str | int, value: Any) -> None:
        """A kanban drag (or import, formula…): changes a field WITHOUT touching date_updated."""
        e, item = self._item(entity, id)
        self._set(e, item, {field: value})

    def control_insert(self, entity: str | int, values: dict[str, Any], parent_item_id: int = 0) -> int:
        """A record added in the UI: date_updated stays 0 until its first edit."""
        e = self.entity(entity)
        item = self._new_item(e.id, self.now(), {}, parent=int(parent_item_id))
        self._set(e, item, values)
        return item.id

    def control_delete(self, entity: str | int, id: str | int) -> None:
        e, item = self._item(entity, id)
        self._delete(e.id, item.id)

    def control_clock(self, at: str | float | None = None, advance: float = 0, real: bool = False) -> str:
        """Freeze the server clock AT (ISO time or epoch), move it by ADVANCE seconds, or go back to REAL time."""
        if real:
            self._frozen, self._offset = None, 0.0
        if at is not None:
            self._frozen = float(at) if isinstance(at, (int, float)) else \
                datetime.fromisoformat(str(at).replace("Z", "+00:00")).timestamp()
        if self._frozen is not None:
            self._frozen += advance
        else:
            self._offset += advance
        return datetime.fromtimestamp(self.now(), UTC).isoformat()

    def control_display_errors(self, enabled: bool = True) -> None:
        self.display_errors = bool(enabled)

    def control_add_field(self, entity: str | int, name: str, type: str = "fieldtype_input",
                          choices: list[str] | None = None) -> int:
        """An admin adding a field: the next field id (and choice ids), empty in existing records."""
        e = self.entity(entity)
        fid = max(self.fields) + 1
        first_choice = max([c for _, f in self.fields.values() for c, _ in f.choices] or [0]) + 1
        f = FieldDef(fid, type, name, choices=[(first_choice + i, c) for i, c in enumerate(choices or [])])
        e.fields.append(f)
        self.fields[fid] = (e, f)
        for item in self.items[e.id].values():
            item.values[fid] = ""
        return fid

    def live_ids(self, entity: str | int) -> set[str]:
        return {str(i) for i in self.items[self.entity(entity).id]}

    def live_records(self, entity: str | int) -> dict[str, dict[str, Any]]:
        """Stored rows as the database holds them: ``field_<id>`` columns, unix timestamps."""
        e = self.entity(entity)
        return {str(i.id): {"id": str(i.id), "parent_item_id": i.parent_item_id, "date_added": i.date_added,
                            "date_updated": i.date_updated, "created_by": i.created_by,
                            **{f"field_{k}": v for k, v in i.values.items()}}
                for i in self.items[e.id].values()}

    def toml_section(self, name: str, url: str) -> str:
        env = re.sub(r"\W", "_", name).upper()
        admin = self.users[1]
        return "\n".join([
            f"# export {env}_PASSWORD='{admin.password}'",
            f"# export {env}_API_KEY='{self.api_key}'",
            f"[systems.{name}]",
            'kind = "rukovoditel"',
            f'url = "{url}"',
            f'username = "{admin.username}"',
            f'password = "${{{env}_PASSWORD}}"',
            f'api_key = "${{{env}_API_KEY}}"',
            f'timezone = "{self.timezone}"',
            f'entities = ["{identifier(self.entities[25].name, lower=False)}"]',
        ]) + "\n"


def create_app(records: int = 100, *, username: str = "admin", password: str = "emulator",
               api_key: str = "emulator", timezone: str = "Europe/Moscow", seed: int = 1,
               language: str = "en", error_mode: str = "php8", display_errors: bool = False,
               unique_email: bool = False) -> RukovoditelApp:
    """A Rukovoditel 3.6 with N seeded Contacts. ``language="ru"`` names the Contacts entity and its
    fields in Russian; ``error_mode="legacy"`` answers errors like PHP 7 (HTTP 200 + JSON)."""
    return RukovoditelApp(records, username=username, password=password, api_key=api_key, timezone=timezone,
                          seed=seed, language=language, error_mode=error_mode, display_errors=display_errors,
                          unique_email=unique_email)


# -- PHP helpers ---------------------------------------------------------------------------------

def _require(p: dict[str, Any], name: str) -> Any:
    if name not in p or p[name] in ("", None):
        raise ApiError(f"{name} is required")
    return p[name]


def _php_int(value: Any) -> int:
    """PHP's (int) cast: the leading integer of a string, else 0."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return int(value)
    m = re.match(r"\s*([+-]?\d+)", str(value or ""))
    return int(m.group(1)) if m else 0


def _php_float(value: str) -> float:
    m = re.match(r"\s*([+-]?\d+(?:\.\d+)?)", value)
    return float(m.group(1)) if m else 0.0


def _numeric_match(number: float, expression: str) -> bool:
    """``input_numeric`` filters: ``>20``, ``>=30&<100``, ``5|7``."""
    def term(text: str) -> bool:
        m = re.fullmatch(r"\s*(>=|<=|!=|<>|>|<|=)?\s*(-?\d+(?:\.\d+)?)\s*", text)
        if not m:
            return False
        op, target = m.group(1) or "=", float(m.group(2))
        return {">=": number >= target, "<=": number <= target, "!=": number != target, "<>": number != target,
                ">": number > target, "<": number < target, "=": number == target}[op]
    return any(all(term(t) for t in group.split("&")) for group in expression.split("|"))


def _sql(entity: EntityDef) -> str:
    return f"select e.*  from app_entity_{entity.id} e  where e.id&gt;0"


def _php_nest(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """PHP bracket syntax: ``items[0][field_213]=x``, ``update_by_field[id][]=4`` → nested dicts/lists."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        m = re.match(r"([^\[]+)((?:\[[^\]]*\])*)$", key)
        if not m:
            out[key] = value
            continue
        path = [m.group(1), *re.findall(r"\[([^\]]*)\]", m.group(2))]
        node: Any = out
        for i, part in enumerate(path):
            last = i == len(path) - 1
            if isinstance(node, list):
                if last:
                    node.append(value)
                    break
                node.append({})
                node = node[-1]
                continue
            if last:
                node[part] = value
                break
            nxt = path[i + 1]
            if not isinstance(node.get(part), (dict, list)):
                node[part] = [] if nxt == "" else {}
            node = node[part]
    return out


def _db_error_html(exc: DbError) -> str:
    def esc(text: str) -> str:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#039;") \
            .replace("&amp;gt;", "&gt;").replace("&amp;#039;", "&#039;")
    return (
        "\n            <app_db_error>\n            <div style=\"color: #b94a48; background: #f2dede; border: 1px solid "
        "#eed3d7; padding: 5px; margin: 5px; font-family: verdana; font-size: 12px; line-height: 1.5;\">\n"
        f"              <div><strong>Database Error:</strong> {exc.errno} - {esc(exc.message)}</div>\n"
        f"              <div><strong>Query:</strong> {esc(exc.query)}</div>\n"
        "              <div><strong>Page: </strong> /api/rest.php</div>\n"
        "              <div style=\"padding-top: 10px;\">#0 includes/functions/database.php(99): mysqli_query()<br />\n"
        "#1 plugins/ext/classes/api/api.php(432): db_query()<br />\n#2 plugins/ext/classes/api/api.php(72): "
        "api->action_select()<br />\n#3 api/rest.php(58): api->request()<br />\n#4 {main}</div>\n"
        "            </div>\n        ")
