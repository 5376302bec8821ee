"""Rukovoditel Writes: ``insert``, ``update``, ``delete`` and ``insert_comment``."""
from __future__ import annotations

import re
from typing import Any

from .model import ApiError, DbError, EntityDef, Fatal, Item, User, _php_float, _php_int, _require
from .state import RukovoditelState


class WriteApi(RukovoditelState):
    """Writes: ``insert``, ``update``, ``delete`` and ``insert_comment``."""

    def _writable_entity(self, p: dict[str, Any]) -> EntityDef:
        eid = _php_int(p["entity_id"])
        if eid not in self.entities:
            raise ApiError(f"entity {eid} not found")
        return self.entities[eid]

    def _action_insert(self, p: dict[str, Any]) -> dict[str, Any]:
        entity = self._writable_entity(p)
        items = _require(p, "items")
        if not isinstance(items, (dict, list)):
            raise ApiError("items is not array")
        if not items:
            raise ApiError("items is ampty")
        if isinstance(items, dict):
            items = list(items.values()) if "0" in items else [items]
        ids: list[str] = []
        warnings: list[dict[str, str]] = []
        for values in items:
            if not isinstance(values, dict):
                raise Fatal()
            if entity.id == 1:
                ids.append(self._insert_user(values))
                continue
            parent = _php_int(values.get("parent_item_id"))
            if entity.parent:
                if not parent:
                    raise ApiError("parent_item_id is required")
                if parent not in self.items[entity.parent]:
                    raise ApiError(f"parent_item_id {parent} not found!")
            columns = self._columns(entity)
            for key in values:
                if key not in columns and key not in ("parent_item_id", "created_by"):
                    raise ApiError(f"{key} not exist in entity {entity.id}")
            if any(isinstance(v, (dict, list)) for v in values.values()):
                raise Fatal()
            clash = next((f for f in entity.fields if f.unique and values.get(f.column) not in (None, "")
                          and any(i.values.get(f.id) == str(values[f.column]) for i in self.items[entity.id].values())),
                         None)
            if clash:
                warnings.append({"id": str(clash.id), "value": str(values[clash.column])})
                continue
            item = self._new_item(entity.id, self.now(), {}, parent=parent if entity.parent else 0,
                                  created_by=self.user.id)
            for key, value in values.items():
                self._store(entity, item, key, value)
            ids.append(str(item.id))
        data: dict[str, Any] = {"id": ",".join(ids)}
        if warnings:
            data["unique_fields_warning"] = warnings
        return data

    def _insert_user(self, values: dict[str, Any]) -> str:
        for key in ("group_id", "firstname", "lastname", "username", "email", "password"):
            if not values.get(key) or (key == "group_id" and not _php_int(values[key])):
                raise ApiError(f"{key} is required")
        if any(u.username == values["username"] for u in self.users.values()):
            raise ApiError("Username already exist!", "email_exist")
        user = User(self.next_id[1], str(values["username"]), str(values["password"]), _php_int(values["group_id"]),
                    str(values["firstname"]), str(values["lastname"]), str(values["email"]))
        self._add_user(user, created_by=self.user.id)
        self.items[1][user.id].date_added = self.now()
        return str(user.id)

    def _matching(self, entity: EntityDef, by: Any, param: str) -> list[Item]:
        if not isinstance(by, dict) or not by:
            raise ApiError(f"{param} is required")
        column, value = next(iter(by.items()))
        allowed = self._columns(entity) | {"id", "parent_item_id", "created_by", "date_added", "date_updated"}
        if column not in allowed:
            raise ApiError(f"{column} not exist in entity {entity.id}")

        def current(item: Item) -> Any:
            if column.startswith("field_"):
                return item.values.get(int(column[6:]), "")
            return getattr(item, column)
        rows = list(self.items[entity.id].values())
        if isinstance(value, (dict, list)):
            tokens = [str(v) for v in (value.values() if isinstance(value, dict) else value)] or ["0"]
            bad = next((t for t in tokens if not re.fullmatch(r"-?\d+(\.\d+)?", t)), None)
            if bad is not None:
                raise DbError(1054, f"Unknown column '{bad}' in 'WHERE'",
                              f"select * from app_entity_{entity.id} where {column} in ({','.join(tokens)})")
            wanted = {float(t) for t in tokens}
            return [r for r in rows if _php_float(str(current(r) or 0)) in wanted]
        if isinstance(current(rows[0]) if rows else "", int):
            return [r for r in rows if current(r) == _php_int(value)]
        return [r for r in rows if str(current(r)).rstrip().lower() == str(value).rstrip().lower()]

    def _action_update(self, p: dict[str, Any]) -> dict[str, Any]:
        entity = self._writable_entity(p)
        data = p.get("data")
        if not data:
            raise ApiError("data is required")
        if "update_by_field" not in p:
            raise ApiError("update_by_field is required")
        matched = self._matching(entity, p["update_by_field"], "update_by_field")
        columns = self._columns(entity) | {"parent_item_id", "created_by"}
        for item in matched:
            for key, value in (data.items() if isinstance(data, dict) else []):
                if entity.id == 1 and key == "password":
                    self.users[item.id].password = str(value)
                elif key in columns:
                    self._store(entity, item, key, value)
            item.date_updated = self.now()
        return {"id": ",".join(str(i.id) for i in matched)}

    def _action_delete(self, p: dict[str, Any]) -> dict[str, Any]:
        entity = self._writable_entity(p)
        if "delete_by_field" not in p:
            raise ApiError("delete_by_field is required")
        matched = self._matching(entity, p["delete_by_field"], "delete_by_field")
        for item in matched:
            self._delete(entity.id, item.id)
        return {"id": ",".join(str(i.id) for i in matched)}

    def _action_insert_comment(self, p: dict[str, Any]) -> dict[str, Any]:
        entity = self._writable_entity(p)
        item_id = _php_int(_require(p, "item_id"))
        item = self.items[entity.id].get(item_id)
        if item is None:
            raise ApiError(f"item {item_id} not found in Entity {entity.id}")
        changes = p.get("comment_fields") or {}
        for key, value in (changes.items() if isinstance(changes, dict) else []):
            fid = _php_int(str(key).removeprefix("field_"))
            if f"field_{fid}" not in self._columns(entity):
                raise ApiError(f"field  {key} not found in Entity {entity.id}")
            self._store(entity, item, f"field_{fid}", value)
        if changes:
            item.date_updated = self.now()
        self._comments += 1
        return {"id": self._comments}
