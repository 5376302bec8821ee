"""vtiger Records by id: ``retrieve``, ``create``, ``update``, ``revise``, ``delete`` (§6)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...jsonutil import loads
from ..base import Request, Response
from .model import BAD_ID, DENIED_FOR_ID, GHOST_REPLY, Fatal, Module, User, WsError
from .state import VtigerState


class RecordApi(VtigerState):
    """Records by id: ``retrieve``, ``create``, ``update``, ``revise``, ``delete`` (§6)."""

    def _op_retrieve(self, request: Request, param: Callable, user: User, _sn: Any) -> Any:
        mod, crmid = self._resolve(param("id"))
        return self._record(mod, crmid)

    def _element(self, raw: str | None) -> Any:
        """The decoded ``element`` parameter, with V84's PHP 8 failure modes."""
        if raw is None:
            if self.dialect.strict_element:
                raise Fatal()
            return None
        try:
            return loads(raw)
        except ValueError:
            if self.dialect.strict_element:
                raise WsError("INTERNAL_SERVER_ERROR", "Unknown Error while processing request") from None
            return None

    def _op_create(self, request: Request, param: Callable, user: User, _sn: Any) -> Any:
        mod = self._entity_module(param("elementType"))
        element = self._element(param("element"))
        element = element if isinstance(element, dict) else {}
        self._check_references(mod, element)
        self._check_mandatory(mod, element, present_only=False)
        crmid = self._save(mod, element, user.id)
        record = self._record(mod, crmid)
        owner = str(record.get(mod.owner_field, ""))
        if self.dialect.ghost_create and "x" not in owner and record.get("emailoptout") == "0":
            return Response(200, GHOST_REPLY.encode(), "text/html; charset=UTF-8")
        return record

    def _element_target(self, element: Any) -> tuple[Module, int]:
        ws_id = element.get("id") if isinstance(element, dict) else None
        if not ws_id:
            if self.dialect.missing_id_invalid:
                raise WsError("INVALID_ID_ATTRIBUTE", BAD_ID)
            raise WsError("ACCESS_DENIED", DENIED_FOR_ID)
        return self._resolve(ws_id)

    def _op_update(self, request: Request, param: Callable, user: User, _sn: Any) -> Any:
        return self._overlay(param("element"), user, revise=False)

    def _op_revise(self, request: Request, param: Callable, user: User, _sn: Any) -> Any:
        return self._overlay(param("element"), user, revise=True)

    def _overlay(self, raw: str | None, user: User, *, revise: bool) -> dict[str, Any]:
        """update (every mandatory field, "" keeps a reference) or revise (only what is sent, "" clears)."""
        element = self._element(raw)
        mod, crmid = self._element_target(element)
        self._check_references(mod, element)
        self._check_mandatory(mod, element, present_only=revise)
        self._save(mod, element, user.id, crmid=crmid, keep_empty_refs=not revise, decode=revise)
        return self._record(mod, crmid)

    def _op_delete(self, request: Request, param: Callable, user: User, _sn: Any) -> Any:
        mod, crmid = self._resolve(param("id"))
        self._trash(mod, crmid, user.id, deleted=1)
        return {"status": "successful"}
