"""The vtiger webservice (``/webservice.php``) as a local HTTP server, in three dialects.

``v84`` is stock vtiger 8.4.0 on PHP 8 (UTC, ``null`` for empty references, raw UTF-8),
``sp72`` is SalesPlatform 7.2 (Europe/Moscow, ``""`` for empties, ``\\uXXXX`` and ``\\/``, Russian
labels, the ``tags`` fatal of ``SELECT *``) and ``simplycrm`` is a vtiger 7 fork (PHP 7 semantics,
``errorCode``/``errorMessage`` error keys). The contract is §13 of ``shared/specs/vtiger.md``; the
replies follow the recordings in ``shared/fixtures/real``.

Records live in an in-memory SQLite database, one table per module with vtiger's crmentity columns
folded in, so ``query`` becomes SQL the way vtiger pastes VTQL into MySQL and ``sync`` is the
§8.3 algorithm run literally as three indexed SQL statements: both stay at a few milliseconds a
page with 200,000 records.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from ..base import Request, Response
from . import layouts
from .auth import AuthApi
from .metadata import MetadataApi
from .model import DIALECTS, STOCK_PREFIXES, Fatal, WsError
from .query import QueryApi
from .records import RecordApi
from .sync import SyncApi


class VtigerApp(AuthApi, MetadataApi, RecordApi, QueryApi, SyncApi):
    """The webservice of one vtiger install: its operations, reached through :data:`ROUTES`."""

    def handle(self, request: Request) -> Response:
        if not request.path.endswith("/webservice.php"):
            return Response.html("<h1>Not Found</h1>", 404)
        with self.lock:
            try:
                result = self._dispatch(request)
            except Fatal:
                return Response.empty(self.fatal_status)
            except WsError as exc:
                return self._error(exc.code, exc.message)
            if isinstance(result, Response):
                return result
            return self._json({"success": True, "result": result})

    def _dispatch(self, request: Request) -> Any:
        name = self.operation(request)
        if name not in ROUTES:
            raise Fatal()  # UNKNOWN_OPERATION is thrown outside webservice.php's try block
        fmt = request.form.get("format") or request.query.get("format")
        if fmt not in (None, "", "0", "json"):
            return Response(500, b"", "application/json")
        op_type, prelogin, handler = ROUTES[name]
        session_name = request.form.get("sessionName") or request.query.get("sessionName")
        user = None
        if session_name not in (None, "", "0", "null"):
            user = self._session_user(session_name)
        elif not prelogin:
            raise WsError("AUTHENTICATION_REQUIRED", "Authencation required")
        source = request.query if op_type == "GET" else request.form

        def param(key: str) -> str | None:
            value = source.get(key)
            return None if value in (None, "", "0") else value

        return handler(self, request, param, user, session_name)


Param = Callable[[str], "str | None"]   # a handler parameter by name, None when absent, "" or "0"
# handler(app, request, param, user (None before login), sessionName) -> the result, or a Response
Handler = Callable[[VtigerApp, Request, Param, Any, Any], Any]


class Operation(NamedTuple):
    """How webservice.php runs an operation (§1.1)."""

    params_from: str    # "GET": handler parameters only from the query string; "POST": only from the form
    prelogin: bool      # callable without a sessionName
    handler: Handler


ROUTES: dict[str, Operation] = {
    "getchallenge": Operation("GET", True, AuthApi._op_getchallenge),
    "login": Operation("POST", True, AuthApi._op_login),
    "logout": Operation("POST", False, AuthApi._op_logout),
    "extendsession": Operation("POST", True, AuthApi._op_extendsession),
    "listtypes": Operation("GET", False, MetadataApi._op_listtypes),
    "describe": Operation("GET", False, MetadataApi._op_describe),
    "create": Operation("POST", False, RecordApi._op_create),
    "retrieve": Operation("GET", False, RecordApi._op_retrieve),
    "update": Operation("POST", False, RecordApi._op_update),
    "revise": Operation("POST", False, RecordApi._op_revise),
    "delete": Operation("POST", False, RecordApi._op_delete),
    "query": Operation("GET", False, QueryApi._op_query),
    "sync": Operation("GET", False, SyncApi._op_sync),
}


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def create_app(records: int = 100, *, dialect: str = "v84", username: str = "admin",
               access_key: str = "emulator", sync_broken: bool | None = None, php: str | None = None,
               timezone: str | None = None, seed: int = 1, session_idle: float = 1440,
               tags_fatal: bool | None = None, shuffle: bool = False, accounts: int | None = None,
               fatal_status: int = 500, id_prefixes: dict[str, int] | None = None,
               echo_login_request: bool = False, **other_switches: Any) -> VtigerApp:
    """A vtiger webservice with ``records`` Contacts and about records/10 (≥ 3) Accounts.

    ``sync_broken=True`` reproduces a stock install (every ``sync`` is HTTP 500, empty body); the
    default is an install whose admin registered ``syncType`` (like the recorded ones).
    ``php`` is ``"legacy"``, ``"7"`` or ``"8"`` (default per dialect); ``tags_fatal`` switches the
    SalesPlatform ``SELECT *`` fatal; ``shuffle`` makes unordered results and ties unpredictable;
    ``echo_login_request`` makes a failed login repeat the request (the md5 access hash included)
    in its error message, as some installs do.
    """
    if other_switches:
        raise TypeError(f"vtiger emulator: unknown option(s) {', '.join(sorted(other_switches))}")
    if dialect not in DIALECTS:
        raise ValueError(f"vtiger emulator: unknown dialect {dialect!r}; known: {', '.join(DIALECTS)}")
    profile = DIALECTS[dialect]
    php = str(php or profile.php)
    if php not in ("legacy", "7", "8"):
        raise ValueError(f"vtiger emulator: php must be legacy, 7 or 8, not {php!r}")
    prefixes = dict(STOCK_PREFIXES)
    for name in layouts.LISTTYPES_SP72["types"] if profile.russian else layouts.LISTTYPES_V84["types"]:
        prefixes.setdefault(name, max(prefixes.values()) + 1)
    prefixes.update(id_prefixes or {})
    app = VtigerApp(dialect=profile, username=username, access_key=access_key,
                    sync_broken=_flag(sync_broken), php=php, timezone_name=timezone or profile.timezone,
                    session_idle=float(session_idle),
                    tags_fatal=profile.tags_fatal if tags_fatal is None else _flag(tags_fatal),
                    shuffle=_flag(shuffle), fatal_status=int(fatal_status), id_prefixes=prefixes,
                    echo_login_request=_flag(echo_login_request))
    app.seed(int(records), max(3, int(records) // 10) if accounts is None else int(accounts), int(seed))
    return app
