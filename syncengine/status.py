"""What ``syncengine status`` shows: jobs and their next runs, per entity row counts and cursors,
per mapping links, parked records and open conflicts, recent runs and their errors.

Every timestamp is naive UTC, as the mirror stores it.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import Any

import sqlalchemy as sa

from .config import Config, Job
from .errors import SyncEngineError
from .jsonutil import loads
from .mirror import Mirror
from .mirror.models import ConflictRow, CursorRow, LinkRow, OutboxRow, ParkedRow, RecordRow, RunRow


def collect(config: Config, *, runs: int = 5, mirror: Mirror | None = None) -> dict[str, Any]:
    mirror = mirror or Mirror(config.mirror_url)
    records = RecordRow.__table__
    with mirror.engine.connect() as conn:
        counts = conn.execute(
            sa.select(records.c.system, records.c.entity,
                      sa.func.count().filter(records.c.deleted_at.is_(None)),
                      sa.func.count().filter(records.c.deleted_at.is_not(None)))
            .group_by(records.c.system, records.c.entity).order_by(records.c.system, records.c.entity)).all()
        cursors = {(c.system, c.entity): c for c in conn.execute(sa.select(CursorRow))}
        recent = conn.execute(sa.select(RunRow).order_by(RunRow.id.desc()).limit(runs)).all()
        jobs = [_job(conn, job) for job in config.jobs]
        mappings = _mappings(conn)
    entities = []
    reading = _change_readings(config)
    rows = {(system, entity): (live, deleted) for system, entity, live, deleted in counts}
    for system, entity in sorted(rows.keys() | cursors.keys()):  # a pulled entity with no record is shown too
        live, deleted = rows.get((system, entity), (0, 0))
        cursor = cursors.get((system, entity))
        entities.append({"target": f"{system}:{entity}", "live": live, "deleted": deleted,
                         "cursor_at": cursor.updated_at if cursor else None,
                         "last_sweep_at": cursor.last_sweep_at if cursor else None,
                         "reads": reading(system, entity, cursor.cursor if cursor else None)})
    return {"mirror": mirror.engine.url.render_as_string(hide_password=True), "jobs": jobs,
            "entities": entities, "mappings": mappings, "runs": [_run(r) for r in recent],
            "parked": sum(m["parked"] for m in mappings),
            "conflicts": sum(m["open_conflicts"] for m in mappings)}


def _change_readings(config: Config) -> Callable[[str, str, str | None], str]:
    """How each entity's changes are read, as its connector tells it from the stored cursor
    (no request is made: the connectors are built but never called over HTTP)."""
    from .connectors import Connector, connect

    built: dict[str, Connector] = {}

    def reading(system: str, entity: str, cursor: str | None) -> str:
        if system not in config.systems:
            return "-"
        if system not in built:
            built[system] = connect(system, config.systems[system])
            built[system].close()  # it holds an idle HTTP session, which nothing here uses
        try:
            return built[system].change_reading(entity, cursor)
        except SyncEngineError as exc:  # an entity the connector no longer knows, an unreadable cursor
            return f"unknown: {exc}"

    return reading


def schedule_text(job: Job) -> str:
    if job.cron:
        return f"cron {job.cron}"
    if job.every:
        return f"every {_duration(job.every.total_seconds())}"
    return "manual"


def _job(conn: sa.Connection, job: Job) -> dict[str, Any]:
    from .scheduler import JOB_RUN, next_run

    upcoming = next_run(job)
    last = conn.execute(sa.select(RunRow).where(RunRow.kind == JOB_RUN, RunRow.job == job.name)
                        .order_by(RunRow.id.desc()).limit(1)).first()
    failures = conn.execute(sa.select(sa.func.count()).select_from(RunRow).where(
        RunRow.kind == JOB_RUN, RunRow.job == job.name, RunRow.status == "failed")).scalar_one()
    return {"name": job.name, "schedule": schedule_text(job), "pull": job.pull, "mappings": job.mappings,
            "next_run_at": upcoming.astimezone(UTC).replace(tzinfo=None) if upcoming else None,
            "last_run": _run(last) if last else None, "failed_runs": failures}


def _mappings(conn: sa.Connection) -> list[dict[str, Any]]:
    """Per mapping: active links, parked records, open conflicts, failed writes."""
    found: dict[str, dict[str, Any]] = {}

    def add(stmt: sa.Select, key: str) -> None:
        for mapping, count in conn.execute(stmt.group_by(stmt.selected_columns[0])):
            found.setdefault(mapping, {"mapping": mapping, "links": 0, "parked": 0, "open_conflicts": 0,
                                       "failed_writes": 0})[key] = count

    add(sa.select(LinkRow.mapping, sa.func.count()).where(LinkRow.state == "active"), "links")
    add(sa.select(ParkedRow.mapping, sa.func.count()), "parked")
    add(sa.select(ConflictRow.mapping, sa.func.count()).where(ConflictRow.state == "open"), "open_conflicts")
    add(sa.select(OutboxRow.mapping, sa.func.count()).where(OutboxRow.state == "failed"), "failed_writes")
    return [found[m] for m in sorted(found)]


def _run(r: Any) -> dict[str, Any]:
    counts = loads(r.counts or "{}")
    return {"id": r.id, "kind": r.kind, "job": r.job, "target": r.target, "started_at": r.started_at,
            "finished_at": r.finished_at, "status": r.status, "seconds": counts.get("seconds"),
            "error": r.error or _entity_errors(counts),
            "schema_changes": [c for e in counts.get("entities", []) for c in e.get("schema_changes", ())]}


def _entity_errors(counts: dict[str, Any]) -> str | None:
    errors = [f"{e['system']}:{e['entity']}: {e['message']}" for e in counts.get("entities", [])
              if e.get("status") != "ok" and e.get("message")]
    return "; ".join(errors) or None


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
