"""The state of the Alfa CRM emulator: tables, tokens, clock, the Log, and the test hooks."""
from __future__ import annotations

import bisect
import random
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..base import Clock, EmulatorApp, Request, Response
from .models import (
    _PATH,
    ACTIVE_E_DATE,
    EVENT_CREATE,
    EVENT_DELETE,
    EVENT_UPDATE,
    MODELS,
    SERVER_TZ,
    UI_USER_ID,
    _archived,
    _clean,
    _error,
    _person,
)


class AlfaState(EmulatorApp):
    """One account's tables, tokens and clock, the write path every change takes (with its Log
    row), and the test hooks; the actions are the mixins of :class:`.app.AlfaApp`."""
    kind = "alfacrm"

    def __init__(self, *, email: str, api_key: str, branch: int, branches: int, token_ttl: float,
                 page_size: int, max_page_size: int, honour_per_page: bool, past_end: str,
                 delete_mode: str, validation_style: str, log_access: bool, retry_after_header: bool):
        super().__init__()
        if past_end not in ("empty", "clamp"):
            raise ValueError("past_end must be 'empty' or 'clamp'")
        if delete_mode not in ("hard", "archive"):
            raise ValueError("delete_mode must be 'hard' or 'archive'")
        if validation_style not in ("list", "map", "422"):
            raise ValueError("validation_style must be 'list', 'map' or '422'")
        self.email, self.api_key = email, api_key
        self.branch_ids = list(range(branch, branch + max(1, branches)))
        self.token_ttl = token_ttl
        self.page_size, self.max_page_size = page_size, max_page_size
        self.honour_per_page, self.past_end = honour_per_page, past_end
        self.delete_mode, self.validation_style = delete_mode, validation_style
        self.log_access, self.retry_after_header = log_access, retry_after_header
        self.tokens: dict[str, float] = {}          # token -> monotonic expiry
        self.tables: dict[str, dict[int, dict[str, Any]]] = {m: {} for m in MODELS}
        self.next_id: dict[str, int] = dict.fromkeys(MODELS, 1)
        self.version: dict[str, int] = dict.fromkeys(MODELS, 0)
        self._by_name: dict[str, list[tuple[str, int]]] = {m: [] for m, s in MODELS.items() if s.order == "name"}
        self._log_by_entity: dict[str, list[int]] = {}
        self._views: dict[tuple[Any, ...], tuple[int, list[int]]] = {}
        self._page_hooks: list[tuple[str, int, Callable[[], Any]]] = []
        self._broken_pages: dict[tuple[str, int], list[Any]] = {}   # (model, page) -> [mode, times]
        self.clock = Clock()

    def now(self) -> datetime:
        """Server-local (Moscow) wall time, naive, to the second: what b_date and Log date_time hold."""
        return datetime.fromtimestamp(self.clock.now(), SERVER_TZ).replace(tzinfo=None, microsecond=0)

    def operation(self, request: Request) -> str:
        match = _PATH.match(request.path)
        return f"{match.group(2)}/{match.group(3)}" if match else request.path

    def fault_response(self) -> Response:
        return _error(500, "Internal Server Error", "An internal server error occurred.")

    def rate_limited_response(self, retry_after: int) -> Response:
        headers = {"Retry-After": str(retry_after)} if self.retry_after_header else {}
        return Response.json({"name": "Too Many Requests", "message": "Rate limit exceeded.",
                              "code": 0, "status": 429}, 429, headers=headers)

    def expire_sessions(self) -> None:
        self.tokens.clear()

    def insert(self, model: str, values: dict[str, Any], user_id: int = UI_USER_ID) -> dict[str, Any]:
        """Validate and store a new row; append its Log row. Returns the row as served."""
        spec = MODELS[model]
        row = spec.blank()
        if "e_date" in row:
            row["e_date"] = ACTIVE_E_DATE
        if model == "customer":
            row["b_date"] = self.now().strftime("%Y-%m-%d %H:%M:%S")
        row.update(_clean(spec, values, creating=True))
        row["id"] = self.next_id[model]
        self.next_id[model] += 1
        self._store(model, row)
        self._log(spec.cls, row["id"], EVENT_CREATE, [], {k: v for k, v in row.items() if k != "id"}, user_id)
        return row

    def change(self, model: str, row_id: int, values: dict[str, Any], user_id: int = UI_USER_ID, *,
               logged: bool = True) -> dict[str, Any]:
        """Partial update; logs only the attributes that changed (LOGGED=False: a Log blind spot)."""
        spec = MODELS[model]
        row = self.tables[model][row_id]
        new = _clean(spec, values, creating=False)
        old = {k: row[k] for k, v in new.items() if row[k] != v}
        if old:
            self._unindex(model, row)
            row.update(new)
            self._store(model, row)
            if logged:
                self._log(spec.cls, row_id, EVENT_UPDATE, old, {k: row[k] for k in old}, user_id)
        return row

    def remove(self, model: str, row_id: int, user_id: int = UI_USER_ID) -> None:
        row = self.tables[model].pop(row_id)
        self._unindex(model, row)
        self.version[model] += 1
        self._log(MODELS[model].cls, row_id, EVENT_DELETE, {k: v for k, v in row.items() if k != "id"}, [], user_id)

    def _store(self, model: str, row: dict[str, Any]) -> None:
        self.tables[model][row["id"]] = row
        if model in self._by_name:
            bisect.insort(self._by_name[model], (row["name"].casefold(), row["id"]))
        self.version[model] += 1

    def _unindex(self, model: str, row: dict[str, Any]) -> None:
        if model in self._by_name:
            index = self._by_name[model]
            at = bisect.bisect_left(index, (row["name"].casefold(), row["id"]))
            if at < len(index) and index[at][1] == row["id"]:
                del index[at]

    def _log(self, cls: str, entity_id: int, event: int, old: Any, new: Any, user_id: int) -> None:
        log_id = self.next_id["log"]
        self.next_id["log"] += 1
        self.tables["log"][log_id] = {
            "id": log_id, "entity": cls, "entity_id": entity_id, "user_id": user_id, "event": event,
            "fields_old": old or [], "fields_new": new or [], "fields_rel": [],
            "date_time": self.now().strftime("%Y-%m-%d %H:%M:%S")}
        self._log_by_entity.setdefault(cls, []).append(log_id)
        self.version["log"] += 1

    def control_create(self, model: str, values: dict[str, Any]) -> dict[str, Any]:
        return self.insert(model, values)

    def control_edit(self, model: str, id: int, values: dict[str, Any], logged: bool = True) -> dict[str, Any]:
        """Edit a row as a UI user; ``logged=False`` as an import or bulk action the Log misses."""
        return self.change(model, int(id), values, logged=logged)

    def control_delete(self, model: str, id: int) -> None:
        """A hard delete, as an admin purging a row: the row is gone, the Log keeps the event."""
        self.remove(model, int(id))

    def control_archive(self, model: str, id: int, archived: bool = True) -> dict[str, Any]:
        """Archive (e_date = today) or restore (e_date = 2030-12-31) a customer or group."""
        if not MODELS[model].archivable:
            raise ValueError(f"{model} rows cannot be archived")
        e_date = self.now().date().isoformat() if archived else ACTIVE_E_DATE
        return self.change(model, int(id), {"e_date": e_date})

    def control_rename(self, model: str = "customer", ids: list[int] | None = None, count: int = 1,
                       seed: int | None = None) -> list[int]:
        """Give rows new random names (moving them in the name order); returns their ids."""
        rnd = random.Random(seed)
        chosen = [int(i) for i in ids] if ids else rnd.sample(sorted(self.tables[model]), count)
        for row_id in chosen:
            self.change(model, row_id, {"name": f"{_person(rnd)} {rnd.randint(1, 999)}"})
        return chosen

    def control_move_branch(self, id: int, branch: int | list[int], model: str = "customer") -> dict[str, Any]:
        """Move a row to another branch as a UI user does (logged): listings of its old branch no
        longer show it, the row itself lives on."""
        branches = [int(b) for b in branch] if isinstance(branch, list) else [int(branch)]
        kinds = MODELS[model].kinds
        if "branch_ids" in kinds:
            return self.change(model, int(id), {"branch_ids": branches})
        if "branch_id" in kinds:
            return self.change(model, int(id), {"branch_id": branches[0]})
        raise ValueError(f"{model} rows belong to no branch")

    def control_clock(self, now: str | None = None, advance: float = 0, real: bool = False) -> str:
        """Freeze the server clock at ``now`` (``yyyy-mm-dd HH:MM:SS``, Moscow), move it by ``advance``
        seconds, or go back to real time; returns the server time (what the next Log row says)."""
        at = None if now is None else \
            datetime.strptime(str(now), "%Y-%m-%d %H:%M:%S").replace(tzinfo=SERVER_TZ).timestamp()
        self.clock.set(at=at, advance=advance, real=real)
        return self.now().strftime("%Y-%m-%d %H:%M:%S")

    def control_expire_tokens(self) -> int:
        expired = len(self.tokens)
        self.tokens.clear()
        return expired

    def control_at_page(self, model: str, page: int, action: str, payload: dict[str, Any] | None = None) -> None:
        """Run ``control_<action>(**payload)`` when ``{model}/index`` page PAGE is next asked for."""
        method = getattr(self, f"control_{action.replace('-', '_')}")
        self.on_page(model, page, lambda: method(**(payload or {})))

    def control_break_page(self, model: str, page: int, mode: str = "error", times: int = 1) -> None:
        """The next TIMES requests of page PAGE answer HTTP 500 (``error``) or no items (``empty``)."""
        if mode not in ("error", "empty"):
            raise ValueError("mode must be 'error' or 'empty'")
        self._broken_pages[(model, int(page))] = [mode, int(times)]

    def control_options(self, **values: Any) -> dict[str, Any]:
        """Switch behaviours at run time (page_size, delete_mode, log_access, validation_style, …)."""
        allowed = {"page_size", "max_page_size", "honour_per_page", "past_end", "delete_mode",
                   "validation_style", "log_access", "retry_after_header", "token_ttl"}
        for name, value in values.items():
            if name not in allowed:
                raise ValueError(f"unknown option {name!r}; known: {', '.join(sorted(allowed))}")
            setattr(self, name, value)
        return {name: getattr(self, name) for name in sorted(allowed)}

    def on_page(self, model: str, page: int, hook: Callable[[], Any]) -> None:
        """Python form of :meth:`control_at_page` for in-process tests."""
        with self.lock:
            self._page_hooks.append((model, int(page), hook))

    def live_records(self, model: str) -> dict[str, dict[str, Any]]:
        """Every existing row (archived ones too), by id as a string: what a mirror should hold."""
        with self.lock:
            return {str(i): dict(row) for i, row in self.tables[model].items()}

    def archived_ids(self, model: str) -> set[str]:
        with self.lock:
            return {str(i) for i, row in self.tables[model].items() if _archived(row)}

    def toml_section(self, name: str, url: str) -> str:
        var = f"{name.upper().replace('-', '_')}_API_KEY"
        return (f"# export {var}={self.api_key}\n"
                f"[systems.{name}]\n"
                f'kind = "alfacrm"\n'
                f'url = "{url}"\n'
                f'email = "{self.email}"\n'
                f'api_key = "${{{var}}}"\n'
                f"branch = {self.branch_ids[0]}\n")
