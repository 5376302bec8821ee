"""``syncengine undo RUN``: put back what one sync run wrote, through the same connectors and outbox rows."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, cast

import sqlalchemy as sa

from . import jsonutil
from .config import Config
from .errors import ConnectorError, NotFound, UsageError
from .mapping.translate import put_element
from .mirror import Mirror
from .mirror.models import LinkRow, OutboxRow, RunRow, utcnow
from .push import Pusher, find_link, settled_bases

OUT = cast(sa.Table, OutboxRow.__table__)
L = cast(sa.Table, LinkRow.__table__)


@dataclass
class UndoResult:
    run_id: int
    restored: list[str] = field(default_factory=list)
    not_restored: list[str] = field(default_factory=list)
    left_alone: list[str] = field(default_factory=list)  # fields changed since that run: not put back


def undo(config: Config, run_id: int, *, mirror: Mirror | None = None) -> UndoResult:
    """Put back what sync run RUN_ID wrote: updates get their previous values, creates are deleted;
    deletes are reported (no CRM API we serve restores a deleted record). A field whose current
    value is no longer what that run wrote was changed since by someone: it is left alone, listed."""
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
                left_alone = _undo_one(pusher, row)
            except (ConnectorError, UsageError) as exc:
                result.not_restored.append(f"{what}: {exc}")
                continue
            except _CannotUndo as exc:
                result.not_restored.append(f"{what}: {exc}")
                continue
            result.left_alone += [f"{what}: {line}" for line in left_alone]
            result.restored.append(what)
    finally:
        pusher.close()
        mirror.finish_run(undo_run, "ok" if not result.not_restored and not result.left_alone else "warning",
                          {"restored": len(result.restored), "not_restored": result.not_restored,
                           "left_alone": result.left_alone})
    return result


def _partial(pusher: Pusher, row: dict[str, Any], back: list[str], before: dict[str, Any],
             current: dict[str, Any]) -> dict[str, Any]:
    """The raw values that put back only BACK: a plain field's old raw value, a list element or a
    template from the canonical value the plan saw (the list's other elements as they are now)."""
    fields = pusher.mapping(row["mapping"]).fields
    expected = jsonutil.loads(row["expected"])
    payload: dict[str, Any] = {}
    for name in back:
        path = fields[name].paths.get(row["side"])
        if path is not None and path.key in before:
            if path.index is None:
                payload[path.key] = before[path.key]
            else:  # only the element that run wrote: the list's other elements stay as they are now
                old = before[path.key] if isinstance(before[path.key], list) else [before[path.key]]
                payload[path.key] = put_element(payload.get(path.key, current.get(path.key)), path.index,
                                                old[path.index] if path.index < len(old) else "")
        else:
            payload.update(pusher.translator(row["mapping"]).to_raw(row["side"], {name: expected.get(name)},
                                                                    {**current, **payload}))
    return payload


class _CannotUndo(Exception):
    pass


def _wrote(row: dict[str, Any]) -> dict[str, Any]:
    """The canonical values the write left on the target: what it settled, as the target stored it."""
    return {**jsonutil.loads(row["settles"]), **jsonutil.loads(row["stored"] or "{}")}


def _changed_since(pusher: Pusher, row: dict[str, Any], record: dict[str, Any]) -> dict[str, str]:
    """Per field the write wrote and someone changed since: a line saying what it is now."""
    current = pusher.translator(row["mapping"], fresh=True).canonical(row["side"], record)
    return {name: f"it is {jsonutil.dumps(current.get(name))} now, that run wrote {jsonutil.dumps(value)}"
            for name, value in _wrote(row).items() if current.get(name) != value}


def _undo_one(pusher: Pusher, row: dict[str, Any]) -> list[str]:
    """Undo one write; returns the fields left alone because they changed since."""
    connector = pusher.connector(row["system"])
    writer = pusher.writer(row["mapping"], row["side"])
    now = utcnow()
    if row["op"] == "delete":
        raise _CannotUndo("the record was deleted and the API cannot restore it; restore it in the CRM "
                          "(vtiger: recycle bin), the next sync links it again")
    if row["op"] == "create":
        found = connector.fetch(row["entity"], [row["remote_id"]])
        if found:
            changed = _changed_since(pusher, row, found[0])
            if changed:
                raise _CannotUndo("the created record was edited since, so it is kept: " + "; ".join(changed))
        with contextlib.suppress(NotFound):
            connector.delete(row["entity"], row["remote_id"])
        with pusher.lock:
            writer.apply([], [row["remote_id"]])
            with pusher.mirror.engine.begin() as conn:
                conn.execute(sa.delete(L).where(L.c.mapping == row["mapping"], L.c.left_id == row["left_id"],
                                                L.c.right_id == row["right_id"]))
                conn.execute(sa.update(OUT).where(OUT.c.id == row["id"]).values(state="undone", updated_at=now))
        return []
    found = connector.fetch(row["entity"], [row["remote_id"]])
    if not found:
        raise _CannotUndo("the record is gone")
    wrote = _wrote(row)
    changed = _changed_since(pusher, row, found[0])
    left_alone = [f"{name} left alone: {line}" for name, line in changed.items()]
    back = [name for name in wrote if name not in changed]
    if not back:
        raise _CannotUndo("; ".join(left_alone))
    before = jsonutil.loads(row["before"] or "{}")
    payload = before  # the raw values as they were, byte for byte
    fields = pusher.mapping(row["mapping"]).fields
    in_list = any(getattr(fields[name].paths.get(row["side"]), "index", None) is not None for name in back)
    if changed or in_list:
        if changed and not row["expected"]:  # written before expectations were kept: all or nothing
            raise _CannotUndo("; ".join(left_alone))
        payload = _partial(pusher, row, back, before, found[0])
    record = connector.update(row["entity"], row["remote_id"], payload)
    with pusher.lock:
        writer.apply([record])
        with pusher.mirror.engine.begin() as conn:
            link = find_link(conn, row["mapping"], row["left_id"], row["right_id"])
            if link is not None and row["shadow_before"] is not None:
                shadow = jsonutil.loads(link.shadow)
                previous = jsonutil.loads(row["shadow_before"])
                for name in back:
                    if name in previous:
                        shadow[name] = previous[name]
                    else:
                        shadow.pop(name, None)
                conn.execute(sa.update(L).where(L.c.id == link.id).values(
                    shadow=jsonutil.dumps(shadow), bases=settled_bases(link.bases, dict.fromkeys(back), {}),
                    updated_at=now))
            conn.execute(sa.update(OUT).where(OUT.c.id == row["id"]).values(state="undone", updated_at=now))
    return left_alone
