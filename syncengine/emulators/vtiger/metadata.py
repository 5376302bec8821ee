"""vtiger Metadata: ``listtypes`` and ``describe`` (§5)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...jsonutil import loads
from ..base import Request
from .model import DENIED, User, WsError
from .state import VtigerState


class MetadataApi(VtigerState):
    """Metadata: ``listtypes`` and ``describe`` (§5)."""

    def _op_listtypes(self, request: Request, param: Callable, user: User | None, _sn: Any) -> Any:
        wanted = param("fieldTypeList")
        if wanted is None:
            return self.listtypes
        try:
            kinds = loads(wanted)
        except ValueError:
            kinds = None
        if not isinstance(kinds, list):
            return self.listtypes
        names = [m.name for m in self.modules.values() if set(m.types.values()) & set(map(str, kinds))]
        names.sort(key=self.listtypes["types"].index)
        return {"types": names, "information": {n: self.listtypes["information"][n] for n in names} or []}

    def _op_describe(self, request: Request, param: Callable, user: User | None, _sn: Any) -> Any:
        name = param("elementType")
        if not name or name not in self.modules:
            raise WsError("ACCESS_DENIED", f"{DENIED} for name : {name or ''}")
        return self.modules[name].describe
