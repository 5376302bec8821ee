"""Rukovoditel 3.6.2 REST API (``/api/rest.php``) as the spec's "Emulator requirements" describe it.

One endpoint; every call carries ``key``, ``username``, ``password`` and ``action``; entities and
fields are numeric ids; ``select`` answers display values with ``<id>_db_value`` twins, dates as
``m/d/Y H:i`` strings in the app time zone, and pages with the real quirks (a page past the end
repeats the last page). Errors come in the three PHP 8 shapes: HTTP 500 + JSON, HTTP 500 with an
empty body (string error codes such as ``login_fail``), and ``<app_db_error>`` HTML with HTTP 200.
Everything is answered as ``text/html; charset=UTF-8`` with ``\\/``-escaped JSON.

Seed: the default entities (Users, Projects, Tasks, Tickets, Discussions) and the spec's §13
"Contacts" entity (id 25, fields 213-225) with N Russian sample records, reports 66/67, users
``admin`` (administrator), ``manager`` (no Contacts access) and ``client`` (only view_assigned).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..base import Request, Response
from .metadata import MetadataApi
from .model import ACTION_RIGHT, ADMIN_ONLY, HTML, ApiError, DbError, Fatal, _db_error_html, _php_int, _require
from .select import SelectApi
from .write import WriteApi


class RukovoditelApp(MetadataApi, SelectApi, WriteApi):
    """One Rukovoditel install's ``/api/rest.php``: its actions, reached through :data:`ROUTES`."""

    def handle(self, request: Request) -> Response:
        if request.path.rstrip("/") != "/api/rest.php":
            return Response.html("<h1>Not Found</h1>", 404)
        self._warnings = []
        try:
            with self.lock:
                data = self._dispatch(self.params(request))
        except ApiError as exc:
            return self._error(exc)
        except DbError as exc:
            return Response.html(_db_error_html(exc))
        except Fatal:
            return Response.empty(500)
        body = Response.json(data, escape_slashes=True, content_type=HTML)
        if self._warnings:
            body.body = "".join(self._warnings).encode() + body.body
        return body

    def _dispatch(self, p: dict[str, Any]) -> dict[str, Any]:
        if not p.get("key"):
            raise ApiError("key is required")
        if p["key"] != self.api_key:
            raise ApiError("API Key mismatch")
        for name in ("username", "password"):
            if not p.get(name):
                raise ApiError(f"{name} is required")
        user = next((u for u in self.users.values() if u.username == p["username"]), None)
        if user is None or user.password != p["password"]:
            raise ApiError("No match for Username and/or Password", "login_fail")
        if not user.active:
            raise ApiError("Your account is not active", "account_not_active")
        action = p.get("action")
        if not action:
            raise ApiError("action is required")
        handler = ROUTES.get(action) if isinstance(action, str) else None
        if handler is None:
            raise ApiError(f'action "{action}" not exist')
        if action in ADMIN_ONLY and user.group_id != 0:
            raise ApiError("Access denied", "access_denied")
        if action in ACTION_RIGHT:
            entity_id = _php_int(_require(p, "entity_id"))
            access = self.groups.get(user.group_id)
            if access is not None and ACTION_RIGHT[action] not in access.get(entity_id, "").split(","):
                raise ApiError("Access denied", "access_denied")
        self.user = user
        result = handler(self, p)
        return result if isinstance(result, dict) and "status" in result else {"status": "success", "data": result}


Handler = Callable[[RukovoditelApp, dict[str, Any]], Any]   # (app, PHP $_REQUEST) -> data or a full envelope
# the ``action`` parameter -> its handler; anything else is 'action "…" not exist'
ROUTES: dict[str, Handler] = {
    "delete": WriteApi._action_delete,
    "get_entities": MetadataApi._action_get_entities,
    "get_entity_fields": MetadataApi._action_get_entity_fields,
    "get_field_choices": MetadataApi._action_get_field_choices,
    "get_global_list_choices": MetadataApi._action_get_global_list_choices,
    "get_global_lists": MetadataApi._action_get_global_lists,
    "insert": WriteApi._action_insert,
    "insert_comment": WriteApi._action_insert_comment,
    "login": MetadataApi._action_login,
    "select": SelectApi._action_select,
    "update": WriteApi._action_update,
}


def create_app(records: int = 100, *, username: str = "admin", password: str = "emulator",
               api_key: str = "emulator", timezone: str = "Europe/Moscow", seed: int = 1,
               language: str = "en", error_mode: str = "php8", display_errors: bool = False,
               unique_email: bool = False) -> RukovoditelApp:
    """A Rukovoditel 3.6 with N seeded Contacts. ``language="ru"`` names the Contacts entity and its
    fields in Russian; ``error_mode="legacy"`` answers errors like PHP 7 (HTTP 200 + JSON)."""
    return RukovoditelApp(records, username=username, password=password, api_key=api_key, timezone=timezone,
                          seed=seed, language=language, error_mode=error_mode, display_errors=display_errors,
                          unique_email=unique_email)


# -- PHP helpers ---------------------------------------------------------------------------------
