"""Parked records — what a sync could not carry (ambiguous match, untranslatable value, refused
write) — listed, retried and ignored; ``syncengine parked`` and the console call these.

*Retry* forgets the parking and syncs the record's mapping now (its pull first, so a cause fixed in
the CRM is seen); a record that still cannot go is parked again with the new reason. *Ignore*
keeps the record parked as ``ignored``: plans leave it alone (no write is sent for it) until it is
retried.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from . import audit
from .config import Config
from .errors import UsageError
from .mirror import Mirror
from .mirror.models import ParkedRow

IGNORED = "ignored"  # parked.kind of a record an operator set aside


def parked_records(mirror: Mirror) -> list[dict[str, Any]]:
    """Every parked record, the most recently seen first."""
    with mirror.engine.connect() as conn:
        rows = conn.execute(sa.select(ParkedRow).order_by(ParkedRow.last_seen.desc(), ParkedRow.id.desc())).all()
    return [{"id": r.id, "mapping": r.mapping, "side": r.side, "remote_id": r.remote_id, "kind": r.kind,
             "error": r.error, "attempts": r.attempts, "first_seen": r.first_seen, "last_seen": r.last_seen}
            for r in rows]


def ignored_records(conn: sa.Connection, mappings: list[str]) -> set[tuple[str, str, str]]:
    """(mapping, side, remote_id) of the records set aside: plans send nothing for them."""
    return set(conn.execute(sa.select(ParkedRow.mapping, ParkedRow.side, ParkedRow.remote_id).where(
        ParkedRow.kind == IGNORED, ParkedRow.mapping.in_(mappings))).tuples())


@dataclass
class RetryOutcome:
    id: int
    mapping: str
    record: str               # "side remote_id"
    carried: bool             # no longer parked after the sync
    error: str | None         # why it is parked again
    sync_ok: bool
    run_id: int               # the audit run


def retry(config: Config, parked_id: int, *, who: str, mirror: Mirror | None = None) -> RetryOutcome:
    """Sync the parked record's mapping now; says whether the record went through."""
    from .sync import run_sync

    mirror = mirror or Mirror(config.mirror_url)
    row = _row(mirror, parked_id)
    with mirror.engine.begin() as conn:
        conn.execute(sa.delete(ParkedRow).where(ParkedRow.id == parked_id))
    result = run_sync(config, [row.mapping], mirror=mirror)
    with mirror.engine.connect() as conn:
        again = conn.execute(sa.select(ParkedRow.error).where(
            ParkedRow.mapping == row.mapping, ParkedRow.side == row.side, ParkedRow.remote_id == row.remote_id)).first()
    record = f"{row.side} {row.remote_id}"
    sync_run = result.apply.run_id if result.apply else None
    run_id = audit.record(mirror, who, "parked retry", f"parked {parked_id} ({row.mapping} {record})",
                          ok=again is None, detail={"sync_run": sync_run},
                          error=again.error if again else None)
    return RetryOutcome(parked_id, row.mapping, record, again is None, again.error if again else None,
                        result.ok, run_id)


def ignore(mirror: Mirror, parked_id: int, *, who: str) -> dict[str, Any]:
    """Set the record aside: no write is planned for it until it is retried."""
    row = _row(mirror, parked_id)
    with mirror.engine.begin() as conn:
        conn.execute(sa.update(ParkedRow).where(ParkedRow.id == parked_id).values(kind=IGNORED))
    audit.record(mirror, who, "parked ignore", f"parked {parked_id} ({row.mapping} {row.side} {row.remote_id})",
                 detail={"was": row.kind, "error": row.error})
    return {"id": parked_id, "mapping": row.mapping, "side": row.side, "remote_id": row.remote_id}


def _row(mirror: Mirror, parked_id: int) -> Any:
    with mirror.engine.connect() as conn:
        row = conn.execute(sa.select(ParkedRow).where(ParkedRow.id == parked_id)).first()
    if row is None:
        raise UsageError(f"no parked record {parked_id}; `syncengine parked` lists them")
    return row
