"""Alfa CRM ``create``, ``update`` and ``delete``: validation answers, Log rows, archive or hard delete."""
from __future__ import annotations

from typing import Any

from ..base import Response
from .models import API_USER_ID, MODELS, _error, _int
from .state import AlfaState


class WriteApi(AlfaState):
    """``create``, ``update`` and ``delete``: validation answers, Log rows, archive or hard delete.

    A write that fails validation raises :class:`Invalid`; :meth:`.app.AlfaApp.handle` answers it with
    :meth:`_invalid` in the configured style."""

    def _create(self, model: str, branch: int | None, body: dict[str, Any], query: dict[str, str]) -> Response:
        spec = MODELS[model]
        values = {**body, **{p: query[p] for p in spec.parents if p in query}}
        kinds = spec.kinds
        if branch and "branch_id" in kinds:
            values.setdefault("branch_id", branch)
        if branch and "branch_ids" in kinds and "branch_ids" not in spec.required:
            values.setdefault("branch_ids", [branch])
        row = self.insert(model, values, API_USER_ID)
        return Response.json({"success": True, "errors": [], "model": row})

    def _update(self, model: str, branch: int | None, body: dict[str, Any], query: dict[str, str]) -> Response:
        row_id = self._existing(model, query)
        if row_id is None:
            return _not_found(query)
        row = self.change(model, row_id, body, API_USER_ID)
        return Response.json({"success": True, "errors": [], "model": row})

    def _delete(self, model: str, branch: int | None, body: dict[str, Any], query: dict[str, str]) -> Response:
        row_id = self._existing(model, query)
        if row_id is None:
            return _not_found(query)
        if MODELS[model].archivable and self.delete_mode == "archive":
            self.change(model, row_id, {"e_date": self.now().date().isoformat()}, API_USER_ID)
        else:
            self.remove(model, row_id, API_USER_ID)
        return Response.json({"success": True, "errors": []})

    def _existing(self, model: str, query: dict[str, str]) -> int | None:
        """The row ``?id=`` names, if it exists."""
        row_id = _int(query.get("id"), None)
        return row_id if row_id is not None and row_id in self.tables[model] else None

    def _invalid(self, problems: list[tuple[str, str]]) -> Response:
        if self.validation_style == "422":
            return Response.json([{"field": f, "message": m} for f, m in problems], 422)
        if self.validation_style == "map":
            errors: Any = {}
            for f, m in problems:
                errors.setdefault(f, []).append(m)
        else:
            errors = [m for _, m in problems]
        return Response.json({"success": False, "errors": errors, "model": None})


def _not_found(query: dict[str, str]) -> Response:
    return _error(404, "Not Found", f"Object not found: {query.get('id', '')}")
