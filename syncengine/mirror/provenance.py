"""Provenance per field: where each value the sync wrote came from (issue 13.2).

A record's own edit time says when *someone* last changed it, and a sync's write moves it too. So
every value the push writes keeps its origin — the system it was first typed into, that edit's
time, the run that carried it — and while the record still holds that value (a person has not
edited it since), the value's edit time is its origin's. ``newest`` compares those times, so a
value that hopped vt1 → Alfa → vt2 still counts as edited when vt1 was, and a value can never come
back around a loop as new.
"""
from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa

from .. import jsonutil
from ..types import Path_
from .models import ProvenanceRow, RecordRow

P = cast(sa.Table, ProvenanceRow.__table__)
R = cast(sa.Table, RecordRow.__table__)
CHUNK = 500  # ids per IN (...) query
parse_path = functools.lru_cache(maxsize=1024)(Path_.parse)  # a mapping has a few paths, read per row


@dataclass(frozen=True)
class Origin:
    """Where a value came from: the record and path it was first typed into (``system`` None:
    made by the sync itself, a value typed to settle a conflict), when (UTC, tz-aware), the
    mapping and run that wrote it here."""

    system: str | None
    entity: str | None
    remote_id: str | None
    path: str | None
    edited_at: datetime
    run_id: int | None
    value: Any
    mapping: str
    written_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """The form an outbox row carries from the plan to the write (and ``explain --json`` shows)."""
        return {"system": self.system, "entity": self.entity, "id": self.remote_id, "path": self.path,
                "edited_at": self.edited_at.isoformat(), "run": self.run_id, "mapping": self.mapping,
                "written_at": self.written_at.isoformat(), "value": self.value}


def aware(moment: datetime) -> datetime:
    """The mirror's naive UTC as a tz-aware UTC datetime."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def naive(moment: datetime) -> datetime:
    """A datetime as the mirror stores it: naive UTC."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def origin_times(mirror_or_conn: Any, system: str, entity: str,
                 ids: Iterable[str] | None = None) -> dict[tuple[str, str], Origin]:
    """``{(remote_id, path): Origin}`` of the values the sync wrote to SYSTEM:ENTITY (IDS, or every
    record) that the records still hold. Takes a ``Mirror`` or an open connection."""
    if isinstance(mirror_or_conn, sa.Connection):
        return dict(_origins(mirror_or_conn, system, entity, ids))
    with mirror_or_conn.engine.connect() as conn:
        return dict(_origins(conn, system, entity, ids))


def _origins(conn: sa.Connection, system: str, entity: str,
             ids: Iterable[str] | None) -> Iterator[tuple[tuple[str, str], Origin]]:
    stmt = (sa.select(P, R.c.data).select_from(P.outerjoin(R, sa.and_(
        R.c.system == P.c.system, R.c.entity == P.c.entity, R.c.remote_id == P.c.remote_id)))
        .where(P.c.system == system, P.c.entity == entity))
    wanted = None if ids is None else sorted({str(i) for i in ids})
    chunks = [stmt] if wanted is None else [stmt.where(P.c.remote_id.in_(wanted[i:i + CHUNK]))
                                            for i in range(0, len(wanted), CHUNK)]
    records: dict[str, dict[str, Any]] = {}
    for chunk in chunks:
        for row in conn.execute(chunk):
            if row.remote_id not in records:
                records[row.remote_id] = jsonutil.loads(row.data) if row.data else {}
            value = jsonutil.loads(row.value)
            path = parse_path(row.path)
            held = path.get(records[row.remote_id]) if path is not None else None
            if row.data is not None and held == value:
                yield (row.remote_id, row.path), Origin(
                    row.origin_system, row.origin_entity, row.origin_id, row.origin_path, aware(row.edited_at),
                    row.run_id, value, row.mapping, aware(row.written_at))


def record_written(conn: sa.Connection, system: str, entity: str, remote_id: str,
                   written: dict[str, tuple[Any, dict[str, Any]]], *, mapping: str, run_id: int | None,
                   now: datetime) -> None:
    """Keep where each value written to SYSTEM:ENTITY REMOTE_ID came from. WRITTEN: ``{path:
    (value the target stored, origin)}``, an origin as :meth:`Origin.as_dict` gives it. A path
    written again replaces its row."""
    if not written:
        return
    conn.execute(sa.delete(P).where(P.c.system == system, P.c.entity == entity, P.c.remote_id == remote_id,
                                    P.c.path.in_(list(written))))
    conn.execute(sa.insert(P), [
        {"system": system, "entity": entity, "remote_id": remote_id, "path": path, "value": jsonutil.dumps(value),
         "origin_system": origin["system"], "origin_entity": origin["entity"], "origin_id": origin["id"],
         "origin_path": origin["path"], "edited_at": naive(datetime.fromisoformat(origin["edited_at"])),
         "mapping": mapping, "run_id": run_id, "written_at": now}
        for path, (value, origin) in written.items()])


def void_changed(conn: sa.Connection, system: str, entity: str, records: dict[str, dict[str, Any]],
                 seen: datetime) -> None:
    """RECORDS (id -> record as now mirrored) changed: a value a sync wrote that a record no longer
    holds loses its provenance for good, so the same value typed again later (X → Y → X) is a new
    edit there, not the old one coming back. SEEN: when the read began; a value written since may
    postdate what it read (another job's pull), so it keeps its provenance."""
    ids = sorted(records)
    gone = []
    for i in range(0, len(ids), CHUNK):
        for row in conn.execute(sa.select(P.c.id, P.c.remote_id, P.c.path, P.c.value).where(
                P.c.system == system, P.c.entity == entity, P.c.remote_id.in_(ids[i:i + CHUNK]),
                P.c.written_at < naive(seen))):
            path = parse_path(row.path)
            if path is None or path.get(records[row.remote_id]) != jsonutil.loads(row.value):
                gone.append(row.id)
    for i in range(0, len(gone), CHUNK):
        conn.execute(sa.delete(P).where(P.c.id.in_(gone[i:i + CHUNK])))


def forget(conn: sa.Connection, system: str, entity: str, remote_id: str) -> None:
    """A record the sync deleted keeps no provenance."""
    conn.execute(sa.delete(P).where(P.c.system == system, P.c.entity == entity, P.c.remote_id == remote_id))


__all__ = ["Origin", "aware", "forget", "naive", "origin_times", "record_written", "void_changed"]
