"""The console's pages. Each reads or acts through the functions the CLI calls (status, parked,
conflicts, deletes, plan/apply) and records its actions in the same audit trail."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from .. import jsonutil
from .. import parked as parking
from ..config import Config
from ..conflicts import conflicts as open_conflicts
from ..conflicts import resolve_conflict, typed_value
from ..mirror import Mirror
from ..mirror.models import OutboxRow, RunRow, utcnow
from ..serving import health_problems, mirror_state
from ..status import collect

bp = Blueprint("pages", __name__)


@dataclass
class Context:
    config: Config
    mirror: Mirror
    alive: Callable[[], bool]


def ctx() -> Context:
    context: Context = current_app.extensions["syncengine"]
    return context


def who() -> str:
    """The audit trail's "who": the name given at login, or the address when no login is asked."""
    return session.get("who") or f"local@ui {request.remote_addr}"


@bp.app_template_filter("age")
def age(value: datetime | float | None) -> str:
    """``3m 20s ago``-style text for a naive-UTC time or a number of seconds."""
    if value is None:
        return "never"
    seconds = value if isinstance(value, (int, float)) else (utcnow() - value).total_seconds()
    return _span(seconds) + " ago"


@bp.app_template_filter("span")
def _span(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    parts = [(seconds // 86400, "d"), (seconds % 86400 // 3600, "h"), (seconds % 3600 // 60, "m"), (seconds % 60, "s")]
    shown = [f"{n}{unit}" for n, unit in parts if n][:2]
    return " ".join(shown) or "0s"


@bp.app_template_filter("when")
def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


@bp.app_template_filter("json")
def as_json(value: Any) -> str:
    return jsonutil.dumps(value, indent=True, default=str)


# -- overview ----------------------------------------------------------------------------------

@bp.get("/")
def overview() -> str:
    c = ctx()
    info = collect(c.config, runs=10, mirror=c.mirror)
    state = mirror_state(c.config, c.mirror)
    problems = health_problems(c.config, c.mirror, alive=c.alive, state=state)
    freshness = state.freshness_seconds()
    stale = c.config.health.stale_after.total_seconds()
    for e in info["entities"]:
        key = tuple(e["target"].split(":", 1))
        e["freshness"] = freshness.get(key)
        e["stale"] = e["freshness"] is not None and e["freshness"] > stale
        outcome = state.last_outcomes.get(key) or {}
        e["last_status"], e["last_message"] = outcome.get("status"), outcome.get("message")
    systems = []
    for name, settings in c.config.systems.items():
        outcomes = sorted((o for (system, _), o in state.last_outcomes.items() if system == name),
                          key=lambda o: o["at"], reverse=True)
        errors = [o for o in outcomes if o.get("status") != "ok"]
        systems.append({"name": name, "kind": settings["kind"], "url": settings.get("url", ""),
                        "reachable": None if not outcomes else not errors,
                        "last_error": errors[0].get("message") if errors else None,
                        "last_pull": outcomes[0]["at"] if outcomes else None})
    for job in info["jobs"]:
        job["failed_in_a_row"] = state.failed_in_a_row.get(job["name"], (0, None))[0]
    return render_template("overview.html", info=info, systems=systems, problems=problems,
                           held_deletes=sum(state.held_deletes.values()), health=c.config.health)


# -- runs --------------------------------------------------------------------------------------

RUN_KINDS = ("job", "pull", "sync", "migrate", "undo", "action")
RUN_STATUSES = ("running", "ok", "warning", "failed", "stopped")


@bp.get("/runs")
def runs() -> str:
    c = ctx()
    filters = {k: request.args.get(k, "") for k in ("kind", "status", "job")}
    stmt = sa.select(RunRow).order_by(RunRow.id.desc()).limit(200)
    if filters["kind"]:
        stmt = stmt.where(RunRow.kind == filters["kind"])
    if filters["status"]:
        stmt = stmt.where(RunRow.status == filters["status"])
    if filters["job"]:
        stmt = stmt.where(RunRow.job == filters["job"])
    with c.mirror.engine.connect() as conn:
        rows = [_run_view(r) for r in conn.execute(stmt)]
    return render_template("runs.html", runs=rows, filters=filters, kinds=RUN_KINDS, statuses=RUN_STATUSES,
                           jobs=[j.name for j in c.config.jobs])


@bp.get("/runs/<int:run_id>")
def run_detail(run_id: int) -> str:
    c = ctx()
    with c.mirror.engine.connect() as conn:
        row = conn.execute(sa.select(RunRow).where(RunRow.id == run_id)).first()
        if row is None:
            abort(404)
        writes = conn.execute(sa.select(OutboxRow.system, OutboxRow.entity, OutboxRow.op, OutboxRow.state,
                                        sa.func.count()).where(OutboxRow.run_id == run_id)
                              .group_by(OutboxRow.system, OutboxRow.entity, OutboxRow.op, OutboxRow.state)).all()
        errors = conn.execute(sa.select(OutboxRow.op, OutboxRow.system, OutboxRow.entity, OutboxRow.remote_id,
                                        OutboxRow.error).where(OutboxRow.run_id == run_id,
                                                               OutboxRow.error.is_not(None)).limit(100)).all()
    return render_template("run.html", run=_run_view(row), writes=writes, errors=errors)


def _run_view(row: Any) -> dict[str, Any]:
    counts = jsonutil.loads(row.counts or "{}")
    seconds = counts.get("seconds")
    if seconds is None and row.finished_at:
        seconds = (row.finished_at - row.started_at).total_seconds()
    return {"id": row.id, "kind": row.kind, "job": row.job, "target": row.target, "status": row.status,
            "started_at": row.started_at, "finished_at": row.finished_at, "seconds": seconds,
            "error": row.error, "counts": counts, "who": counts.get("who")}



# -- parked records ----------------------------------------------------------------------------

@bp.get("/parked")
def parked() -> str:
    return render_template("parked.html", rows=parking.parked_records(ctx().mirror))


@bp.post("/parked/<int:item_id>/retry")
def parked_retry(item_id: int) -> Response:
    c = ctx()
    outcome = parking.retry(c.config, item_id, who=who(), mirror=c.mirror)
    if outcome.carried:
        flash(f"parked {item_id}: {outcome.mapping} {outcome.record} went through", "ok")
    else:
        flash(f"parked {item_id} is still parked: {outcome.error}", "error")
    return redirect(url_for("pages.parked"))


@bp.post("/parked/<int:item_id>/ignore")
def parked_ignore(item_id: int) -> Response:
    row = parking.ignore(ctx().mirror, item_id, who=who())
    flash(f"parked {item_id}: {row['mapping']} {row['side']} {row['remote_id']} is ignored until retried", "ok")
    return redirect(url_for("pages.parked"))


# -- conflicts ---------------------------------------------------------------------------------

@bp.get("/conflicts")
def conflicts() -> str:
    return render_template("conflicts.html", rows=open_conflicts(ctx().mirror))


@bp.post("/conflicts/<int:item_id>/resolve")
def conflict_resolve(item_id: int) -> Response:
    take = request.form.get("take", "")
    if take in ("left", "right"):
        outcome = resolve_conflict(ctx().mirror, item_id, take=take, who=who())
    elif take == "value":
        outcome = resolve_conflict(ctx().mirror, item_id, value=typed_value(request.form.get("value", "")), who=who())
    else:
        abort(400)
    flash(f"conflict {item_id}: {outcome['field']} = {jsonutil.dumps(outcome['value'])}; the next sync writes it", "ok")
    return redirect(url_for("pages.conflicts"))
