"""``syncengine undo RUN``: put back what one sync run wrote, through the same connectors and outbox rows."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, cast

import sqlalchemy as sa

from . import jsonutil
from .config import Config
from .errors import ConnectorError, NotFound, UsageError
from .mirror import Mirror
from .mirror.models import LinkRow, OutboxRow, RunRow, utcnow
from .push import Pusher, find_link

OUT = cast(sa.Table, OutboxRow.__table__)
L = cast(sa.Table, LinkRow.__table__)


@dataclass
class UndoResult:
    run_id: int
    restored: list[str] = field(default_factory=list)
    not_restored: list[str] = field(default_factory=list)


def undo(config: Config, run_id: int, *, mirror: Mirror | None = None) -> UndoResult:
    """Put back what sync run RUN_ID wrote: updates get their previous values, creates are deleted;
    deletes are reported (no CRM API we serve restores a deleted record)."""
    mirror = mirror or Mirror(config.mirror_url)
    with mirror.engine.connect() as conn:
        run = conn.execute(sa.select(RunRow).where(RunRow.id == run_id)).first()
        if run is None or run.kind != "sync":
            raise UsageError(f"run {run_id} is not a sync run; `syncengine status` lists recent runs")
        rows = [dict(r._mapping) for r in conn.execute(sa.select(OUT).where(
            OUT.c.run_id == run_id, OUT.c.state == "done").order_by(OUT.c.id.desc()))]
    result = UndoResult(run_id)
    pusher = Pusher(config, mirror, [], workers=1)
    undo_run = mirror.start_run("undo", f"run {run_id}")
    try:
        for row in rows:
            what = f"{row['op']} of {row['system']}:{row['entity']} {row['remote_id']}"
            try:
                _undo_one(pusher, row)
            except (ConnectorError, UsageError) as exc:
                result.not_restored.append(f"{what}: {exc}")
                continue
            except _CannotUndo as exc:
                result.not_restored.append(f"{what}: {exc}")
                continue
            result.restored.append(what)
    finally:
        pusher.close()
        mirror.finish_run(undo_run, "ok" if not result.not_restored else "warning",
                          {"restored": len(result.restored), "not_restored": result.not_restored})
    return result


class _CannotUndo(Exception):
    pass


def _undo_one(pusher: Pusher, row: dict[str, Any]) -> None:
    connector = pusher.connector(row["system"])
    writer = pusher.writer(row["mapping"], row["side"])
    now = utcnow()
    if row["op"] == "delete":
        raise _CannotUndo("the record was deleted and the API cannot restore it; restore it in the CRM "
                          "(vtiger: recycle bin), the next sync links it again")
    if row["op"] == "create":
        with contextlib.suppress(NotFound):
            connector.delete(row["entity"], row["remote_id"])
        with pusher.lock:
            writer.apply([], [row["remote_id"]])
            with pusher.mirror.engine.begin() as conn:
                conn.execute(sa.delete(L).where(L.c.mapping == row["mapping"], L.c.left_id == row["left_id"],
                                                L.c.right_id == row["right_id"]))
                conn.execute(sa.update(OUT).where(OUT.c.id == row["id"]).values(state="undone", updated_at=now))
        return
    before = jsonutil.loads(row["before"] or "{}")
    record = connector.update(row["entity"], row["remote_id"], before)
    with pusher.lock:
        writer.apply([record])
        with pusher.mirror.engine.begin() as conn:
            link = find_link(conn, row["mapping"], row["left_id"], row["right_id"])
            if link is not None and row["shadow_before"] is not None:
                shadow = jsonutil.loads(link.shadow)
                previous = jsonutil.loads(row["shadow_before"])
                for name in jsonutil.loads(row["settles"]):
                    if name in previous:
                        shadow[name] = previous[name]
                    else:
                        shadow.pop(name, None)
                conn.execute(sa.update(L).where(L.c.id == link.id).values(shadow=jsonutil.dumps(shadow),
                                                                         updated_at=now))
            conn.execute(sa.update(OUT).where(OUT.c.id == row["id"]).values(state="undone", updated_at=now))
