"""The console's pages. Each reads or acts through the functions the CLI calls (status, parked,
conflicts, deletes, plan/apply) and records its actions in the same audit trail."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from .. import audit, jsonutil
from .. import parked as parking
from ..config import Config
from ..conflicts import conflicts as open_conflicts
from ..conflicts import resolve_conflict, typed_value
from ..mirror import Mirror
from ..mirror.models import LinkRow, OutboxRow, RecordRow, RunRow, utcnow
from ..plan import Plan
from ..plan_text import plan_lines
from ..serving import health_problems, mirror_state
from ..status import collect

bp = Blueprint("pages", __name__)


@dataclass
class Context:
    config: Config
    mirror: Mirror
    alive: Callable[[], bool]
    plans: dict[str, Plan] = field(default_factory=dict)  # made by "plan now", kept for "apply"

    def keep(self, plan: Plan) -> None:
        self.plans[plan.id] = plan
        while len(self.plans) > 20:
            del self.plans[next(iter(self.plans))]


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


# -- record ------------------------------------------------------------------------------------

@bp.get("/record")
def record() -> str:
    c = ctx()
    target, query = request.args.get("target", ""), request.args.get("q", "").strip()
    with c.mirror.engine.connect() as conn:
        targets = [f"{s}:{e}" for s, e in conn.execute(
            sa.select(RecordRow.system, RecordRow.entity).distinct().order_by(RecordRow.system, RecordRow.entity))]
        found = _find_records(conn, target, query) if target and query else []
        shown = [_record_view(conn, c.config, c.mirror, target, row) for row in found[:5]]
    return render_template("record.html", targets=targets, target=target, query=query, records=shown,
                           more=len(found) - len(shown))


def _find_records(conn: sa.Connection, target: str, query: str) -> list[Any]:
    """By id, else by a value (an e-mail) equal to QUERY in any field, ignoring case."""
    system, _, entity = target.partition(":")
    where = (RecordRow.system == system, RecordRow.entity == entity)
    row = conn.execute(sa.select(RecordRow).where(*where, RecordRow.remote_id == query)).first()
    if row is not None:
        return [row]
    wanted = query.lower()
    candidates = conn.execute(sa.select(RecordRow).where(
        *where, sa.func.lower(RecordRow.data).contains(wanted, autoescape=True)).limit(200)).all()
    return [r for r in candidates if any(wanted in _texts(v) for v in jsonutil.loads(r.data).values())]


def _texts(value: Any) -> set[str]:
    values = value if isinstance(value, list) else [value]
    return {str(v).strip().lower() for v in values if v is not None}


def _record_view(conn: sa.Connection, config: Config, mirror: Mirror, target: str, row: Any) -> dict[str, Any]:
    """The mirror row, its links (with the base values both sides agreed on), which runs wrote it,
    and where each synced value came from (what ``syncengine explain`` shows)."""
    from ..explain import explain
    from ..mapping import load_mappings

    links = []
    for mapping in load_mappings(config).values():
        for side in ("left", "right"):
            if str(mapping.side(side)) != target:
                continue
            column = LinkRow.left_id if side == "left" else LinkRow.right_id
            stmt = sa.select(LinkRow).where(LinkRow.mapping == mapping.name, column == row.remote_id)
            for link in conn.execute(stmt):
                far = "right" if side == "left" else "left"
                links.append({"mapping": mapping.name, "state": link.state, "other": str(mapping.side(far)),
                              "other_id": link.right_id if side == "left" else link.left_id,
                              "base": jsonutil.loads(link.shadow or "{}"), "since": link.created_at,
                              "held": jsonutil.loads(link.bases or "{}").get(side, {})})
    system, _, entity = target.partition(":")
    writes = conn.execute(sa.select(OutboxRow.run_id, OutboxRow.mapping, OutboxRow.op, OutboxRow.state,
                                    OutboxRow.settles, OutboxRow.updated_at, OutboxRow.error).where(
        OutboxRow.system == system, OutboxRow.entity == entity, OutboxRow.remote_id == row.remote_id)
        .order_by(OutboxRow.id.desc()).limit(20)).all()
    return {"id": row.remote_id, "data": jsonutil.loads(row.data), "first_seen": row.first_seen,
            "last_changed": row.last_changed, "deleted_at": row.deleted_at, "links": links,
            "writes": [{**w._mapping, "fields": sorted(jsonutil.loads(w.settles or "{}"))} for w in writes],
            "provenance": explain(config, mirror, system, entity, row.remote_id)["links"]}


# -- mappings: plan now, apply that plan -------------------------------------------------------

@bp.get("/mappings")
def mappings() -> str:
    from ..mapping import load_mappings

    c = ctx()
    counts = {m["mapping"]: m for m in collect(c.config, runs=0, mirror=c.mirror)["mappings"]}
    return render_template("mappings.html", mappings=list(load_mappings(c.config).values()), counts=counts)


@bp.post("/mappings/<name>/plan")
def mapping_plan(name: str) -> Response:
    """Pull both sides, then plan: what a sync would write now."""
    from ..mapping import SIDES, prepare
    from ..plan import make_plan
    from ..pull import pull

    c = ctx()
    prepared = prepare(c.config, [name], c.mirror)
    pull(c.config, sorted({str(m.side(s)) for m, _ in prepared for s in SIDES}), mirror=c.mirror)
    plan = make_plan(c.mirror, prepare(c.config, [name], c.mirror))
    c.keep(plan)
    return redirect(url_for("pages.plan_page", plan_id=plan.id))


@bp.get("/plans/<plan_id>")
def plan_page(plan_id: str) -> str:

    plan = ctx().plans.get(plan_id) or abort(404)
    return render_template("plan.html", plan=plan, lines=plan_lines(plan), writes=len(plan.writes()))


@bp.post("/plans/<plan_id>/apply")
def plan_apply(plan_id: str) -> Response:
    """Carry out exactly the plan shown (refused if the mirror moved since it was made)."""
    from ..push import apply_plan

    c = ctx()
    plan = c.plans.get(plan_id) or abort(404)
    result = apply_plan(c.config, plan, mirror=c.mirror)
    audit_run = audit.plan_applied(c.mirror, who(), plan, result)
    flash(f"plan applied by run {result.run_id}: {result.writes} write(s)"
          + (f", {len(result.failed)} parked" if result.failed else "") + f" (audit run {audit_run})",
          "ok" if result.ok else "error")
    del c.plans[plan_id]
    return redirect(url_for("pages.run_detail", run_id=result.run_id))



# -- held deletes ------------------------------------------------------------------------------

@bp.get("/deletes")
def deletes() -> str:
    from ..deletes import list_deletes

    return render_template("deletes.html", rows=list_deletes(ctx().mirror))


@bp.post("/deletes/decide")
def deletes_decide() -> Response:
    """Approve or reject the ticked deletes (or one, from its own button)."""
    from ..deletes import approve, reject

    decision = request.form.get("decision", "")
    ids = [int(i) for i in request.form.getlist("id") if i.isdigit()]
    if decision not in ("approve", "reject") or not ids:
        flash("tick at least one delete, then approve or reject", "error")
        return redirect(url_for("pages.deletes"))
    done = (approve if decision == "approve" else reject)(ctx().mirror, ids, who=who())
    decided = done["approved" if decision == "approve" else "rejected"]
    flash(f"{len(decided)} delete(s) {decision}d" + (": the next sync carries them out" if decision == "approve"
                                                      else ": nothing is deleted on the other side"), "ok")
    return redirect(url_for("pages.deletes"))
