"""vtiger ``query``: VTQL run as the SQL vtiger pastes it into MySQL (§7)."""
from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from typing import Any

from ..base import Request
from . import vtql
from .model import BAD_ID, DB_ERROR, DENIED, NUMBER_TYPES, QUERY_CAP, Fatal, Module, User, WsError, _q
from .state import VtigerState


class QueryApi(VtigerState):
    """``query``: VTQL run as the SQL vtiger pastes it into MySQL (§7)."""

    def _op_query(self, request: Request, param: Callable, user: User, _sn: Any) -> Any:
        text = param("query")
        if not text:
            raise WsError("ACCESS_DENIED", f"{DENIED} for query")
        found = re.search(r"from\s+([^\s;]+)", text, re.IGNORECASE)
        name = found.group(1) if found else ""
        if name not in self.modules:
            raise WsError("ACCESS_DENIED", f"{DENIED} for name : {name}")
        mod = self.modules[name]
        try:
            stmt = vtql.parse(text)
        except vtql.VtqlLexError:
            raise WsError("INTERNAL_SERVER_ERROR", "Unknown Error while processing request") from None
        except vtql.VtqlSyntaxError as exc:
            raise WsError("QUERY_SYNTAX_ERROR", str(exc)) from None
        return self._run_query(mod, stmt, user)

    def _run_query(self, mod: Module, stmt: vtql.Select, user: User) -> list[dict[str, Any]]:
        for col in stmt.columns:
            if col != "id" and col not in mod.types:
                raise WsError("ACCESS_DENIED", f"Permission to access '.{col}.' attribute denied.")
        for _, cond in stmt.where:
            if cond.column != "id" and cond.column not in mod.types:
                raise WsError("ACCESS_DENIED", f"Permission to access {cond.column} attribute denied.")
        where_sql, params = self._where_sql(mod, stmt)
        base = f"FROM {mod.table} WHERE deleted = 0{' AND converted = 0' if mod.name == 'Leads' else ''}"
        if where_sql:
            base += f" AND ({where_sql})"
        by_id = bool(stmt.where) and all(cond.column == "id" for _, cond in stmt.where)
        hide = self.listing_filter(mod.name, by_id=by_id)
        if hide is not None:
            prefix = f"{mod.prefix}x"
            self.db.create_function("hidden_row", 1, lambda crmid: hide(prefix + str(crmid)), deterministic=True)
            base += " AND NOT hidden_row(crmid)"
        if stmt.count:
            if not self.dialect.count_rows:
                return []
            (n,) = self.db.execute(f"SELECT count(*) {base}", params).fetchone()
            return [{"count": str(n)}]
        fields = mod.fields if stmt.star else [c for c in dict.fromkeys(stmt.columns) if c != "id"]
        if self.tags_fatal and "tags" in fields:
            raise Fatal()
        order, bound_sql, bound_params = self._order_sql(mod, stmt)
        offset, count = self._limit(stmt)
        sql = (f"SELECT crmid{''.join(', ' + _q(f) for f in fields)} {base}{bound_sql} "
               f"ORDER BY {order} LIMIT ? OFFSET ?")
        try:
            cur = self.db.execute(sql, [*params, *bound_params, count, offset])
        except sqlite3.Error:
            raise WsError("DATABASE_QUERY_ERROR", DB_ERROR) from None
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=False)) for r in cur.fetchall()]
        out = self._present(mod, rows, fields, as_row=True)
        if not stmt.star:  # explicit lists: the requested order with id where vtiger puts it
            wanted = list(dict.fromkeys(stmt.columns))
            if "id" not in wanted:
                wanted.append("id")
            out = [{c: r[c] for c in wanted} for r in out]
        return out

    def _limit(self, stmt: vtql.Select) -> tuple[int, int]:
        if stmt.limit is None:
            return 0, QUERY_CAP
        offset, count = stmt.limit
        try:
            start = int(offset) if offset is not None else 0
            size = int(count)
        except ValueError:
            raise WsError("DATABASE_QUERY_ERROR", DB_ERROR) from None
        if start < 0 or size < 0:
            raise WsError("DATABASE_QUERY_ERROR", DB_ERROR)
        return start, min(size, QUERY_CAP)

    def _column(self, mod: Module, name: str) -> str:
        return "crmid" if name == "id" else _q(name)

    def _value(self, mod: Module, column: str, token: str) -> Any:
        """A VTQL literal as vtiger rewrites it and MySQL then reads it (§7.2)."""
        try:
            raw = vtql.mysql_string(token)
        except ValueError:
            raise WsError("DATABASE_QUERY_ERROR", DB_ERROR) from None
        t = "id" if column == "id" else mod.types[column]
        if t in ("id", "owner"):
            if "x" not in raw:
                raise WsError("DATABASE_QUERY_ERROR", DB_ERROR)
            part = raw.rpartition("x")[2]
            return int(part) if t == "id" and part.isdigit() else part
        if t == "reference":
            if "x" not in raw:
                raise WsError("INVALID_ID_ATTRIBUTE", BAD_ID)
            return raw.rpartition("x")[2]
        if t in ("datetime", "date"):
            if not re.match(r"\d{4}-\d{2}-\d{2}", raw):
                return "0000-00-00 00:00:00"  # MySQL reads an invalid date as the zero date
            if t == "datetime" and len(raw) == 10:
                return raw + " 00:00:00"
            return raw
        if t in NUMBER_TYPES:
            try:
                return float(raw)
            except ValueError:
                return 0.0
        return raw

    def _condition_sql(self, mod: Module, cond: vtql.Condition) -> tuple[str, list[Any]]:
        col = self._column(mod, cond.column)
        t = "id" if cond.column == "id" else mod.types[cond.column]
        values = [self._value(mod, cond.column, v) for v in cond.values]
        if t in NUMBER_TYPES:
            col = f"CAST({col} AS REAL)"
        collate = " COLLATE NOCASE" if t not in {"id", "datetime", "date"} | NUMBER_TYPES else ""
        if cond.op == "IN":
            return f"{col}{collate} IN ({', '.join('?' * len(values))})", values
        if cond.op == "LIKE":
            return f"{col} LIKE ?", values
        op = "!=" if cond.op == "!=" else cond.op
        return f"{col}{collate} {op} ?", values

    def _where_sql(self, mod: Module, stmt: vtql.Select) -> tuple[str, list[Any]]:
        parts: list[str] = []
        params: list[Any] = []
        for joiner, cond in stmt.where:
            sql, values = self._condition_sql(mod, cond)
            parts.append(f"{joiner} {sql}" if joiner else sql)
            params.extend(values)
        return " ".join(parts), params

    def _order_sql(self, mod: Module, stmt: vtql.Select) -> tuple[str, str, list[Any]]:
        """ORDER BY, plus a redundant range on its first column so keyset pages use the index."""
        tie = "(crmid * 2654435761) % 4294967291" if self.shuffle else "crmid"
        if not stmt.order_by:
            return tie, "", []
        terms = []
        for i, name in enumerate(stmt.order_by):
            if name != "id" and name not in mod.types:
                raise WsError("DATABASE_QUERY_ERROR", DB_ERROR)
            t = "id" if name == "id" else mod.types[name]
            col = self._column(mod, name)
            if t in NUMBER_TYPES:
                col = f"CAST({col} AS REAL)"
            elif t not in ("id", "datetime", "date"):
                col += " COLLATE NOCASE"
            last = i == len(stmt.order_by) - 1
            terms.append(f"{col} {'DESC' if last and stmt.descending else 'ASC'}")
        bound_sql, bound_params = self._implied_bound(mod, stmt)
        return ", ".join([*terms, tie]), bound_sql, bound_params

    def _implied_bound(self, mod: Module, stmt: vtql.Select) -> tuple[str, list[Any]]:
        """``a > T OR a = T AND …`` implies ``a >= T``: say so, so SQLite can seek instead of scan."""
        first = stmt.order_by[0]
        t = "id" if first == "id" else mod.types.get(first)
        if t not in ("id", "datetime", "date") or not stmt.where:
            return "", []
        terms: list[list[vtql.Condition]] = [[]]
        for joiner, cond in stmt.where:
            if joiner == "OR":
                terms.append([])
            terms[-1].append(cond)
        lower = ">" if not stmt.descending else "<"
        bounds = []
        for term in terms:
            found = [self._value(mod, c.column, c.values[0]) for c in term
                     if c.column == first and c.op in (lower, lower + "=", "=")]
            if not found:
                return "", []
            bounds.append(max(found) if lower == ">" else min(found))
        bound = min(bounds) if lower == ">" else max(bounds)
        return f" AND {self._column(mod, first)} {lower}= ?", [bound]
