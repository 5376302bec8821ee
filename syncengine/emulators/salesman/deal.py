"""SalesMan Deals, their stages and closing: ``deal.*``."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from .common import (
    _DEAL_COMPANIONS,
    DEAL_FIELDS,
    DEAL_TEXT,
    DEAL_TYPES,
    IDENTICAL,
    STATUS_CLOSE,
    STEPS,
    Params,
    User,
    _error,
    _filters,
    _intval,
    _like,
    _loose_equal,
    _moment,
    _num,
    _sfdate,
    _text,
    format_title,
)
from .state import SalesManState


class DealApi(SalesManState):
    """Deals, their stages and closing: ``deal.*``."""

    def _deal_fields(self, params: Params, user: User, json_mode: bool) -> Any:
        return {"data": dict(DEAL_FIELDS)}

    def _deal_steplist(self, params: Params, user: User, json_mode: bool) -> Any:
        return {"data": [{"idcategory": str(i), "title": t, "content": c} for i, t, c in STEPS]}

    def _deal_direction(self, params: Params, user: User, json_mode: bool) -> Any:
        return {"data": [{"id": "1", "title": "Основное", "isDefault": "yes"}]}

    def _deal_type(self, params: Params, user: User, json_mode: bool) -> Any:
        return {"data": [{"tid": str(i), "title": t, "isDefault": d} for i, t, d in DEAL_TYPES]}

    def _deal_statusclose(self, params: Params, user: User, json_mode: bool) -> Any:
        return {"data": [{"sid": str(i), "title": t} for i, t in STATUS_CLOSE]}

    def _deal_funnel(self, params: Params, user: User, json_mode: bool) -> Any:
        return {"data": []}

    @staticmethod
    def _step(idcategory: Any) -> tuple[int, str, str] | None:
        return next((s for s in STEPS if s[0] == _intval(idcategory)), None)

    def _deal_record(self, row: dict[str, Any]) -> dict[str, Any]:
        client = self.clients.get(_intval(row.get("clid")))
        payer = self.clients.get(_intval(row.get("payer")))
        owner = self.users.get(_intval(row.get("iduser")))
        step = self._step(row.get("idcategory"))
        tip = next((t for t in DEAL_TYPES if t[0] == _intval(row.get("tip"))), None)
        status = next((s[1] for s in STATUS_CLOSE if s[0] == _intval(row.get("sid"))), False)
        return {
            "did": row["did"], "uid": row.get("uid"), "datum": row.get("datum"), "datum_izm": row.get("datum_izm"),
            "clid": _intval(row.get("clid")), "clientTitle": client["title"] if client else None,
            "title": row.get("title"), "mcid": _intval(row.get("mcid")), "iduser": _intval(row.get("iduser")),
            "user": owner["login"] if owner else None, "userTitle": owner["title"] if owner else None,
            "datum_plan": row.get("datum_plan"), "step": int(step[1]) if step else 0,
            "stepID": step[0] if step else 0, "stepTitle": step[2] if step else None,
            "contractID": _intval(row.get("dog_num")), "contractTitle": None, "contractNumber": None,
            "contractDate": None, "tipID": tip[0] if tip else 0, "tip": tip[1] if tip else None,
            "directionID": _intval(row.get("direction")), "direction": "Основное" if row.get("direction") else None,
            "adres": row.get("adres"), "content": row.get("content"), "payer": _intval(row.get("payer")),
            "payerTitle": payer["title"] if payer else None, "kol": _num(row.get("kol")),
            "marga": _num(row.get("marga")), "input1": row.get("input1"), "datum_start": row.get("datum_start"),
            "datum_end": row.get("datum_end"), "close": row.get("close") or "no",
            "datum_close": row.get("datum_close"), "status_close": status, "des_fact": row.get("des_fact"),
            "kol_fact": _num(row.get("kol_fact")),
        }

    def _deal_list(self, params: Params, user: User, json_mode: bool) -> Any:
        rows = self._visible(self.deals, params, user)
        if params.get("active") in ("yes", "no"):
            rows = [r for r in rows if (r.get("close") != "yes") == (params["active"] == "yes")]
        word = str(params.get("word") or "")
        if word:
            rows = [r for r in rows if any(_like(r.get(f), word) for f in ("title", "content", "adres"))]
        if params.get("steps"):
            wanted = {s.strip() for s in str(params["steps"]).split(",")}
            rows = [r for r in rows if (self._step(r.get("idcategory")) or (0, ""))[1] in wanted]

        def day(value: Any) -> str | None:
            return None if value is None else _moment(str(value)[:10])
        rows = self._date_window(lambda r: day(r.get("datum")), rows, params.get("dateStart"), params.get("dateEnd"),
                                 strict=False)
        rows = self._change_window(rows, params, "datum_izm", day)
        filters = _filters(params)
        for key, value in filters.items():
            if key in ("clid", "payer", "idcategory", "direction", "tip"):
                rows = [r for r in rows if _intval(r.get(key)) == _intval(value)]
            elif key in DEAL_FIELDS or key in ("did", "uid"):
                rows = [r for r in rows if _like(r.get(key), value)]
        columns = set(DEAL_FIELDS) - {"step", "status_close"} | {"idcategory", "sid"}
        rows = self._shown("deal", rows, params)
        rows = self._order(rows, params, columns, "datum", {"date_create": "datum", "date_change": "datum_izm"},
                           "did")
        page = [self._select(self._deal_record(r), params, {**DEAL_FIELDS, "title": ""}, _DEAL_COMPANIONS)
                for r in self._page(rows, params)]
        return {"data": page, "count": len(rows)} if page else {"count": len(rows)}

    def _deal_row(self, params: dict[str, Any], user: dict[str, Any], missing: str) -> dict[str, Any]:
        row = None
        if params.get("did"):
            row = self.deals.get(_intval(params["did"]))
        elif params.get("uid"):
            row = next((d for d in self.deals.values() if d.get("uid") == params["uid"]), None)
        if row is None or _intval(row["iduser"]) not in self._people(user):
            raise _error(403, missing)
        return row

    def _deal_info(self, params: Params, user: User, json_mode: bool) -> Any:
        if not params.get("did") and not params.get("uid"):
            raise self._fatal("Uncaught mysqli_sql_exception: You have an error in your SQL syntax; check the manual "
                              "that corresponds to your MariaDB server version for the right syntax to use near "
                              "'and iduser IN (1,2) and identity = '1'' at line 1",
                              "vendor/colshrapnel/safemysql/safemysql.class.php", 466)
        row = self._deal_row(params, user, "Сделка не найдена в пределах аккаунта указанного пользователя.")
        record = self._deal_record(row)
        special = {"iduser", "user", "step", "stepID", "stepTitle", "contractID", "contractTitle", "contractNumber",
                   "contractDate", "tipID", "tip", "directionID", "direction", "status_close"}
        data: dict[str, Any] = {}
        for key, value in record.items():
            if key in ("clientTitle", "userTitle", "payerTitle"):
                continue
            if key == "payer":
                if params.get("payer") == "yes":
                    data["payer"] = self._client_card(_intval(value))
                continue
            data[key] = value if key in special or not self.deal_info_nulls else None
            if key == "user":
                data["userUID"] = ""
        if params.get("client") == "yes":
            data["client"] = self._client_card(_intval(row.get("clid")))
        persons = [self.persons[int(p)] for p in str(row.get("pid_list") or "").split(";")
                   if p.strip().isdigit() and int(p) in self.persons]
        if persons:
            data["person"] = [{"pid": p["pid"], "title": p.get("person"), "post": p.get("ptitle"),
                               "phone": p.get("tel"), "mob": p.get("mob"), "email": p.get("mail")} for p in persons]
        return {"data": data}

    def _client_card(self, clid: int) -> dict[str, Any] | None:
        row = self.clients.get(clid)
        if row is None:
            return None
        creator, editor = self.users.get(_intval(row.get("creator"))), self.users.get(_intval(row.get("editor")))
        return {
            "clid": clid, "uid": row.get("uid"), "clientUID": row.get("uid"), "iduser": _intval(row.get("iduser")),
            "title": row["title"], "des": row.get("des"), "idcategory": _intval(row.get("idcategory")),
            "category": self._title_of(self.categories, row.get("idcategory")), "phone": row.get("phone"),
            "fax": row.get("fax"), "site_url": row.get("site_url"), "mail_url": row.get("mail_url"),
            "address": row.get("address"), "pid": _intval(row.get("pid")), "fav": "no", "trash": "no",
            "head_clid": _intval(row.get("head_clid")), "head": "", "scheme": row.get("scheme"),
            "tip_cmr": row.get("tip_cmr"), "relation": row.get("tip_cmr"), "territory": _intval(row.get("territory")),
            "territoryname": self._title_of(self.territories, row.get("territory")), "created": row["date_create"],
            "creator": creator["title"] if creator else "", "creatorID": _intval(row.get("creator")),
            "date_create": _sfdate(row["date_create"]), "edited": row.get("date_edit"),
            "editor": editor["title"] if editor else "", "editorID": _intval(row.get("editor")),
            "date_edit": _sfdate(row.get("date_edit")),
            "clientpath": self._title_of(self.clientpaths, row.get("clientpath")),
            "clientpath2": _intval(row.get("clientpath")), "type": row.get("type"), "priceLevel": "price_1",
            "input1": row.get("input1"),
            "recv": {"clid": clid, "castUrName": "", "castUrNameShort": "", "castName": row["title"],
                     **self._recv(row), "castFacAddr": row.get("address") or "", "castType": row.get("type")},
        }

    def _deal_add(self, params: Params, user: User, json_mode: bool) -> Any:
        if not str(params.get("title") or "").strip():
            raise _error(406, "Отсутствуют параметры - Название сделки")
        clid, payer = _intval(params.get("clid")), _intval(params.get("payer"))
        clid, payer = clid or payer, payer or clid
        if clid not in self.clients or payer not in self.clients:
            raise _error(407, "Клиент или Плательщик не найден.")
        title = format_title(params["title"])
        if self.deal_numbering:
            self.deal_number += 1
            title = f"СД{self.deal_number}: {title}"
        step = next((s for s in STEPS if s[1] == str(params.get("step"))), STEPS[0])
        owner = self._user_id(params["user"]) if params.get("user") else user["iduser"]
        did = self._new_id("deal")
        row = {"did": did, "uid": params.get("uid") or None, "datum": self.today(), "datum_izm": None, "clid": clid,
               "title": title, "mcid": _intval(params.get("mcid")), "iduser": owner,
               "datum_plan": params.get("datum_plan") or (self.now() + timedelta(days=30)).strftime("%Y-%m-%d"),
               "idcategory": step[0], "dog_num": 0, "tip": _intval(params.get("tip")) or 6,
               "direction": _intval(params.get("direction")) or 1,
               "adres": _text(params["adres"]) if params.get("adres") else None,
               "content": _text(params["content"]) if params.get("content") else None, "payer": payer,
               "kol": float(_num(params.get("kol", params.get("summa")))),
               "marga": float(_num(params.get("marga", params.get("marg")))),
               "input1": params.get("input1") or None, "datum_start": params.get("datum_start") or None,
               "datum_end": params.get("datum_end") or None, "close": "no", "datum_close": None, "sid": 0,
               "des_fact": None, "kol_fact": 0, "pid": _intval(params.get("pid")),
               "pid_list": str(params.get("pid_list") or "").replace(",", ";"), "coid1": str(params.get("coid1") or "")}
        self.deals[did] = row
        newparam = {k: row[k] for k in ("title", "kol", "marga", "datum_plan", "content", "adres", "input1", "uid",
                                        "clid", "pid_list", "idcategory", "iduser", "payer", "direction", "tip",
                                        "close", "mcid", "pid")}
        self.fire("deal.add", {"did": did, "autor": user["iduser"], "userUID": "",
                               "newparam": {**newparam, "calculate": "no", "datum": row["datum"],
                                            "autor": user["iduser"], "identity": 1, "idcurrency": 0,
                                            "idcourse": 0, "did": did}})
        return {"result": "Успешно", "data": did}

    def _deal_update(self, params: Params, user: User, json_mode: bool) -> Any:
        if not params.get("did"):
            raise _error(402, "Отсутствуют параметры - did сделки")
        row = self._deal_row(params, user, "Сделка с указанным did не найдена в пределах аккаунта указанного "
                                           "пользователя.")
        values: dict[str, Any] = {}
        for name in DEAL_TEXT:
            if name in params and name != "uid":
                values[name] = _text(params[name]) if params[name] not in (None, "") else None
        if values.get("title"):
            values["title"] = format_title(values["title"])
        for name in ("clid", "payer", "mcid", "direction", "tip"):
            if name in params:
                values[name] = _intval(params[name])
        if "kol" in params or "summa" in params:
            values["kol"] = float(_num(params.get("kol", params.get("summa"))))
        sent_marga = "marga" in params or "marg" in params
        if sent_marga:
            values["marga"] = float(_num(params.get("marga", params.get("marg"))))
        for name in ("pid_list", "coid1"):
            if name in params:
                values[name] = str(params[name] or "").replace(",", ";")
        if self.deal_update_clears:  # Deal::fullupdate always writes these three
            values.setdefault("marga", 0.0)
            values.setdefault("pid_list", "")
            values.setdefault("coid1", "")
        diff = {k: v for k, v in values.items()
                if not _loose_equal(_num(row.get(k)) if k in ("kol", "marga") else row.get(k),
                                    _num(v) if k in ("kol", "marga") else v)}
        if not diff:
            return {"result": IDENTICAL, "data": row["did"], "error": {"code": 302}}
        row.update(values)
        row["datum_izm"] = self.today()
        reported = {k: v for k, v in diff.items() if k != "marga" or sent_marga}
        self.fire("deal.edit", {"did": row["did"], "autor": user["iduser"], "newparam": reported})
        return {"result": "Готово", "data": row["did"]}

    def _deal_change_step(self, params: Params, user: User, json_mode: bool) -> Any:
        if not params.get("did") and not params.get("uid"):
            raise _error(406, "Отсутствуют параметры - did сделки")
        row = self._deal_row(params, user, "Сделка не найдена в пределах аккаунта указанного пользователя.")
        step = next((s for s in STEPS if s[1] == str(params.get("step") or "")), None)
        if step is None:
            raise _error(405, "Отсутствуют параметры - Новый этап")
        old = self._step(row.get("idcategory"))
        row["idcategory"] = step[0]
        self.fire("deal.change.step", {"did": row["did"], "autor": user["iduser"], "stepOld": old[1] if old else "",
                                       "stepNew": step[1], "reason": params.get("description", ""),
                                       "comment": params.get("description", "")})
        return {"result": f"Этап сделки изменен на {step[1]}%. Предыдущий этап {old[1] if old else 0}%.",
                "data": row["did"]}

    def _deal_change_close(self, params: Params, user: User, json_mode: bool) -> Any:
        row = self._deal_row(params, user, "Сделка не найдена в пределах аккаунта указанного пользователя.")
        if row.get("close") == "yes":
            return {"result": "Error", "data": "Сделка уже закрыта",
                    "error": {"code": 407, "text": "Сделка уже закрыта"}}
        status = next((s for s in STATUS_CLOSE if str(s[0]) == str(params.get("sid"))
                       or s[1] == params.get("status_close")), STATUS_CLOSE[3])
        row.update({"close": "yes", "sid": status[0], "datum_close": params.get("datum") or self.today(),
                    "kol_fact": _num(params.get("kol_fact")), "des_fact": params.get("des_fact",
                                                                                     params.get("description"))})
        if "marga" in params:
            row["marga"] = float(_num(params["marga"]))
        self.fire("deal.close", {"did": row["did"], "autor": user["iduser"], "summa": row["kol_fact"],
                                 "status": status[1]})
        return {"result": "Ok", "data": f"Сделка закрыта со статусом {status[1]}"}

    def _deal_change_user(self, params: Params, user: User, json_mode: bool) -> Any:
        row = self._deal_row(params, user, "Сделка не найдена в пределах аккаунта указанного пользователя.")
        owner = self._user_id(params.get("user"))
        if not owner:
            raise _error(405, "Отсутствуют параметры - Новый ответственный")
        row["iduser"] = owner
        self.fire("deal.change.user", {"did": row["did"], "autor": user["iduser"], "newuser": owner})
        return {"result": "Успешно. Клиент не переведен<br>Контакты не переведены", "data": row["did"]}

    def _deal_delete(self, params: Params, user: User, json_mode: bool) -> Any:
        if not params.get("did") and not params.get("uid"):
            raise self._fatal("Uncaught mysqli_sql_exception: You have an error in your SQL syntax; check the manual "
                              "that corresponds to your MariaDB server version for the right syntax to use near "
                              "'and iduser IN (1,2) and identity = '1'' at line 1",
                              "vendor/colshrapnel/safemysql/safemysql.class.php", 466)
        row = self._deal_row(params, user, "Сделка с указанным did не найдена в пределах аккаунта указанного "
                                           "пользователя.")
        del self.deals[row["did"]]
        self.fire("deal.delete", {"did": row["did"], "autor": user["iduser"]})
        return {"result": "Сделка удалена", "data": row["did"]}
