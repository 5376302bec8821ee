"""SalesMan Activity history: ``history.*``."""
from __future__ import annotations

from typing import Any

from .common import Params, User, _error, _intval, _text
from .state import SalesManState


class HistoryApi(SalesManState):
    """Activity history: ``history.*``."""

    def _history_fields(self, params: Params, user: User, json_mode: bool) -> Any:
        return {"data": {"cid": "Идентификатор", "datum": "Дата", "content": "Содержание", "tip": "Тип",
                         "iduser": "Автор", "clid": "Клиент", "pid": "Контакт", "did": "Сделка"}}

    def _history_list(self, params: Params, user: User, json_mode: bool) -> Any:
        pid = str(params.get("pid") or "")  # the typo FIND_IN_SET('<pid>', pid): nothing without pid
        rows = [r for r in self.history.values() if pid and pid in str(r.get("pid") or "").split(";")]
        return {"data": [dict(r) for r in self._page(rows, params)]} if rows else []

    def _history_info(self, params: Params, user: User, json_mode: bool) -> Any:
        row = self.history.get(_intval(params.get("id")))
        if row is None:
            raise _error(403, "Запись не найдена.")
        return {"data": dict(row)}

    def _history_add(self, params: Params, user: User, json_mode: bool) -> Any:
        if not any(params.get(k) for k in ("clid", "pid", "did")) or not params.get("content"):
            raise _error(405, "Отсутствуют параметры")
        if not params.get("datum"):
            raise _error(500, "Incorrect datetime value: ' " + self.now().strftime("%H:%M:%S") + "' for column "
                              "`datum` at row 1")
        cid = self._add_history(_text(params["content"]), user=user, clid=_intval(params.get("clid")),
                                pid=params.get("pid"), did=_intval(params.get("did")),
                                datum=f"{str(params['datum'])[:10]} {self.now():%H:%M:%S}",
                                tip=params.get("tip") or "Событие")
        self.fire("history.add", {"id": cid, "autor": user["iduser"]})
        return {"result": "Успешно", "data": cid}

    def _history_delete(self, params: Params, user: User, json_mode: bool) -> Any:
        if self.history.pop(_intval(params.get("id")), None) is None:
            raise _error(403, "Запись не найдена.")
        return {"result": "Успешно"}
