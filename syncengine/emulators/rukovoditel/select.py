"""Rukovoditel ``select``: filters, report order, paging and the display rendering of rows."""
from __future__ import annotations

import re
from typing import Any

from ..base import page_of
from .model import (
    BOOLEANS,
    DATES,
    DATETIMES,
    DB_VALUE,
    LINKS,
    MULTI_CHOICE,
    SINGLE_CHOICE,
    USERS,
    ApiError,
    DbError,
    EntityDef,
    FieldDef,
    Item,
    _numeric_match,
    _php_float,
    _php_int,
    _sql,
)
from .state import RukovoditelState


class SelectApi(RukovoditelState):
    """``select``: filters, report order, paging and the display rendering of rows."""

    def _action_select(self, p: dict[str, Any]) -> dict[str, Any]:
        eid = _php_int(p["entity_id"])
        base_sql = f"select e.*  from app_entity_{eid} e  where e.id&gt;0 "
        order = None
        if p.get("reports_id"):
            report = self.reports.get(_php_int(p["reports_id"]))
            if report is None or report[0] != eid:
                raise ApiError(f"Report {p['reports_id']} not found for Entity {eid}")
            order = report[1]
        columns = self._selected_fields(eid, p.get("select_fields"))
        if eid not in self.entities:
            raise DbError(1146, f"Table 'rukovoditel.app_entity_{eid}' doesn't exist", base_sql)
        entity = self.entities[eid]
        rows = list(self.items[eid].values())
        filters = p.get("filters") or {}
        if isinstance(filters, dict):
            for key, value in filters.items():
                rows = self._filter(entity, rows, str(key), value)
        parent = _php_int(p.get("parent_item_id"))
        if parent > 0:
            rows = [r for r in rows if r.parent_item_id == parent]
        hide = self.listing_filter(str(eid), entity.name, by_id=isinstance(filters, dict) and "id" in filters)
        if hide is not None:
            rows = [r for r in rows if not hide(r.id)]
        rows = self._ordered(entity, rows, order)
        limit = _php_int(p.get("limit"))
        per_page = _php_int(p.get("rows_per_page"))
        if limit > 0 and per_page > 0:
            raise DbError(1064, "You have an error in your SQL syntax; check the manual that corresponds to your "
                          f"MariaDB server version for the right syntax to use near 'limit 0, {per_page}' at line 1",
                          f"{base_sql} limit {limit} limit 0, {per_page}")
        if limit > 0:
            rows = rows[:limit]
        envelope: dict[str, Any] = {"status": "success"}
        if per_page > 0:
            count = len(rows)
            pages = -(-count // per_page)
            raw_page = p.get("page")
            page = _php_int(raw_page) if raw_page not in (None, "") else 1
            page = 1 if page == 0 else page
            page = min(page, pages)
            rows = page_of(rows, max(page, 1) - 1, per_page)
            extra = {"page": page, "number_of_rows": count, "number_of_pages": pages}
        elif "rows_per_page" in p:
            extra = {}
        else:
            extra = {"page": 1, "number_of_rows": len(rows), "number_of_pages": 1}
        envelope["data"] = [self._row(entity, r, columns) for r in rows]
        envelope.update(extra)
        return envelope

    def _selected_fields(self, eid: int, select_fields: Any) -> list[FieldDef]:
        entity = self.entities.get(eid)
        listed = [f for f in entity.fields if f.type != "fieldtype_action"] if entity else []
        if select_fields in (None, ""):
            return listed
        tokens = [t.strip() for t in str(select_fields).split(",")]
        bad = next((t for t in tokens if not re.fullmatch(r"-?\d+", t)), None)
        if bad is not None:
            raise DbError(1054, f"Unknown column '{bad}' in 'WHERE'",
                          "select f.*, t.name as tab_name from app_fields f, app_forms_tabs t where f.type not in "
                          f"('fieldtype_action') and f.entities_id='{eid}'  and f.id in ({select_fields}) and "
                          "f.forms_tabs_id=t.id order by t.sort_order, t.name, f.sort_order, f.name")
        wanted = {int(t) for t in tokens}
        return [f for f in listed if f.id in wanted]

    def _row(self, entity: EntityDef, item: Item, columns: list[FieldDef]) -> dict[str, Any]:
        row: dict[str, Any] = {
            "id": str(item.id), "parent_item_id": str(item.parent_item_id),
            "date_added": self.format_ts(item.date_added, self.datetime_format),
            "date_updated": self.format_ts(item.date_updated, self.datetime_format),
            "created_by": None if item.created_by is None else str(item.created_by)}
        for f in columns:
            row[str(f.id)] = self._display(entity, item, f)
            if f.type in DB_VALUE:
                row[f"{f.id}_db_value"] = item.values.get(f.id, "")
        return row

    def _display(self, entity: EntityDef, item: Item, f: FieldDef) -> str:
        t = f.type
        if t == "fieldtype_id":
            return str(item.id)
        if t == "fieldtype_date_added":
            return self.format_ts(item.date_added, self.datetime_format)
        if t == "fieldtype_date_updated":
            return self.format_ts(item.date_updated, self.datetime_format) if item.date_updated else ""
        if t == "fieldtype_created_by":
            user = self.users.get(item.created_by or 0)
            return user.name if user else ""
        if t == "fieldtype_parent_item_id":
            return self._heading(entity.parent, item.parent_item_id) if item.parent_item_id else ""
        raw = item.values.get(f.id, "")
        ids = [v for v in raw.split(",") if v]
        if t in SINGLE_CHOICE | MULTI_CHOICE:
            names = dict(f.choices)
            return ", ".join(names.get(_php_int(v), "") for v in ids)
        if t in USERS:
            return ", ".join(self.users[_php_int(v)].name for v in ids if _php_int(v) in self.users)
        if t in LINKS:
            return ", ".join(self._heading(f.target, _php_int(v)) for v in ids)
        if t in DATES | DATETIMES:
            ts = _php_int(raw)
            return self.format_ts(ts, self.date_format if t in DATES else self.datetime_format) if ts else ""
        if t in BOOLEANS:
            return self.yes_no[0] if raw in ("true", "1") else self.yes_no[1]
        if t == "fieldtype_textarea":
            return raw.replace("\n", "<br />\n").strip()
        return raw

    def _ordered(self, entity: EntityDef, rows: list[Item], order: str | None) -> list[Item]:
        rows = sorted(rows, key=lambda r: r.id)
        for part in reversed((order or "").split(",")):
            fid, _, direction = part.partition("_")
            f = entity.field(_php_int(fid))
            if f is None:
                continue
            key = {"fieldtype_id": lambda r: r.id, "fieldtype_date_added": lambda r: r.date_added,
                   "fieldtype_date_updated": lambda r: r.date_updated}.get(
                f.type, lambda r, fid=f.id: r.values.get(fid, ""))
            rows.sort(key=key, reverse=direction == "desc")
        return rows

    def _filter(self, entity: EntityDef, rows: list[Item], key: str, value: Any) -> list[Item]:
        if key in ("id", "parent_item_id"):
            wanted = {_php_int(v) for v in str(value).split(",")}
            attr = "id" if key == "id" else "parent_item_id"
            return [r for r in rows if getattr(r, attr) in wanted]
        if key in ("date_added", "date_updated"):
            return self._date_range(rows, lambda r: getattr(r, key), value) if isinstance(value, str) else rows
        if not re.fullmatch(r"\d+", key) or int(key) not in self.fields:
            return rows
        owner, f = self.fields[int(key)]
        condition = "include"
        if isinstance(value, dict):
            condition = value.get("condition") or "include"
            value = value.get("value", "")
        value = "" if value is None else str(value) if not isinstance(value, (dict, list)) else value
        where = f"{_sql(entity)}  and (field_{f.id}=&#039;{value}&#039;)"
        if owner.id != entity.id or f.type in ("fieldtype_id", "fieldtype_parent_item_id"):
            raise DbError(1054, f"Unknown column 'field_{f.id}' in 'WHERE'", where)
        if f.type in ("fieldtype_date_added", "fieldtype_date_updated"):
            attr = "date_added" if f.type == "fieldtype_date_added" else "date_updated"
            if condition == "filter_by_days":
                return self._date_range(rows, lambda r: getattr(r, attr), value)
            return rows
        if f.type == "fieldtype_created_by":
            wanted = {self.user.id if v == "current_user_id" else _php_int(v) for v in value.split(",")}
            return [r for r in rows if r.created_by in wanted]
        raw = lambda r: r.values.get(f.id, "")  # noqa: E731
        if condition in ("empty_value", "not_empty_value"):
            numeric_empty = f.type in DATES | DATETIMES | SINGLE_CHOICE
            empty = lambda r: (raw(r) in ("", "0")) if numeric_empty else raw(r) == ""  # noqa: E731
            return [r for r in rows if empty(r) == (condition == "empty_value")]
        if value != "" and condition in ("search", "search_match"):
            if f.type == "fieldtype_phone":
                digits = re.sub(r"\D", "", value)
                return [r for r in rows if digits in re.sub(r"\D", "", raw(r))]
            return [r for r in rows if value.lower() in raw(r).lower()]
        exclude = condition == "exclude"
        if f.type in SINGLE_CHOICE:
            if value == "":
                return rows
            tokens = [t.strip() for t in value.split(",")]
            bad = next((t for t in tokens if not re.fullmatch(r"-?\d+(\.\d+)?", t)), None)
            if bad is not None:
                raise DbError(1054, f"Unknown column '{bad}' in 'WHERE'",
                              f"{_sql(entity)}  and (e.field_{f.id} in ({value}) )")
            numbers = {float(t) for t in tokens}
            return [r for r in rows if (_php_float(raw(r)) in numbers) != exclude]
        if f.type in MULTI_CHOICE | USERS | LINKS:
            chosen = {str(self.user.id) if v == "current_user_id" else v.strip() for v in value.split(",")}
            return [r for r in rows if bool(chosen & set(raw(r).split(","))) != exclude]
        if f.type in DATES | DATETIMES:
            return self._date_range(rows, lambda r: _php_int(raw(r)), value)
        if f.type == "fieldtype_input_numeric":
            return [r for r in rows if _numeric_match(_php_float(raw(r)), value)]
        if f.type in BOOLEANS:
            return [r for r in rows if (raw(r) == value) != exclude]
        return [r for r in rows if raw(r).rstrip().lower() == value.rstrip().lower()]

    def _date_range(self, rows: list[Item], column: Any, value: Any) -> list[Item]:
        parts = ("," + str(value)).split(",")
        if len(parts) < 3 and self.display_errors:
            self._warnings.append("<br />\n<b>Warning</b>:  Undefined array key 2 in <b>includes/classes/reports/"
                                  "reports.php</b> on line <b>924</b><br />\n")
        start, end = parts[1].strip(), parts[2].strip() if len(parts) > 2 else ""
        low = self.timestamp(start) if start else None
        high = (self.timestamp(end) + (86399 if len(end) == 10 else 0)) if end else None
        return [r for r in rows if column(r) != 0 and (low is None or column(r) >= low)
                and (high is None or column(r) <= high)]
