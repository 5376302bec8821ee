"""Alfa CRM ``index``: filters, branches, the archive, the server's order and 0-based pages."""
from __future__ import annotations

from typing import Any

from ..base import Response, page_of
from .models import MODELS, _archived, _check, _error, _int, _sort_key
from .state import AlfaState


class IndexApi(AlfaState):
    """``index``: filters, branches, the archive, the server's order and 0-based pages."""

    def _index(self, model: str, branch: int | None, body: dict[str, Any], query: dict[str, str]) -> Response:
        spec = MODELS[model]
        missing = [p for p in spec.parents if not query.get(p)]
        if missing:
            return _error(400, "Bad Request", f"Missing required parameters: {', '.join(missing)}")
        page = _int(body.get("page"), 0) or 0
        size = self.page_size
        if self.honour_per_page and query.get("per-page"):
            size = min(max(_int(query["per-page"], size) or 1, 1), self.max_page_size)
        for hook_model, hook_page, hook in list(self._page_hooks):
            if hook_model == model and hook_page == page:
                self._page_hooks.remove((hook_model, hook_page, hook))
                hook()
        filters = {**body, **{p: query[p] for p in spec.parents}}
        ids = self._select(model, branch, filters)
        hide = self.listing_filter(model, spec.cls, by_id=filters.get("id") not in (None, "", []))
        if hide is not None:
            ids = [i for i in ids if not hide(i)]
        total = len(ids)
        if page * size >= total and total and self.past_end == "clamp":
            page = (total - 1) // size
        items = [self.tables[model][i] for i in page_of(ids, page, size)]
        broken = self._broken_pages.get((model, page))
        if broken:
            broken[1] -= 1
            if broken[1] <= 0:
                del self._broken_pages[(model, page)]
            if broken[0] == "error":
                return self.fault_response()
            items = []
        return Response.json({"total": total, "count": len(items), "page": page, "items": items})

    def _select(self, model: str, branch: int | None, filters: dict[str, Any]) -> list[int]:
        """The ids an index lists, in the server's order."""
        spec = MODELS[model]
        removed = _int(filters.get("removed"), 0) if spec.archivable else 1
        order = "-id" if model == "customer" and _int(filters.get("is_study"), None) == 0 else spec.order
        checks = [check for name, value in filters.items() if name in spec.filters and value not in (None, "", [])
                  for check in (_check(spec, name, value),) if check is not None]
        table = self.tables[model]
        if "id" in filters and filters["id"] not in (None, "", []):
            wanted = filters["id"] if isinstance(filters["id"], list) else [filters["id"]]
            rows = [table[i] for i in dict.fromkeys(_int(w, -1) for w in wanted) if i in table]
            rows = [r for r in rows if self._visible(r, branch, removed) and all(c(r) for c in checks)]
            return [r["id"] for r in sorted(rows, key=_sort_key(order))]
        if model == "log" and set(filters) <= {"entity", "page"} and filters.get("entity"):
            return self._log_by_entity.get(str(filters["entity"]), [])[::-1]
        ids = self._view(model, branch, removed, order)
        if checks:
            ids = [i for i in ids if all(c(table[i]) for c in checks)]
        return ids

    def _view(self, model: str, branch: int | None, removed: int | None, order: str) -> list[int]:
        """Ids visible in BRANCH with the archive filter, in ORDER; cached until the model changes."""
        key = (model, branch, removed, order)
        cached = self._views.get(key)
        if cached and cached[0] == self.version[model]:
            return cached[1]
        table = self.tables[model]
        if order == "name":
            ordered = [i for _, i in self._by_name[model]]
        elif order == "-id":
            ordered = list(reversed(table))
        else:
            ordered = list(table)
        if branch is not None or removed != 1:
            ordered = [i for i in ordered if self._visible(table[i], branch, removed)]
        self._views[key] = (self.version[model], ordered)
        return ordered

    @staticmethod
    def _visible(row: dict[str, Any], branch: int | None, removed: int | None) -> bool:
        if branch is not None:
            if "branch_ids" in row and branch not in row["branch_ids"]:
                return False
            if "branch_id" in row and row["branch_id"] not in (branch, None):
                return False
        if removed in (0, 2) and "e_date" in row:
            archived = _archived(row)
            return archived if removed == 2 else not archived
        return True
