"""SalesMan Users and dictionaries: ``user.*`` and ``guides.*``."""
from __future__ import annotations

from typing import Any

from .common import Params, User, _error
from .state import SalesManState


class DirectoryApi(SalesManState):
    """Users and dictionaries: ``user.*`` and ``guides.*``."""

    def _user_user(self, params: Params, user: User, json_mode: bool) -> Any:
        wanted = next((u for u in self.users.values()
                       if u["login"] == params.get("user") or str(u["iduser"]) == str(params.get("iduser"))), None)
        if wanted is None:
            return {"error": {"code": "404", "text": "Пользователь не найден"}}
        return {"data": {"iduser": wanted["iduser"], "uid": None, "oid": False, "title": wanted["title"],
                         "login": wanted["login"], "active": wanted["active"], "tip": wanted["tip"],
                         "user_post": wanted["user_post"], "email": wanted["email"], "phone": None,
                         "phone_in": None, "mob": None}}

    def _user_user_list(self, params: Params, user: User, json_mode: bool) -> Any:
        return {"data": [{"iduser": u["iduser"], "uid": None, "oid": False, "title": u["title"], "login": u["login"],
                          "email": u["email"], "active": u["active"]} for u in self.users.values()]}

    def _user_user_add(self, params: Params, user: User, json_mode: bool) -> Any:
        raise _error("500", "Table 'salesman.app_USER' doesn't exist в строке 1146")

    def _guides_category(self, params: Params, user: User, json_mode: bool) -> Any:
        return {"data": [{"id": k, "title": t, "tip": tip} for k, (t, tip) in self.categories.items()]}

    def _guides_territory(self, params: Params, user: User, json_mode: bool) -> Any:
        return {"data": [{"id": k, "title": t} for k, t in self.territories.items()]}

    def _guides_relations(self, params: Params, user: User, json_mode: bool) -> Any:
        return {"data": [{"id": k, "title": t, "color": c} for k, (t, c) in self.relations.items()]}

    def _guides_clientpath(self, params: Params, user: User, json_mode: bool) -> Any:
        return {"data": [{"id": k, "title": t, "utm_source": s, "destination": ""}
                         for k, (t, s) in self.clientpaths.items()]}

    def _guides_company_list(self, params: Params, user: User, json_mode: bool) -> Any:
        raise self._fatal("Uncaught TypeError: array_keys(): Argument #1 ($array) must be of type array, null given",
                          "inc/class/Guides.php", 512)

    _guides_company_listfull = _guides_company_list

    def _guides_company_bank(self, params: Params, user: User, json_mode: bool) -> Any:
        return {"data": []}

    def _guides_company_signers(self, params: Params, user: User, json_mode: bool) -> Any:
        return {"data": [[]]}


# fields=NAME selects these keys, in this order
