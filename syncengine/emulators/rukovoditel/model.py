"""The Rukovoditel emulator's vocabulary: field types, entities, records, users and PHP-isms."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

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

    def known_field(self, field_id: int) -> FieldDef:
        """A field the caller has already checked exists (a column name of this entity)."""
        found = self.field(field_id)
        if found is None:
            raise KeyError(f"entity {self.id} has no field {field_id}")
        return found

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
