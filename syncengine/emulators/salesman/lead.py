"""SalesMan Leads (the collector): ``lead.*``."""
from __future__ import annotations

from typing import Any

from .common import LEAD_STATUS, Params, User, _error, _intval
from .state import SalesManState


class LeadApi(SalesManState):
    """Leads (the collector): ``lead.*``."""

    def _lead_record(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"id": row["id"], "datum": row["datum"], "datum_do": row.get("datum_do"), "email": row.get("email"),
                "phone": row.get("phone"), "site": row.get("site"), "company": row.get("company"),
                "city": row.get("city"), "country": row.get("country"), "content": row.get("description"),
                "clid": row.get("clid", 0), "client": None, "pid": row.get("pid", 0), "person": None,
                "did": row.get("did", 0), "deal": None, "user": 0, "userName": "Не определен",
                "status": row.get("status", 0), "statusName": LEAD_STATUS.get(row.get("status", 0)),
                "rezult": row.get("rezult") or None, "rezultName": "", "clientpath": str(row.get("clientpath", 0)),
                "clientpathName": None, "uids": []}

    def _lead_list(self, params: Params, user: User, json_mode: bool) -> Any:
        rows = list(self.leads.values())
        if params.get("dateStart"):  # DATE_FORMAT(datum, '%y-%m-%d') = value
            rows = [r for r in rows if r["datum"][2:10] == str(params["dateStart"])]
        if str(params.get("status") or "") != "":
            rows = [r for r in rows if str(r.get("status")) == str(params["status"])]
        rows = self._order(rows, params, {"id", "datum", "datum_do", "status", "email", "title"}, "datum", {}, "id")
        page = [self._lead_record(r) for r in self._page(rows, params)]
        if not page:
            raise _error(404, "Не найдено")
        return {"data": page}

    def _lead_info(self, params: Params, user: User, json_mode: bool) -> Any:
        lid = _intval(params.get("id"))
        row = self.leads.get(lid)
        if row is None:
            return {"data": {"description": "", "statusName": "", "rezultName": None, "clientpathName": "",
                             "userName": None, "client": None, "person": None, "deal": None}, "id": lid}
        data = {k: row.get(k) for k in ("id", "datum", "datum_do", "status", "rezult", "title", "email", "phone",
                                        "site", "company", "description", "ip", "city", "country", "iduser",
                                        "clientpath", "pid", "clid", "did", "partner")}
        data.update({f"utm_{k}": None for k in ("source", "medium", "campaign", "term", "content", "referrer")})
        data.update({"statusName": LEAD_STATUS.get(row.get("status", 0)), "rezultName": None, "clientpathName": "",
                     "userName": None, "client": None, "person": None, "deal": None})
        return {"data": data, "id": lid}

    def _lead_add(self, params: Params, user: User, json_mode: bool) -> Any:
        lid = self._new_id("lead")
        self.leads[lid] = {"id": lid, "datum": self.stamp(), "datum_do": None, "status": 0, "rezult": 0,
                           "title": params.get("title"), "email": params.get("email"), "phone": params.get("phone"),
                           "site": params.get("site"), "company": params.get("company"),
                           "description": params.get("description"), "ip": params.get("ip"),
                           "city": params.get("city"), "country": params.get("country"), "iduser": 0,
                           "clientpath": _intval(params.get("clientpath")), "pid": 0, "clid": 0, "did": 0,
                           "partner": 0}
        self.fire("lead.add", {"id": lid, "autor": user["iduser"]})
        return {"result": "Success", "id": lid}
