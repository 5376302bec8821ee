"""The held-delete queue: a record a pull found gone waits here until the evidence is enough.

Absence from a listing is only a hint. A pull marks a record deleted in the mirror when the CRM's
delete feed or a by-id re-read says it is gone, and records it here as ``waiting``; a sync acts
on it (``on_delete``) only once a later pull has re-read it by id and found it still gone
(``confirmed``), or a person approved it. A record that comes back is ``released`` by itself. The
mass-delete breaker puts what it refused here as ``held`` (the mirror keeps those records live).

``list_deletes``, ``approve`` and ``reject`` are what ``syncengine deletes`` and the web console
call: plain functions of a mirror that return dicts.
"""
from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa

from . import audit, jsonutil
from .mirror import Mirror
from .mirror.models import HeldDeleteRow, LinkRow, RecordRow, utcnow
from .mirror.store import chunks, upsert
from .types import EntitySchema

H = cast(sa.Table, HeldDeleteRow.__table__)
R = cast(sa.Table, RecordRow.__table__)
OPEN = ("waiting", "confirmed", "held", "scope", "approved", "rejected")
UNDECIDED = ("waiting", "held", "scope", "confirmed")


@dataclass(frozen=True)
class Held:
    """What the queue says about one gone record."""

    id: int
    state: str
    reason: str

    @property
    def actionable(self) -> bool:
        """May a sync act on the delete (``on_delete``)?"""
        return self.state in ("confirmed", "approved")


# -- what pulls record ---------------------------------------------------------------------

def observe(mirror: Mirror, system: str, entity: str, ids: Iterable[str], reason: str,
            state: str = "waiting") -> None:
    """Record IDS as gone; ids the mirror has no live record of need no row. A record already in
    the queue keeps its row (and its first sighting) unless that row was released: then it starts
    again."""
    ids = sorted({str(i) for i in ids})
    if not ids:
        return
    now = utcnow()
    with mirror.engine.begin() as conn:
        live: set[str] = set()
        known: dict[str, str] = {}
        for chunk in chunks(ids):
            live.update(conn.execute(sa.select(R.c.remote_id).where(
                R.c.system == system, R.c.entity == entity, R.c.remote_id.in_(chunk),
                R.c.deleted_at.is_(None))).scalars())
            known.update((rid, state) for rid, state in conn.execute(sa.select(H.c.remote_id, H.c.state).where(
                H.c.system == system, H.c.entity == entity, H.c.remote_id.in_(chunk))))
        rows = [{"system": system, "entity": entity, "remote_id": rid, "reason": reason, "state": state,
                 "first_seen": now, "confirmed_at": now if state in ("confirmed", "approved") else None,
                 "decided_at": now if state == "approved" else None}
                for rid in ids if rid in live and known.get(rid, "released") == "released"]
        upsert(conn, H, rows, ["system", "entity", "remote_id"])


def waiting_ids(mirror: Mirror, system: str, entity: str, seen_before: datetime) -> list[str]:
    """Records seen gone before SEEN_BEFORE (an earlier pull) that wait for a second look."""
    with mirror.engine.connect() as conn:
        return sorted(conn.execute(sa.select(H.c.remote_id).where(
            H.c.system == system, H.c.entity == entity, H.c.state == "waiting",
            H.c.first_seen < seen_before)).scalars())


def held_ids(mirror: Mirror, system: str, entity: str) -> set[str]:
    """Records the mass-delete breaker holds (live in the mirror, missing from listings)."""
    with mirror.engine.connect() as conn:
        return set(conn.execute(sa.select(H.c.remote_id).where(
            H.c.system == system, H.c.entity == entity, H.c.state == "held")).scalars())


def set_state(mirror: Mirror, system: str, entity: str, ids: Iterable[str], state: str,
              *, where: tuple[str, ...] = OPEN) -> None:
    ids = sorted({str(i) for i in ids})
    if not ids:
        return
    now = utcnow()
    values: dict[str, Any] = {"state": state}
    if state == "confirmed":
        values["confirmed_at"] = now
    with mirror.engine.begin() as conn:
        for chunk in chunks(ids):
            conn.execute(sa.update(H).where(H.c.system == system, H.c.entity == entity,
                                            H.c.remote_id.in_(chunk), H.c.state.in_(where)).values(**values))


def release_live(mirror: Mirror, system: str, entity: str) -> int:
    """Records the mirror has live again (read back, restored, back in scope) leave the queue.

    Breaker-held records were never marked deleted: the sweep releases those itself."""
    live = sa.select(R.c.remote_id).where(R.c.system == system, R.c.entity == entity, R.c.deleted_at.is_(None))
    back = sa.and_(H.c.system == system, H.c.entity == entity, H.c.state.in_([s for s in OPEN if s != "held"]),
                   H.c.remote_id.in_(live))
    with mirror.engine.connect() as conn:  # most pulls have nothing queued: no write transaction then
        if conn.execute(sa.select(H.c.id).where(back).limit(1)).first() is None:
            return 0
    with mirror.engine.begin() as conn:
        return conn.execute(sa.update(H).where(back).values(state="released", decided_at=utcnow())).rowcount


# -- what plans read -----------------------------------------------------------------------

def queue_of(mirror: Mirror, system: str, entity: str) -> dict[str, Held]:
    """``{remote_id: Held}`` of the entity's records still in the queue."""
    with mirror.engine.connect() as conn:
        return {rid: Held(pk, state, reason) for rid, pk, state, reason in conn.execute(
            sa.select(H.c.remote_id, H.c.id, H.c.state, H.c.reason).where(
                H.c.system == system, H.c.entity == entity, H.c.state.in_(OPEN)))}


