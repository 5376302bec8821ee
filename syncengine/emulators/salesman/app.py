"""SalesMan CRM REST API v2 (``/developer/v2/<method>``), as spec ``salesman.md`` §7 describes it.

Every answer is HTTP 200 with errors in the body; PHP fatals are HTML fragments under a JSON content
type. The defects a sync engine must work around are on by default, each behind its own switch:
``person_update_overwrites`` (a contact update blanks what it does not receive and drops the owner
unless a numeric ``iduser`` is sent), ``deal_update_clears`` (a deal update zeroes ``marga`` and
clears ``pid_list``/``coid1``), ``change_start_bug`` (``dateChangeStart`` alone compares with
``dateStart``), ``deal_info_nulls``, ``task_list_needs_active`` (PHP 8), ``task_update_resets``,
``unstable_order`` (no tie-breaker in the default order) and, off by default as in the recorded
fixtures, ``person_write_fatal`` (PHP 8 prints a fatal page after a successful contact write).

Webhooks are POSTed from a background thread to ``webhook_url`` (every event) and to URLs registered
with ``control_webhook``; bodies carry ids and diffs with every scalar a string.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..base import Request, Response
from .client import ClientApi
from .common import ACTIONS, CONTENT_TYPE, Params, User, _Fail, _reply, fatal_page
from .deal import DealApi
from .directory import DirectoryApi
from .history import HistoryApi
from .lead import LeadApi
from .person import PersonApi
from .task import TaskApi


class SalesManApp(ClientApi, PersonApi, DealApi, TaskApi, HistoryApi, LeadApi, DirectoryApi):
    """One SalesMan install: the resources' handlers, reached through :data:`ROUTES`."""

    def handle(self, request: Request) -> Response:
        parsed = self._parse(request)
        method, action, params = parsed["method"], parsed["action"], parsed["params"]
        if method not in ACTIONS:
            return Response.html("<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n"
                                 "<title>404 Not Found</title>\n</head><body>\n<h1>Not Found</h1>\n"
                                 "</body></html>\n", 404)
        with self.lock:
            user = next((u for u in self.users.values() if u["login"] == parsed["login"]), None)
            if parsed["apikey"] != self.api_key or user is None:
                return _reply({"result": "Error", "error": {"code": 401, "text": "Неизвестный пользователь"}})
            if action not in ACTIONS[method]:
                return self._unknown_action(method)
            if self._html_errors:
                message = self._html_errors.pop(0)
                return Response(200, fatal_page(message, f"/var/www/salesman/developer/v2/{method}.php", 377)
                                .encode("utf-8"), CONTENT_TYPE)
            handler = ROUTES[(method, action)]
            try:
                return _reply(handler(self, params, user, parsed["json"]))
            except _Fail as fail:
                return fail.response

    def _unknown_action(self, method: str) -> Response:
        if method == "lead":
            return _reply({"result": "Error", "error": {"code": 402, "text": "Не известный метод"}})
        if method in ("user", "guides"):
            return _reply({"result": "Error", "error": {"code": "402", "text": "Неизвестный метод"}})
        return _reply({"error": {"code": 402, "text": "Неизвестный метод"}})


Handler = Callable[[SalesManApp, Params, User, bool], Any]
# (method of /developer/v2/<method>, its "action") -> the handler; ACTIONS is the CRM's own whitelist
ROUTES: dict[tuple[str, str], Handler] = {
    ("client", "fields"): ClientApi._client_fields,
    ("client", "add"): ClientApi._client_add,
    ("client", "add.list"): ClientApi._client_add_list,
    ("client", "delete"): ClientApi._client_delete,
    ("client", "info"): ClientApi._client_info,
    ("client", "list"): ClientApi._client_list,
    ("client", "update"): ClientApi._client_update,
    ("person", "fields"): PersonApi._person_fields,
    ("person", "add"): PersonApi._person_add,
    ("person", "add.list"): PersonApi._person_add_list,
    ("person", "delete"): PersonApi._person_delete,
    ("person", "info"): PersonApi._person_info,
    ("person", "list"): PersonApi._person_list,
    ("person", "update"): PersonApi._person_update,
    ("deal", "fields"): DealApi._deal_fields,
    ("deal", "add"): DealApi._deal_add,
    ("deal", "change.close"): DealApi._deal_change_close,
    ("deal", "change.step"): DealApi._deal_change_step,
    ("deal", "change.user"): DealApi._deal_change_user,
    ("deal", "delete"): DealApi._deal_delete,
    ("deal", "direction"): DealApi._deal_direction,
    ("deal", "funnel"): DealApi._deal_funnel,
    ("deal", "info"): DealApi._deal_info,
    ("deal", "list"): DealApi._deal_list,
    ("deal", "statusclose"): DealApi._deal_statusclose,
    ("deal", "steplist"): DealApi._deal_steplist,
    ("deal", "type"): DealApi._deal_type,
    ("deal", "update"): DealApi._deal_update,
    ("task", "fields"): TaskApi._task_fields,
    ("task", "add"): TaskApi._task_add,
    ("task", "delete"): TaskApi._task_delete,
    ("task", "doit"): TaskApi._task_doit,
    ("task", "info"): TaskApi._task_info,
    ("task", "list"): TaskApi._task_list,
    ("task", "tips"): TaskApi._task_tips,
    ("task", "update"): TaskApi._task_update,
    ("history", "fields"): HistoryApi._history_fields,
    ("history", "add"): HistoryApi._history_add,
    ("history", "delete"): HistoryApi._history_delete,
    ("history", "info"): HistoryApi._history_info,
    ("history", "list"): HistoryApi._history_list,
    ("lead", "add"): LeadApi._lead_add,
    ("lead", "info"): LeadApi._lead_info,
    ("lead", "list"): LeadApi._lead_list,
    ("user", "user"): DirectoryApi._user_user,
    ("user", "user.add"): DirectoryApi._user_user_add,
    ("user", "user.list"): DirectoryApi._user_user_list,
    ("guides", "category"): DirectoryApi._guides_category,
    ("guides", "clientpath"): DirectoryApi._guides_clientpath,
    ("guides", "company.bank"): DirectoryApi._guides_company_bank,
    ("guides", "company.list"): DirectoryApi._guides_company_list,
    ("guides", "company.listfull"): DirectoryApi._guides_company_listfull,
    ("guides", "company.signers"): DirectoryApi._guides_company_signers,
    ("guides", "relations"): DirectoryApi._guides_relations,
    ("guides", "territory"): DirectoryApi._guides_territory,
}


def create_app(records: int = 100, *, login: str = "admin", api_key: str = "emulator", seed: int = 1,
               webhook_url: str | None = None, timezone_name: str = "Europe/Moscow",
               person_update_overwrites: bool = True, deal_update_clears: bool = True,
               change_start_bug: bool = True, deal_info_nulls: bool = True, task_list_needs_active: bool = True,
               task_update_resets: bool = True, unstable_order: bool = True, person_write_fatal: bool = False,
               deal_numbering: bool = True, workers: int = 4) -> SalesManApp:
    return SalesManApp(records, login=login, api_key=api_key, seed=seed, webhook_url=webhook_url,
                       timezone_name=timezone_name, person_update_overwrites=person_update_overwrites,
                       deal_update_clears=deal_update_clears, change_start_bug=change_start_bug,
                       deal_info_nulls=deal_info_nulls, task_list_needs_active=task_list_needs_active,
                       task_update_resets=task_update_resets, unstable_order=unstable_order,
                       person_write_fatal=person_write_fatal, deal_numbering=deal_numbering,
                       workers=int(workers))
