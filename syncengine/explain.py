"""Why a record holds what it holds: for each mapping it is linked through (and the records linked
to those, so a star or a chain shows every system), each mapped field's value on both sides and
where it came from — the system it was typed into, when, and the run that carried it — or that it
was edited there, or never synced. ``syncengine explain`` prints it; the console's Record page
shows the same thing.
"""
from __future__ import annotations

from collections import deque
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from . import jsonutil
from .config import Config
from .errors import UsageError
from .mapping import SIDES, Mapping, Translator, load_mappings, other
from .mirror import Mirror
from .mirror.models import LinkRow, RecordRow
from .mirror.provenance import Origin, aware, origin_times

Node = tuple[str, str, str]  # system, entity, remote id


def explain(config: Config, mirror: Mirror, system: str, entity: str, remote_id: str) -> dict[str, Any]:
    """``{"record": …, "links": [{mapping, state, left/right record, fields: [{field, left, right}]}]}``;
    each side's entry: path, value, status (synced | edited here | never synced), origin, edited_at."""
    mappings = list(load_mappings(config).values())
    with mirror.engine.connect() as conn:
        start = _record(conn, (system, entity, remote_id))
        if start is None:
            raise UsageError(f"{system}:{entity} {remote_id} is not in the mirror; pull it first "
                             f"(syncengine pull {system}:{entity})")
        links = []
        seen, queue = {(system, entity, remote_id)}, deque([(system, entity, remote_id)])
        done: set[tuple[str, int | None, str | None]] = set()
        while queue:
            node = queue.popleft()
            for mapping in mappings:
                for side in SIDES:
                    if (mapping.side(side).system, mapping.side(side).entity) != node[:2]:
                        continue
                    link = _link(conn, mapping.name, side, node[2])
                    key = (mapping.name, link.id if link is not None else None,
                           None if link is not None else f"{side}:{node[2]}")
                    if key in done:
                        continue
                    done.add(key)
                    links.append(_edge(conn, mirror, mapping, side, node, link))
                    if link is not None and link.state == "active":
                        far = mapping.side(other(side))
                        peer = (far.system, far.entity, link.left_id if side == "right" else link.right_id)
                        if peer not in seen:
                            seen.add(peer)
                            queue.append(peer)
    return {"record": {"system": system, "entity": entity, "id": remote_id,
                       "deleted": start.deleted_at is not None}, "links": links}


def _record(conn: sa.Connection, node: Node) -> Any:
    return conn.execute(sa.select(RecordRow).where(RecordRow.system == node[0], RecordRow.entity == node[1],
                                                   RecordRow.remote_id == node[2])).first()


def _link(conn: sa.Connection, mapping: str, side: str, remote_id: str) -> Any:
    """The active link holding the record, else its latest ended one."""
    column = LinkRow.left_id if side == "left" else LinkRow.right_id
    return conn.execute(sa.select(LinkRow).where(LinkRow.mapping == mapping, column == remote_id)
                        .order_by((LinkRow.state == "active").desc(), LinkRow.id.desc())).first()


def _edge(conn: sa.Connection, mirror: Mirror, mapping: Mapping, side: str, node: Node, link: Any) -> dict[str, Any]:
    ids = {side: node[2], other(side): None}
    if link is not None:
        ids = {"left": link.left_id, "right": link.right_id}
    shadow = jsonutil.loads(link.shadow) if link is not None else {}
    modified = _modified_at(mirror, mapping)
    sides: dict[str, dict[str, Any]] = {}
    for s in SIDES:
        ref, rid = mapping.side(s), ids[s]
        row = _record(conn, (ref.system, ref.entity, rid)) if rid is not None else None
        sides[s] = {"data": None, "own": None, "origins": {}}
        if rid is not None and row is not None:
            data = jsonutil.loads(row.data)
            sides[s] = {"data": data, "own": aware((modified(s, data) if modified else None) or row.last_changed),
                        "origins": origin_times(conn, ref.system, ref.entity, [rid])}
    fields = []
    for fm in mapping.synced_fields:
        entry: dict[str, Any] = {"field": fm.name}
        for s in SIDES:
            path = fm.paths.get(s)
            data, origins = sides[s]["data"], sides[s]["origins"]
            if path is None or data is None:
                entry[s] = None
                continue
            origin: Origin | None = origins.get((ids[s], str(path)))
            if origin is not None:
                status, when = "synced", origin.edited_at
            elif fm.name in shadow:
                status, when = "edited here", sides[s]["own"]
            else:
                status, when = "never synced", sides[s]["own"]
            entry[s] = {"path": str(path), "value": path.get(data), "status": status,
                        "origin": origin.as_dict() if origin is not None else None,
                        "edited_at": when.isoformat() if when else None}
        fields.append(entry)
    return {"mapping": mapping.name, "state": link.state if link is not None else "not linked",
            "left": {"system": mapping.left.system, "entity": mapping.left.entity, "id": ids["left"]},
            "right": {"system": mapping.right.system, "entity": mapping.right.entity, "id": ids["right"]},
            "fields": fields}


def _modified_at(mirror: Mirror, mapping: Mapping) -> Any:
    """The records' own edit times as the CRMs keep them, from the cached describes (None: not described yet)."""
    schemas = {}
    for s in SIDES:
        cached = mirror.cached_schema(mapping.side(s).system, mapping.side(s).entity)
        if cached is None:
            return None
        schemas[s] = cached[0]
    return Translator(mapping, schemas).modified_at


def when(text: str | None) -> str:
    """An ISO time as ``2026-12-02 15:04:05Z`` (UTC)."""
    if not text:
        return ""
    return datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M:%SZ")


__all__ = ["explain", "when"]