# -- what people decide (CLI, web console) -------------------------------------------------

def list_deletes(mirror: Mirror, *, everything: bool = False) -> list[dict[str, Any]]:
    """Deletes that wait (for a second look or for a person), with the links they would end.

    A confirmed delete is listed while a link still holds its record (the next sync acts on it,
    or an edit-vs-delete conflict keeps it for a person)."""
    states = (*OPEN, "released") if everything else UNDECIDED
    names = _Names(mirror)
    with mirror.engine.connect() as conn:
        rows = conn.execute(sa.select(H).where(H.c.state.in_(states)).order_by(H.c.id)).all()
        out = []
        for row in rows:
            links = _links_of(conn, row.system, row.entity, row.remote_id)
            if row.state == "confirmed" and not links and not everything:
                continue
            data = conn.execute(sa.select(R.c.data).where(R.c.system == row.system, R.c.entity == row.entity,
                                                          R.c.remote_id == row.remote_id)).scalar()
            record = jsonutil.loads(data) if data else {}
            out.append({"id": row.id, "system": row.system, "entity": row.entity, "remote_id": row.remote_id,
                        "label": names.of(row.system, row.entity, record), "reason": row.reason,
                        "state": row.state, "first_seen": _iso(row.first_seen),
                        "confirmed_at": _iso(row.confirmed_at), "links": links})
    return out


def approve(mirror: Mirror, ids: Iterable[int] = (), *, everything: bool = False,
            who: str | None = None) -> dict[str, Any]:
    """The deletes are real: the next sync acts on them (``on_delete``), without waiting and
    whatever edit the other side made. A breaker-held record is marked deleted now."""
    return _decide(mirror, ids, everything, "approved", who)


def reject(mirror: Mirror, ids: Iterable[int], *, who: str | None = None) -> dict[str, Any]:
    """The deletes are wrong: nothing is deleted on the other side and the pair is re-linked. A
    breaker-held record stays as it is, linked (a later sweep that still misses it holds it
    again); a record gone from its CRM is re-created there from its twin by the next sync, and
    linked to it."""
    return _decide(mirror, ids, False, "rejected", who)


def _decide(mirror: Mirror, ids: Iterable[int], everything: bool, state: str, who: str | None) -> dict[str, Any]:
    """Set the state; WHO (the CLI's or the console's user) goes into the audit trail."""
    wanted = sorted({int(i) for i in ids})
    now = utcnow()
    with mirror.engine.begin() as conn:
        query = sa.select(H).where(H.c.state.in_(UNDECIDED))
        rows = conn.execute(query if everything else query.where(H.c.id.in_(wanted))).all()
        for row in rows:  # a breaker hold rejected is simply let go: a later sweep that misses it holds it again
            kept = "released" if state == "rejected" and row.reason == "breaker" else state
            conn.execute(sa.update(H).where(H.c.id == row.id).values(state=kept, decided_at=now))
    unknown = sorted(set(wanted) - {r.id for r in rows})
    if state == "approved":  # the breaker left these live in the mirror
        by_entity: dict[tuple[str, str], list[str]] = {}
        for row in rows:
            if row.reason == "breaker":
                by_entity.setdefault((row.system, row.entity), []).append(row.remote_id)
        for (system, entity), gone in by_entity.items():
            cached = mirror.cached_schema(system, entity)
            if cached is not None:
                mirror.writer(system, cached[0]).apply([], gone)
    decided = [{"id": r.id, "system": r.system, "entity": r.entity, "remote_id": r.remote_id} for r in rows]
    if who is not None and decided:
        subject = ", ".join(f"{d['system']}:{d['entity']} {d['remote_id']}" for d in decided)
        audit.record(mirror, who, f"deletes {state[:-1]}", subject, detail={"ids": [d["id"] for d in decided]})
    return {state: decided, "unknown": unknown}


def _links_of(conn: sa.Connection, system: str, entity: str, remote_id: str) -> list[dict[str, Any]]:
    """Active links that hold the record, by mapping name (the mapping's sides are in its file)."""
    L = cast(sa.Table, LinkRow.__table__)
    rows = conn.execute(sa.select(L.c.id, L.c.mapping, L.c.left_id, L.c.right_id).where(
        L.c.state == "active", sa.or_(L.c.left_id == remote_id, L.c.right_id == remote_id))).all()
    return [{"mapping": m, "link_id": pk, "left_id": left, "right_id": right} for pk, m, left, right in rows]


class _Names:
    """A record's display name, from the fields its cached schema names (vtiger's labelFields:
    "Иван Петров", an account's name); ``name`` or ``title`` when the schema names none."""

    def __init__(self, mirror: Mirror):
        self.mirror = mirror
        self.schemas: dict[tuple[str, str], EntitySchema | None] = {}

    def of(self, system: str, entity: str, record: dict[str, Any]) -> str | None:
        if (system, entity) not in self.schemas:
            cached = self.mirror.cached_schema(system, entity)
            self.schemas[system, entity] = cached[0] if cached else None
        schema = self.schemas[system, entity]
        keys = (schema.name_fields if schema else ()) or ("label", "name", "title")
        parts = [str(record[k]).strip() for k in keys if record.get(k) not in (None, "")]
        name = " ".join(p for p in parts if p) if schema and schema.name_fields else next(iter(parts), "")
        return (html.unescape(name) if schema and schema.html_encoded else name) or None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") + "Z" if moment else None
