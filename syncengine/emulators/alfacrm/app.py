"""Alfa CRM's ``/v2api`` as specs/alfacrm.md describes it: a PHP Yii2 REST app.

Every call is a POST with a JSON body; ``/v2api/auth/login`` hands out tokens that expire; ``index``
pages are 0-based (default 20 rows, ``?per-page=`` up to 50) and ordered by name for customers, so
edits shift rows between pages exactly as on the real server; archived customers and groups hide
unless ``removed`` is 1 or 2; validation failures are HTTP 200 ``success:false``; every write
appends a Log row. Rows are kept in their serialised form and customers in a name index kept sorted
with ``bisect``, so a page costs O(page) Python, not O(N), and 50,000 customers seed in about a
second.
"""
from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from ..base import Request, Response
from .index import IndexApi
from .models import _PATH, _TOKEN_SHAPE, MODELS, READ_ONLY, TOKEN_EXPIRED, TOKEN_INVALID, Invalid, _error, _FastRandom
from .sample import SampleData
from .write import WriteApi


class AlfaApp(IndexApi, WriteApi, SampleData):
    """One Alfa CRM account's ``/v2api``: the actions, reached through :data:`ROUTES`."""

    def handle(self, request: Request) -> Response:
        if request.method != "POST":
            return _error(405, "Method Not Allowed", "Method Not Allowed. This URL can only handle "
                          "the following request methods: POST.")
        body = request.json() if request.body.strip() else {}
        if not isinstance(body, dict):
            body = {}
        if request.path.rstrip("/") == "/v2api/auth/login":
            return self._login(body)
        match = _PATH.match(request.path)
        if not match or match.group(2) not in MODELS or match.group(3) not in ROUTES:
            return _error(404, "Not Found", "Page not found.")
        branch, model, action = match.groups()
        token = request.headers.get("x-alfacrm-token", "")
        with self.lock:
            if not _TOKEN_SHAPE.match(token):
                return _error(401, "Unauthorized", TOKEN_INVALID if token else TOKEN_EXPIRED)
            if self.tokens.get(token, 0) < time.monotonic():
                self.tokens.pop(token, None)
                return _error(401, "Unauthorized", TOKEN_EXPIRED)
            if model == "log" and not self.log_access:
                return _error(403, "Forbidden", "Access Denied")
            if action != "index" and model in READ_ONLY:
                return _error(404, "Not Found", "Page not found.")
            try:
                return ROUTES[action](self, model, int(branch) if branch else None, body, request.query)
            except Invalid as exc:
                return self._invalid(exc.problems)

    def _login(self, body: dict[str, Any]) -> Response:
        if body.get("email") != self.email or body.get("api_key") != self.api_key:
            return _error(403, "Forbidden", "Not Authorized")
        token = secrets.token_hex(16)
        with self.lock:
            self.tokens[token] = time.monotonic() + self.token_ttl
        return Response.json({"token": token})


# handler(app, model, branch of the path (None: all), JSON body, query string) -> the answer
Handler = Callable[[AlfaApp, str, "int | None", dict[str, Any], dict[str, str]], Response]
# the action of /v2api/{branch}/{model}/{action} -> its handler; every model has the four
ROUTES: dict[str, Handler] = {
    "index": IndexApi._index,
    "create": WriteApi._create,
    "update": WriteApi._update,
    "delete": WriteApi._delete,
}


def create_app(records: int = 100, *, email: str = "admin@example.com", api_key: str = "emulator",
               branch: int = 1, branches: int = 1, token_ttl: float = 3600.0, seed: int = 1,
               page_size: int = 20, max_page_size: int = 50, honour_per_page: bool = True,
               past_end: str = "empty", delete_mode: str = "hard", validation_style: str = "list",
               log_access: bool = True, retry_after_header: bool = True) -> AlfaApp:
    """An Alfa CRM with RECORDS customers (and ~RECORDS/2 lessons and payments) in BRANCHES branches."""
    app = AlfaApp(email=email, api_key=api_key, branch=branch, branches=branches, token_ttl=token_ttl,
                  page_size=page_size, max_page_size=max_page_size, honour_per_page=honour_per_page,
                  past_end=past_end, delete_mode=delete_mode, validation_style=validation_style,
                  log_access=log_access, retry_after_header=retry_after_header)
    app.seed(records, _FastRandom(seed))
    app.finish_seed()
    return app
