"""What ``syncengine status`` shows: per entity row counts and cursors, recent runs and errors."""
from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa

from .config import Config
from .mirror import Mirror
from .mirror.models import CursorRow, RecordRow, RunRow


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
    entities = []
    for system, entity, live, deleted in counts:
        cursor = cursors.get((system, entity))
        entities.append({"target": f"{system}:{entity}", "live": live, "deleted": deleted,
                         "cursor_at": cursor.updated_at if cursor else None,
                         "last_sweep_at": cursor.last_sweep_at if cursor else None})
    run_list = []
    for r in recent:
        counts_json = orjson.loads(r.counts or "{}")
        run_list.append({"id": r.id, "kind": r.kind, "job": r.job, "target": r.target,
                         "started_at": r.started_at, "finished_at": r.finished_at, "status": r.status,
                         "seconds": counts_json.get("seconds"), "error": r.error or _entity_errors(counts_json)})
    return {"mirror": mirror.engine.url.render_as_string(hide_password=True), "entities": entities,
            "runs": run_list}


def _entity_errors(counts: dict[str, Any]) -> str | None:
    errors = [f"{e['system']}:{e['entity']}: {e['message']}" for e in counts.get("entities", [])
              if e.get("status") != "ok" and e.get("message")]
    return "; ".join(errors) or None
