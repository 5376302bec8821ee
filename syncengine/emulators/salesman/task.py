"""SalesMan Tasks (reminders): ``task.*``."""
from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from .common import TASK_FIELDS, TASK_TIPS, Params, User, _error, _intval, _like, _moment, _text
from .state import SalesManState


class TaskApi(SalesManState):
    """Tasks (reminders): ``task.*``."""

    def _task_fields(self, params: Params, user: User, json_mode: bool) -> Any:
        return {"data": dict(TASK_FIELDS)}

    def _task_tips(self, params: Params, user: User, json_mode: bool) -> Any:
        return {"data": [{"title": t, "color": c, "filter": f} for t, c, f in TASK_TIPS]}

    def _task_record(self, row: dict[str, Any], *, info: bool = False) -> dict[str, Any]:
        owner, author = self.users.get(_intval(row.get("iduser"))), self.users.get(_intval(row.get("autor")))
        client, deal = self.clients.get(_intval(row.get("clid"))), self.deals.get(_intval(row.get("did")))
        out = {"tid": str(row["tid"]), "datum": row["datum"], "totime": row["totime"], "title": row["title"],
               "des": row.get("des"), "tip": row.get("tip"), "active": row.get("active"),
               "priority": str(row.get("priority") or 0), "speed": str(row.get("speed") or 0),
               "iduser": _intval(row.get("iduser")), "user": owner["login"] if owner else "",
               "autor": _intval(row.get("autor")), "autorlogin": author["login"] if author else "",
               "clid": _intval(row.get("clid")), "client": client["title"] if client else ""}
        if info:
            pids = [p for p in re.split(r"[;,]", str(row.get("pid") or "")) if p.strip()] or ["0"]
            out["person"] = [{"pid": int(p), "person": (self.persons.get(int(p)) or {}).get("person", "")}
                             for p in pids]
        out.update({"did": _intval(row.get("did")), "dogovor": deal["title"] if deal else "",
                    "readonly": row.get("readonly") or "no", "day": row.get("day"),
                    "status": str(row.get("status") or 0)})
        return out

    def _task_list(self, params: Params, user: User, json_mode: bool) -> Any:
        rows = list(self.tasks.values())
        start, end = params.get("dateStart") or self.today(), params.get("dateEnd") or self.today()
        rows = [r for r in rows if _moment(start) <= _moment(r["datum"]) <= _moment(end)]
        active = params.get("active")
        if active in (None, "") and self.task_list_needs_active:
            rows = []  # PHP 8: `active = ''`
        elif active in ("yes", "no"):
            rows = [r for r in rows if r.get("active") == active]
        people = self._people(user)
        if params.get("user"):
            rows = [r for r in rows if _intval(r["iduser"]) == self._user_id(params["user"])]
        else:
            rows = [r for r in rows if _intval(r["iduser"]) in people]
        for key in ("clid", "did"):
            if params.get(key):
                rows = [r for r in rows if _intval(r.get(key)) == _intval(params[key])]
        if params.get("word"):
            rows = [r for r in rows if _like(r.get("title"), params["word"]) or _like(r.get("des"), params["word"])]
        rows = self._shown("task", rows, params)
        rows = self._order(rows, params, set(TASK_FIELDS) | {"created"}, "datum", {}, "tid")
        page = [self._task_record(r) for r in self._page(rows, params)]
        return {"data": page} if page else []

    def _task_row(self, params: dict[str, Any], user: dict[str, Any], text: str, code: int | str) -> dict[str, Any]:
        if not params.get("id"):
            raise _error(405, "Отсутствуют параметры - id напоминания")
        row = self.tasks.get(_intval(params["id"]))
        if row is None or _intval(row["iduser"]) not in self._people(user):
            raise _error(code, text)
        return row

    def _task_info(self, params: Params, user: User, json_mode: bool) -> Any:
        row = self._task_row(params, user, "Напоминание с указанным id не найдено в пределах аккаунта указанного "
                                           "пользователя.", "403")
        return {"data": self._task_record(row, info=True)}

    def _task_values(self, params: dict[str, Any]) -> dict[str, Any]:
        return {k: (_text(params[k]) if k in ("title", "des") else params[k])
                for k in ("title", "des", "tip", "datum", "totime", "priority", "speed", "active", "clid", "pid",
                          "did", "readonly", "day", "status") if k in params}

    def _task_add(self, params: Params, user: User, json_mode: bool) -> Any:
        if not str(params.get("title") or "").strip():
            raise _error(405, "Отсутствуют параметры - Заголовок")
        tid = self._new_id("task")
        owner = self._user_id(params["user"]) if params.get("user") else user["iduser"]
        row = {"tid": tid, "datum": self.today(), "totime": (self.now() + timedelta(hours=1)).strftime("%H:%M"),
               "title": "", "des": "", "tip": "Звонок", "active": "yes", "priority": "0", "speed": "0",
               "iduser": owner, "autor": user["iduser"], "clid": 0, "pid": "", "did": 0, "readonly": "no",
               "day": None, "status": "0", "created": self.stamp()}
        row.update(self._task_values(params))
        self.tasks[tid] = row
        self.fire("task.add", {"id": tid, "autor": user["iduser"]})
        return {"result": "Успешно", "data": tid}

    def _task_update(self, params: Params, user: User, json_mode: bool) -> Any:
        row = self._task_row(params, user, "Напоминание не найдено.", 403)
        values = self._task_values(params)
        if self.task_update_resets:
            for key, blank in (("des", ""), ("priority", "0"), ("pid", ""), ("day", "")):
                values.setdefault(key, blank)
            values["autor"] = 0
        values["iduser"] = self._user_id(params["user"]) if params.get("user") else user["iduser"]
        row.update(values)
        self.fire("task.edit", {"id": row["tid"], "autor": 0})
        return {"result": "Успешно", "data": row["tid"]}

    def _task_doit(self, params: Params, user: User, json_mode: bool) -> Any:
        row = self._task_row(params, user, "Напоминание не найдено.", 403)
        row["active"], row["status"] = "no", str(params.get("status") or 1)
        cid = self._add_history(params.get("description") or row["title"], user=user, clid=_intval(row.get("clid")),
                                pid=row.get("pid"), did=_intval(row.get("did")))
        self.fire("task.doit", {"id": row["tid"], "autor": user["iduser"]})
        return {"result": "Успешно", "data": row["tid"], "message": "Добавлена Активность", "historyID": cid}

    def _task_delete(self, params: Params, user: User, json_mode: bool) -> Any:
        row = self._task_row(params, user, "Напоминание не найдено.", 403)
        del self.tasks[row["tid"]]  # no event exists for task deletes
        return {"result": "Успешно", "data": row["tid"], "message": "Запись удалена"}
