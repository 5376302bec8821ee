"""Rukovoditel Login and metadata: ``login``, ``get_entities``, ``get_entity_fields``, choices and global lists."""
from __future__ import annotations

from typing import Any

from .model import SINGLE_CHOICE, ApiError, EntityDef, _php_int, _require
from .state import RukovoditelState


class MetadataApi(RukovoditelState):
    """Login and metadata: ``login``, ``get_entities``, ``get_entity_fields``, choices and global lists."""

    def _action_login(self, p: dict[str, Any]) -> dict[str, Any]:
        u = self.user
        return {"id": str(u.id), "group_id": u.group_id, "multiple_access_groups": "", "language": "english.php",
                "name": u.name, "email": u.email, "username": u.username, "is_email_verified": "1", "photo": ""}

    def _action_get_entities(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        out = []

        def walk(parent: int, path: list[str]) -> None:
            for e in sorted((e for e in self.entities.values() if e.parent == parent),
                            key=lambda e: (e.sort_order, e.name)):
                out.append({"id": str(e.id), "parent_id": str(e.parent), "group_id": "0", "group_name": None,
                            "name": e.name, "notes": "", "sort_order": str(e.sort_order), "level": len(path),
                            "path": path})
                walk(e.id, [*path, str(e.id)])
        walk(0, [])
        return out

    def _entity_or_error(self, p: dict[str, Any]) -> EntityDef:
        eid = _php_int(_require(p, "entity_id"))
        if eid not in self.entities:
            raise ApiError(f"Entity #{eid} does not exist")
        return self.entities[eid]

    def _action_get_entity_fields(self, p: dict[str, Any]) -> dict[str, Any]:
        return {str(f.id): {"id": str(f.id), "type": f.type, "name": f.name, "short_name": "",
                            "is_heading": "1" if f.heading else "0", "tooltip": "", "is_required": "0",
                            "required_message": "", "configuration": f.config}
                for f in self._entity_or_error(p).fields}

    def _action_get_field_choices(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        entity = self._entity_or_error(p)
        fid = _php_int(_require(p, "field_id"))
        f = entity.field(fid)
        if f is None:
            raise ApiError(f"Field #{fid} does not exist in Entity #{entity.id}")
        return [{"id": str(cid), "parent_id": "0", "fields_id": str(f.id), "is_active": "1", "name": name,
                 "icon": "", "is_default": "1" if i == 0 and f.type in SINGLE_CHOICE else "0", "bg_color": "",
                 "sort_order": str(i + 1), "users": "", "value": "", "filename": "", "level": 0}
                for i, (cid, name) in enumerate(f.choices)]

    def _action_get_global_lists(self, p: dict[str, Any]) -> list[Any]:
        return []

    def _action_get_global_list_choices(self, p: dict[str, Any]) -> list[Any]:
        _require(p, "list_id")
        return []
