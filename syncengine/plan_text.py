"""A plan as text a person reads: shared by the CLI and the console, which must not import each other."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .jsonutil import dumps

if TYPE_CHECKING:
    from .plan import Plan


def show_value(value: Any) -> str:
    """A field value as one token in a plan or conflict line: ∅ for none, JSON otherwise."""
    if value is None:
        return "∅"
    return dumps(value)


def natural(text: str | None) -> tuple[tuple[int, Any], ...]:
    """A sort key that orders the numbers in ids as numbers: ``12x9`` before ``12x10``."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text or "") if part)


_OP_ORDER = {"create": 0, "update": 1, "delete": 2, "link": 3, "unlink": 4, "conflict": 5}


def plan_lines(plan: Plan) -> list[str]:
    """The plan as a person reads it: per mapping, every write with its fields before → after."""
    lines: list[str] = []
    for name in plan.mappings:
        actions = sorted((a for a in plan.actions if a.mapping == name),
                         key=lambda a: (_OP_ORDER.get(a.op, 9), natural(a.left_id or a.right_id or a.remote_id)))
        issues = sorted((i for i in plan.issues if i.mapping == name), key=lambda i: (i.side, natural(i.remote_id)))
        sides = plan.sides.get(name, {})
        lines.append(f"mapping {name} ({sides.get('left')} ↔ {sides.get('right')})")
        if not actions and not issues:
            lines.append("  nothing to do")
        for a in actions:
            pair = f"{sides.get('left')} {a.left_id or '(new)'} ↔ {sides.get('right')} {a.right_id or '(new)'}"
            if a.op == "create":
                source = "left" if a.left_id else "right"
                lines.append(f"  + create {a.system}:{a.entity} from {sides.get(source)} "
                             f"{a.left_id or a.right_id}")
            elif a.op == "update":
                lines.append(f"  ~ update {a.system}:{a.entity} {a.remote_id}")
            elif a.op == "delete":
                lines.append(f"  - delete {a.system}:{a.entity} {a.remote_id}")
            elif a.op == "link":
                if a.link_id is None:
                    lines.append(f"  = link {pair} (matched)")
                continue
            elif a.op == "unlink":
                lines.append(f"  ⨯ {a.state} {pair}")
                continue
            elif a.op == "conflict":
                c = a.conflict or {}
                lines.append(f"  ! conflict {pair} field {c.get('field')}: left {show_value(c.get('left'))}, "
                             f"right {show_value(c.get('right'))} (was {show_value(c.get('shadow'))})")
                continue
            for fname, (before, after) in a.changes.items():
                lines.append(f"      {fname}: {show_value(before)} → {show_value(after)}")
        for i in issues:
            lines.append(f"  ? {i.kind} {sides.get(i.side)} {i.remote_id}: {i.error}")
    counts = plan.counts()
    total = sum(sum(c.values()) for c in counts.values())
    summary = "; ".join(f"{t}: " + ", ".join(f"{n} {op}" for op, n in c.items() if n) for t, c in counts.items())
    lines.append(f"{total} write(s)" + (f" — {summary}" if summary else "") +
                 (f"; {len(plan.issues)} record(s) parked" if plan.issues else ""))
    lines += [f"note: {n}" for n in plan.notes]
    return lines
