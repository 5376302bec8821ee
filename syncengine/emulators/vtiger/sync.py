"""vtiger ``sync``: the change feed, §8.3 run literally as three indexed SQL statements."""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..base import Request
from .model import DENIED, SYNC_WINDOW, Fatal, Module, User, WsError
from .state import VtigerState


class SyncApi(VtigerState):
    """``sync``: the change feed, §8.3 run literally as three indexed SQL statements."""

    def _op_sync(self, request: Request, param: Callable, user: User, _sn: Any) -> Any:
        if self.sync_broken:
            raise Fatal()  # vtws_sync(): Argument #3 ($syncType) not passed
        raw = param("modifiedTime")
        element_type = param("elementType")
        if self.php == "8":
            if raw is None or not re.fullmatch(r"\s*[+-]?\d+\s*", raw) or not element_type:
                raise Fatal()
            mtime = int(raw)
        else:
            leading = re.match(r"\s*[+-]?\d+", raw or "")
            if not leading or int(leading.group()) == 0:
                return {"updated": [], "deleted": [], "more": False, "lastModifiedTime": 0}
            mtime = int(leading.group())
        if element_type == "Users":
            return {"updated": [], "deleted": [], "lastModifiedTime": request.query.get("modifiedTime"),
                    "more": False}
        if element_type:
            info = self.listtypes["information"].get(element_type)
            if not info or not info["isEntity"]:
                raise WsError("ACCESS_DENIED", DENIED)
            modules = [self.modules[element_type]] if element_type in self.modules else []
        else:
            modules = sorted(self.modules.values(), key=lambda m: self.listtypes["types"].index(m.name))
        owners = self._sync_owners(param("syncType"), user)
        try:
            t0 = self.local(mtime)
        except (OverflowError, OSError, ValueError):
            raise Fatal() from None
        return self._sync(modules, owners, t0, mtime)

    def _sync_owners(self, sync_type: str | None, user: User) -> list[str] | None:
        if sync_type == "application":
            if not user.is_admin:
                raise WsError("ACCESS_DENIED", "Only admin users can perform application sync")
            return None
        if sync_type == "userandgroup":
            return [str(user.id), *map(str, user.groups)]
        return [str(user.id)]

    def _sync(self, modules: list[Module], owners: list[str] | None, t0: str, mtime: int) -> dict[str, Any]:
        owner_sql = f' AND "assigned_user_id" IN ({", ".join("?" * len(owners))})' if owners else ""
        owner_params = owners or []
        window: list[str] = []
        for mod in modules:  # 1. the first 100 change events, trashed rows included
            cur = self.db.execute(f'SELECT "modifiedtime" FROM {mod.table} WHERE "modifiedtime" > ?{owner_sql} '
                                  f'ORDER BY "modifiedtime" LIMIT {SYNC_WINDOW}', [t0, *owner_params])
            window.extend(r[0] for r in cur)
        window.sort()
        tmax = window[:SYNC_WINDOW][-1] if window else t0
        updated: list[dict[str, Any]] = []
        deleted: list[str] = []
        more = False
        for mod in modules:
            if window:  # 2. every row of the window, whole seconds, no ORDER BY in vtiger
                cur = self.db.execute(f'SELECT * FROM {mod.table} WHERE "modifiedtime" > ? AND "modifiedtime" <= ?'
                                      f'{owner_sql} ORDER BY crmid', [t0, tmax, *owner_params])
                names = [d[0] for d in cur.description]
                rows = [dict(zip(names, r, strict=False)) for r in cur.fetchall()]
                if self.shuffle:
                    self._random.shuffle(rows)
                live = [r for r in rows if not r["deleted"] and not r["converted"]]
                deleted.extend(f"{mod.prefix}x{r['crmid']}" for r in rows if r["deleted"] or r["converted"])
                updated.extend(self._present(mod, live, mod.fields, as_row=True))
            more = more or self.db.execute(f'SELECT 1 FROM {mod.table} WHERE "modifiedtime" > ?{owner_sql} LIMIT 1',
                                           [tmax, *owner_params]).fetchone() is not None
        return {"updated": updated, "deleted": deleted, "more": more,
                "lastModifiedTime": self.epoch(tmax) if window else mtime}
