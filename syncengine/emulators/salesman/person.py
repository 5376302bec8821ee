"""SalesMan Contact persons: ``person.*``."""
from __future__ import annotations

import re
from typing import Any

from .common import (
    _PERSON_COMPANIONS,
    PERSON_FIELDS,
    PERSON_TEXT,
    SOCIAL,
    Params,
    User,
    _filters,
    _intval,
    _is_numeric,
    _like,
    _loose_equal,
    _text,
)
from .state import SalesManState


class PersonApi(SalesManState):
    """Contact persons: ``person.*``."""

    def _person_fields(self, params: Params, user: User, json_mode: bool) -> Any:
        return {"data": {**PERSON_FIELDS, "social": dict(SOCIAL)}}

    def _person_record(self, row: dict[str, Any], *, info: bool = False) -> dict[str, Any]:
        client = self.clients.get(_intval(row.get("clid")))
        out: dict[str, Any] = {}
        for name in PERSON_FIELDS:
            value = row.get(name)
            if name == "clid":
                out["clid"], out["client"] = _intval(value), client["title"] if client else ""
            elif name == "iduser":
                if info:
                    out["iduser"] = self._login(value) or ""
                else:
                    out["user"], out["iduser"] = self._login(value), _intval(value) if value is not None else None
            elif name == "loyalty":
                out["loyalty"] = self._title_of(self.loyalties, value)
            elif name == "clientpath":
                out["clientpath"] = "" if info else (self._title_of(self.clientpaths, value) or "")
            else:
                out[name] = value
        return out

    def _person_visible(self, row: dict[str, Any], people: set[int]) -> bool:
        return row.get("iduser") is not None and _intval(row["iduser"]) in people

    def _person_list(self, params: Params, user: User, json_mode: bool) -> Any:
        rows = list(self.persons.values())
        if params.get("user"):
            owner = self._user_id(params["user"])
            rows = [r for r in rows if r.get("iduser") is not None and _intval(r["iduser"]) == owner]
        else:
            people = self._people(user)
            rows = [r for r in rows if self._person_visible(r, people)]
        word = str(params.get("word") or "")
        if word:
            rows = [r for r in rows if any(_like(r.get(f), word) for f in ("person", "ptitle", "mail"))
                    or _like(re.sub(r"\D", "", str(r.get("tel") or "")), word)]
        rows = self._date_window(lambda r: r["date_create"], rows, params.get("dateStart"), params.get("dateEnd"),
                                 strict=True)
        filters = _filters(params)
        for key, value in filters.items():
            if key == "clid":
                rows = [r for r in rows if _intval(r.get("clid")) == _intval(value)]
            elif key in ("loyalty", "clientpath"):
                table = self.loyalties if key == "loyalty" else self.clientpaths
                wanted = self._dictionary_id(table, value, create=False)
                rows = [r for r in rows if _intval(r.get(key)) == wanted]
            elif key in PERSON_FIELDS:
                rows = [r for r in rows if _like(r.get(key), value)]
        rows = self._shown("person", rows, params)
        rows = self._order(rows, params, set(PERSON_FIELDS), "date_create", {}, "pid")
        page = [self._select(self._person_record(r), params, PERSON_FIELDS, _PERSON_COMPANIONS)
                for r in self._page(rows, params)]
        return {"data": page, "count": len(rows)} if page else {"count": len(rows)}

    def _person_info(self, params: Params, user: User, json_mode: bool) -> Any:
        row = self.persons.get(_intval(params.get("pid")))
        if row is None or not self._person_visible(row, self._people(user)) or not row.get("person"):
            empty = dict.fromkeys(PERSON_FIELDS)
            empty.update({"client": "", "iduser": "", "clientpath": ""})
            return {"data": {k: empty[k] for k in self._person_record({}, info=True)}}
        data = self._person_record(row, info=True)
        return {"data": self._select(data, params, PERSON_FIELDS, {"clid": ("clid", "client")})}

    def _person_values(self, params: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in PERSON_TEXT:
            if name in params:
                values[name] = _text(params[name]) if params[name] is not None else ""
        if "clid" in params:
            values["clid"] = _intval(params["clid"])
        if "loyalty" in params:
            values["loyalty"] = _intval(params["loyalty"])
        if "clientpath" in params:
            values["clientpath"] = int(params["clientpath"]) if _is_numeric(params["clientpath"]) \
                else self.default_clientpath
        if _is_numeric(params.get("iduser")):
            values["iduser"] = int(params["iduser"])
        return values

    def _person_write_reply(self, reply: dict[str, Any]) -> dict[str, Any]:
        if self.person_write_fatal:
            raise self._fatal("Uncaught TypeError: Cannot access offset of type string on string",
                              "developer/v2/person.php", 560)
        return reply

    def _person_add(self, params: Params, user: User, json_mode: bool) -> Any:
        if not str(params.get("person") or "").strip():
            return {"result": "", "data": 0, "error": ""}
        values = {k: v for k, v in self._person_values(params).items() if v not in ("", 0, "0", None)}
        if "iduser" not in values:
            values["iduser"] = self._user_id(params["user"]) if params.get("user") else user["iduser"]
        pid = self._new_id("person")
        row = dict.fromkeys(PERSON_FIELDS)
        row.update({"pid": pid, "date_create": self.stamp(), "date_edit": None, "clid": 0, "loyalty": 0,
                    "clientpath": self.default_clientpath})
        row.update(values)
        self.persons[pid] = row
        if params.get("mperson") == "yes" and row["clid"] in self.clients:
            self.clients[row["clid"]]["pid"] = pid
        if params.get("did") and _intval(params["did"]) in self.deals:
            deal = self.deals[_intval(params["did"])]
            deal["pid_list"] = ";".join([p for p in str(deal.get("pid_list") or "").split(";") if p] + [str(pid)])
        self.fire("person.add", {"pid": pid, "autor": user["iduser"]})
        return self._person_write_reply({"result": "Контакт добавлен", "data": pid, "error": ""})

    def _person_add_list(self, params: Params, user: User, json_mode: bool) -> Any:
        items = params.get("persons") or {}
        items = items.values() if isinstance(items, dict) else items
        return [self._person_add(dict(item), user, json_mode) for item in items]

    def _person_update(self, params: Params, user: User, json_mode: bool) -> Any:
        pid = _intval(params.get("pid"))
        row = self.persons.get(pid)
        if row is None:
            self._add_history("Изменены данные контакта", pid=pid, user=user)
            return self._person_write_reply({"result": "Данные контакта обновлены", "data": pid, "error": ""})
        given = self._person_values(params)
        if self.person_update_overwrites:  # Person::fullupdate: a full replacement
            values = {name: given.get(name, "") for name in PERSON_TEXT}
            values["iduser"] = given.get("iduser")
            values["loyalty"] = given.get("loyalty", 0)
            values["clientpath"] = given.get("clientpath", self.default_clientpath)
            values["clid"] = given.get("clid", row.get("clid"))
        else:
            values = dict(given)
            if "iduser" not in values and params.get("user"):
                values["iduser"] = self._user_id(params["user"])
        diff = {k: v for k, v in values.items() if not _loose_equal(row.get(k), v)}
        if not diff:
            return self._person_write_reply({"result": "", "data": pid, "error": ""})
        row.update(values)
        row["date_edit"] = self.stamp()
        self.fire("person.edit", {"pid": pid, "autor": user["iduser"],
                                  "newparam": {**diff, "date_edit": row["date_edit"], "editor": user["iduser"]}})
        return self._person_write_reply({"result": "Данные контакта обновлены", "data": pid, "error": ""})

    def _person_delete(self, params: Params, user: User, json_mode: bool) -> Any:
        pid = _intval(params.get("pid"))
        if not pid and any(not lead.get("pid") for lead in self.leads.values()):
            raise self._fatal("Uncaught mysqli_sql_exception: Incorrect integer value: '' for column "
                              "`salesman`.`app_leads`.`pid` at row 1",
                              "vendor/colshrapnel/safemysql/safemysql.class.php", 466)
        if any(_intval(d.get("pid")) == pid and pid for d in self.deals.values()):
            return {"result": "Контакт не удален", "error": "Контакт является основным в сделках", "data": pid}
        self.persons.pop(pid, None)
        for client in self.clients.values():
            if client.get("pid") == pid and pid:
                client["pid"] = 0
        self.fire("person.delete", {"pid": pid, "autor": user["iduser"]})
        return {"message": "Успешно: Контакт удален. Также удалено 0 записи истории активностей. Удалено 0 записей "
                           "напоминаний. Удалено 0 файлов.\n\t\t\t", "result": "Клиент удален", "data": pid}
