"""Open conflicts: list them (each side's value as of the last plan, which refreshes them), and
settle one by taking a side (its value as it is when the next sync writes it) or giving a value."""
from __future__ import annotations

from typing import Any, cast

import sqlalchemy as sa

from . import audit, jsonutil
from .errors import UsageError
from .mirror import Mirror
from .mirror.models import ConflictRow, LinkRow, utcnow

L = cast(sa.Table, LinkRow.__table__)


def conflicts(mirror: Mirror, *, all_states: bool = False) -> list[dict[str, Any]]:
    c = ConflictRow.__table__
    stmt = sa.select(c, L.c.left_id, L.c.right_id).join(L, L.c.id == c.c.link_id, isouter=True).order_by(c.c.id)
    if not all_states:
        stmt = stmt.where(c.c.state.in_(("open", "resolved")))
    with mirror.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return [{"id": r.id, "mapping": r.mapping, "link": r.link_id, "left_id": r.left_id, "right_id": r.right_id,
             "field": r.field, "left": jsonutil.loads(r.left_value), "right": jsonutil.loads(r.right_value),
             "shadow": jsonutil.loads(r.shadow_value) if r.shadow_value else None, "state": r.state,
             "value": jsonutil.loads(r.value) if r.value else None, "created_at": r.created_at}
            for r in rows]


def resolve_conflict(mirror: Mirror, conflict_id: int, *, take: str | None = None, value: Any = None,
                     who: str | None = None) -> dict[str, Any]:
    """Settle one conflict: a side (``take``: that side's value when the next sync writes it) or a
    given VALUE. WHO (the CLI's or the console's user) goes into the audit trail."""
    with mirror.engine.begin() as conn:
        row = conn.execute(sa.select(ConflictRow).where(ConflictRow.id == conflict_id)).first()
        if row is None:
            raise UsageError(f"no conflict {conflict_id}; `syncengine conflicts` lists the open ones")
        if row.state not in ("open", "resolved"):
            raise UsageError(f"conflict {conflict_id} is already {row.state}")
        if take is not None:  # the side's value when the next sync writes it, not the one shown
            value = jsonutil.loads(row.left_value if take == "left" else row.right_value)
        conn.execute(sa.update(ConflictRow).where(ConflictRow.id == conflict_id).values(
            state="resolved", value=jsonutil.dumps(value), take=take, resolved_at=utcnow()))
    if who is not None:
        audit.record(mirror, who, "conflict resolve", f"conflict {conflict_id} ({row.mapping} {row.field})",
                     detail={"take": take or "value", "value": value})
    return {"id": conflict_id, "field": row.field, "value": value, "take": take}


def typed_value(text: str) -> Any:
    """A value typed by a person: JSON when it parses (``42``, ``null``, ``["a"]``), else the text itself."""
    try:
        return jsonutil.loads(text)
    except ValueError:
        return text
