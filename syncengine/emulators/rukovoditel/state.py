"""The state of the Rukovoditel emulator and what every action shares: storage, clock, request parsing, hooks."""
from __future__ import annotations

import random
import re
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from ...jsonutil import loads
from ...translit import identifier
from ..base import Clock, EmulatorApp, Request, Response
from .model import (
    COMPANIES,
    DATES,
    DATETIMES,
    FIRST,
    HTML,
    INPUT_LENGTH,
    LAST,
    LATIN,
    NOTES,
    RESERVED,
    TEXT_INPUTS,
    ApiError,
    EntityDef,
    Fatal,
    FieldDef,
    Item,
    User,
    _entities,
    _php_int,
    _php_nest,
)


class RukovoditelState(EmulatorApp):
    """One install's entities, records, users and clock, how values are stored, and the test hooks;
    the actions are the mixins of :class:`.app.RukovoditelApp`."""
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
        self.clock = Clock()
        self._warnings: list[str] = []   # PHP warnings printed before this request's JSON
        self.entities = _entities(language == "ru")
        self.fields = {f.id: (e, f) for e in self.entities.values() for f in e.fields}
        self.entities[25].known_field(215).unique = unique_email
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
        self.user = self.users[1]   # who the request being served logged in as
        self._seed(records, random.Random(seed))

    def now(self) -> int:
        return int(self.clock.now())

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

    def params(self, request: Request) -> dict[str, Any]:
        """PHP's ``$_REQUEST``, or the decoded JSON body when no form body was sent (3.5+)."""
        ctype = request.headers.get("content-type", "").lower()
        pairs: list[tuple[str, Any]] = []
        if ctype.startswith("application/x-www-form-urlencoded"):
            pairs = parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        elif ctype.startswith("multipart/form-data"):
            message = BytesParser(policy=HTTP).parsebytes(
                f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode() + request.body)
            for part in message.iter_parts():
                payload = part.get_payload(decode=True)
                if not part.get_filename() and isinstance(payload, bytes):
                    pairs.append((str(part.get_param("name", header="content-disposition")),
                                  payload.decode("utf-8", "replace")))
        if not pairs and request.body:
            try:
                decoded = loads(request.body)
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

    def _error(self, exc: ApiError) -> Response:
        if self.error_mode == "legacy":
            return Response.json({"status": "error", "error_code": exc.code or "", "error_message": exc.message},
                                 200, escape_slashes=True, content_type=HTML)
        if exc.code:   # http_response_code('login_fail') throws a TypeError on PHP 8
            return Response.empty(500)
        return Response.json({"status": "error", "error_code": 500, "error_message": exc.message}, 500,
                             escape_slashes=True, content_type=HTML)

    def _heading(self, eid: int, item_id: int) -> str:
        entity, item = self.entities.get(eid), self.items.get(eid, {}).get(item_id)
        if entity is None or item is None or entity.heading is None:
            return ""
        return item.values.get(entity.heading.id, "")

    def _store(self, entity: EntityDef, item: Item, column: str, value: Any) -> None:
        if isinstance(value, (dict, list)):
            raise Fatal()   # an array where PHP expects a string
        if column in ("parent_item_id", "created_by"):
            setattr(item, column, _php_int(value))
            return
        f = entity.known_field(int(column[len("field_"):]))
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

    def _delete(self, eid: int, item_id: int) -> None:
        """A hard delete, cascading to the records of child entities."""
        self.items[eid].pop(item_id, None)
        for child in (e for e in self.entities.values() if e.parent == eid):
            for kid in [i.id for i in self.items[child.id].values() if i.parent_item_id == item_id]:
                self._delete(child.id, kid)

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
        self._set(e, item, {str(field): value})

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
        moment = None if at is None else float(at) if isinstance(at, (int, float)) else \
            datetime.fromisoformat(str(at).replace("Z", "+00:00")).timestamp()
        self.clock.set(at=moment, advance=advance, real=real)
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
