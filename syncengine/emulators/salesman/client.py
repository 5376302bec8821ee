"""SalesMan Clients (companies and persons-as-clients): ``client.*``."""
from __future__ import annotations

import re
from typing import Any

from ...jsonutil import loads
from .common import (
    _CLIENT_COMPANIONS,
    _CLIENT_INFO_COMPANIONS,
    CLIENT_FIELDS,
    IDENTICAL,
    NOT_DEFINED,
    Params,
    User,
    _error,
    _Fail,
    _filters,
    _intval,
    _is_numeric,
    _like,
    _loose_equal,
    _phone_tails,
    _sfdate,
    _text,
    format_title,
)
from .state import SalesManState


class ClientApi(SalesManState):
    """Clients (companies and persons-as-clients): ``client.*``."""

    def _client_fields(self, params: Params, user: User, json_mode: bool) -> Any:
        return {"data": dict(CLIENT_FIELDS)}

    def _client_record(self, row: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in CLIENT_FIELDS:
            if name == "recv":
                continue
            value = row.get(name)
            if name == "iduser":
                out["user"] = self._login(value)
                out["iduser"] = _intval(value)
            elif name == "idcategory":
                out["idcategoryTitle"] = self._title_of(self.categories, value) or NOT_DEFINED
                out["idcategory"] = _intval(value)
            elif name == "head_clid":
                out["head_clidTitle"] = self._title_of(self.categories, value) or NOT_DEFINED  # sic
                out["head_clid"] = _intval(value)
            elif name == "pid":
                person = self.persons.get(_intval(value))
                out["person"] = person["person"] if person else ""
                out["pid"] = _intval(value)
            elif name == "territory":
                out["territoryTitle"] = self._title_of(self.territories, value)
                out["territory"] = _intval(value)
            elif name == "clientpath":
                out["clientpathTitle"] = self._title_of(self.clientpaths, value)
                out["clientpath"] = _intval(value)
            elif name == "clid":
                out["clid"] = int(row["clid"])
            else:
                out[name] = value
        return out

    def _client_list(self, params: Params, user: User, json_mode: bool) -> Any:
        rows = self._visible(self.clients, params, user)
        word = str(params.get("word") or "")
        if word:
            rows = [r for r in rows if any(_like(r.get(f), word) for f in ("title", "des", "mail_url", "site_url",
                                                                             "address"))
                    or _like(re.sub(r"[+() \-]", "", str(r.get("phone") or "")), word)]
        rows = self._date_window(lambda r: r["date_create"], rows, params.get("dateStart"), params.get("dateEnd"),
                                 strict=True)
        rows = self._change_window(rows, params, "date_edit", lambda v: v)
        filters = _filters(params)
        for key, value in filters.items():
            if key == "type":
                rows = [r for r in rows if r.get("type") == value]
            elif key in ("idcategory", "territory", "clientpath"):
                table = self._dictionary(key)
                wanted = self._dictionary_id(table, value, create=False)
                rows = [r for r in rows if _intval(r.get(key)) == wanted]
            elif key == "relations":
                rows = [r for r in rows if r.get("tip_cmr") == value]
            elif re.fullmatch(r"input\d+", key) and key in CLIENT_FIELDS:
                rows = [r for r in rows if _like(r.get(key), value)]
        rows = self._shown("client", rows, params)
        rows = self._order(rows, params, set(CLIENT_FIELDS) - {"recv"}, "date_create", {"date_change": "date_edit"},
                           "clid")
        page = []
        for row in self._page(rows, params):
            record = self._select(self._client_record(row), params, CLIENT_FIELDS, _CLIENT_COMPANIONS)
            if params.get("bankinfo") == "yes":
                record["bankinfo"] = self._recv(row)
            if params.get("uids") == "yes":
                record["uids"] = []
            page.append(record)
        return {"data": page, "count": len(rows)} if page else {"count": len(rows)}

    def _client_info(self, params: Params, user: User, json_mode: bool) -> Any:
        if params.get("uid"):
            row = next((r for r in self.clients.values() if r.get("uid") == params["uid"]), None)
            if row is None:
                raise _error(404, "Не найдено")
        elif params.get("inn"):
            row = next((r for r in self.clients.values() if str(params["inn"]) in r.get("recv", {}).values()), None)
            if row is None:
                raise _error(404, "Не найдено")
        elif params.get("clid"):
            row = self.clients.get(_intval(params["clid"]))
        else:
            raise _error(405, "Отсутствуют параметры клиента")
        if row is None or _intval(row["iduser"]) not in self._people(user):
            raise _error(403, "Клиент не найден в пределах аккаунта указанного пользователя.")
        full: dict[str, Any] = {}
        for name in CLIENT_FIELDS:
            value = row.get(name)
            if name == "recv":
                continue
            if name == "date_create":
                full["created"], full["date_create"] = value, _sfdate(value)
            elif name == "date_edit":
                full["edited"], full["date_edit"] = value, _sfdate(value)
            elif name == "iduser":
                full["iduser"], full["user"] = _intval(value), self._login(value)
            elif name == "idcategory":
                full["idcategory"] = _intval(value)
                full["categoryName"] = self._title_of(self.categories, value) or NOT_DEFINED
            elif name == "head_clid":
                head = self.clients.get(_intval(value))
                full["head_clid"] = head["title"] if head else ""
            elif name == "pid":
                person = self.persons.get(_intval(value))
                full["pid"], full["person"] = _intval(value), person["person"] if person else ""
            elif name == "territory":
                full["territory"] = _intval(value)
                full["territoryName"] = self._title_of(self.territories, value)
            elif name == "clientpath":
                full["clientpath"] = self._title_of(self.clientpaths, value)
            elif name == "clid":
                full["clid"] = int(row["clid"])
            else:
                full[name] = None if value == "" else value
        data = self._select(full, params, CLIENT_FIELDS, _CLIENT_INFO_COMPANIONS)
        if params.get("bankinfo") == "yes":
            data["bankinfo"] = self._recv(row)
        reply: dict[str, Any] = {"data": data}
        if params.get("contacts") == "yes":
            reply["contacts"] = [
                {"pid": str(p["pid"]), "person": p["person"], "ptitle": p.get("ptitle"), "clid": str(p["clid"]),
                 "tel": p.get("tel"), "mob": p.get("mob"), "mail": p.get("mail"), "iduser": str(p.get("iduser") or ""),
                 "rol": p.get("rol"), "date_create": p["date_create"], "client": row["title"],
                 "user": (self.users.get(_intval(p.get("iduser"))) or {}).get("title"), "color": None,
                 "relation": None, "clientpath": self._title_of(self.clientpaths, p.get("clientpath"))}
                for p in self.persons.values() if p.get("clid") == row["clid"] and p.get("mail")]
        return reply

    def _client_values(self, params: dict[str, Any], json_mode: bool) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in CLIENT_FIELDS:
            if name in ("clid", "date_create", "date_edit", "recv") or name not in params:
                continue
            value = params[name]
            if isinstance(value, (list, dict)):
                value = ", ".join(map(str, value.values() if isinstance(value, dict) else value))
            if name == "title":
                value = format_title(value)
            elif name == "phone":
                value = ",".join(p.strip() for p in re.split(r"[,;]", str(value)) if p.strip())
            elif name in ("idcategory", "territory", "clientpath"):
                table = self._dictionary(name)
                value = self._dictionary_id(table, value, create=True)
            elif name in ("iduser", "head_clid", "pid"):
                if name == "iduser" and not _is_numeric(value):
                    continue
                value = _intval(value)
            elif name == "type":
                value = str(value) or "client"
            elif isinstance(value, str):
                value = _text(value)
            elif value is not None:
                value = str(value)
            values[name] = value
        return values

    def _client_add(self, params: Params, user: User, json_mode: bool) -> Any:
        if not str(params.get("title") or "").strip():
            raise _error(402, "Отсутствуют параметры - Название клиента")
        values = self._client_values(params, json_mode)
        title = values["title"]
        for row in self.clients.values():
            if row["title"] != title:
                continue
            if values.get("phone") and not _phone_tails(values["phone"]) & _phone_tails(row.get("phone")):
                continue
            if values.get("mail_url") and values["mail_url"] != row.get("mail_url"):
                continue
            raise _error(304, f"Найден существующий клиент - {row['title']} (clid = {row['clid']}). Запрос отклонен.",
                         exists=row["clid"])
        owner = user["iduser"]
        if _is_numeric(params.get("iduser")):
            owner = int(params["iduser"])
        elif params.get("user"):
            owner = self._user_id(params["user"])
        created = self.stamp()
        if params.get("date_create"):
            created = self._local_time(str(params["date_create"]))
        clid = self._new_id("client")
        row = {name: None for name in CLIENT_FIELDS if name != "recv"}
        row.update({"clid": clid, "type": "client", "idcategory": 0, "head_clid": 0, "pid": 0, "territory": 0,
                    "clientpath": self.default_clientpath, "date_create": created, "date_edit": None,
                    "creator": user["iduser"], "editor": None})
        row.update(values)
        row["iduser"] = owner
        row["recv"] = {k: str(v) for k, v in (params.get("recv") or {}).items()} \
            if isinstance(params.get("recv"), dict) else {}
        self.clients[clid] = row
        self.fire("client.add", {"clid": clid, "autor": user["iduser"], "user": owner})
        return {"result": "Успешно", "data": clid}

    def _client_add_list(self, params: Params, user: User, json_mode: bool) -> Any:
        items = params.get("client") or {}
        items = items.values() if isinstance(items, dict) else items
        replies = []
        for item in items:
            try:
                replies.append(self._client_add(dict(item), user, json_mode))
            except _Fail as fail:
                replies.append(loads(fail.response.body))
        return replies

    def _client_update(self, params: Params, user: User, json_mode: bool) -> Any:
        row = self.clients.get(_intval(params.get("clid")))
        if row is None:
            raise _error(403, "Клиент с указанным clid не найден в пределах аккаунта")
        values = self._client_values({k: v for k, v in params.items() if k not in ("user", "uid")}, json_mode)
        if "uid" in params and not row.get("uid"):
            values["uid"] = str(params["uid"])
        if values.get("type", "x") == "":
            values["type"] = "client"
        diff = {k: v for k, v in values.items() if not _loose_equal(row.get(k), v)}
        recv_changed = False
        if isinstance(params.get("recv"), dict):
            merged = {**row.get("recv", {}), **{k: str(v) for k, v in params["recv"].items()}}
            recv_changed = merged != row.get("recv", {})
            row["recv"] = merged
        suffix = "; Реквизиты обновлены" if isinstance(params.get("recv"), dict) else ""
        if not diff:
            if recv_changed:
                self.fire("client.change.recv", {"clid": row["clid"], "autor": user["iduser"]})
            return {"data": row["clid"], "result": IDENTICAL + suffix}
        row.update(diff)
        row["date_edit"], row["editor"] = self.stamp(), user["iduser"]
        hid = self._add_history("Изменены данные клиента", clid=row["clid"], user=user)
        self.fire("client.edit", {"clid": row["clid"], "autor": user["iduser"], "user": 0, "newparam": diff})
        return {"data": row["clid"], "hid": hid, "result": "Успешно" + suffix}

    def _client_delete(self, params: Params, user: User, json_mode: bool) -> Any:
        if not params.get("clid"):
            raise self._fatal("Uncaught TypeError: Salesman\\Client::delete(): Argument #1 ($clid) must be of type "
                              "int, null given", "inc/class/Client.php", 1317)
        clid = _intval(params["clid"])
        if clid not in self.clients:
            raise _error(403, "Не найдена запись")
        if any(d["clid"] == clid or d["payer"] == clid for d in self.deals.values()):
            raise _error(408, "Клиент не удален. Внимание: К сожалению Удаление записи не возможно. Причина - "
                              "Имеются связанные записи - Сделки.")
        del self.clients[clid]
        removed = [h for h, r in self.history.items() if r.get("clid") == clid]
        for h in removed:
            del self.history[h]
        detached = 0
        for person in self.persons.values():
            if person.get("clid") == clid:
                person["clid"], detached = 0, detached + 1
        self.fire("client.delete", {"clid": clid, "autor": user["iduser"]})
        return {"message": f"Успешно: Клиент удален.<br>Также удалено {len(removed)} записи истории активностей. "
                           f"Снята привязка к Клиенту у {detached} Контактов. Удалено 0 записей напоминаний. "
                           f"Удалено 0 файлов.", "result": "Клиент удален", "data": clid}
