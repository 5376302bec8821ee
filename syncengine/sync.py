"""``run_sync``: pull both sides of the mappings, settle interrupted writes, plan, apply.

Used by ``syncengine sync``, and meant for the daemon and ``migrate``: one call, one result.
Writes apply skipped because their target changed since the plan are planned again, from what
the targets hold now; where mappings share an entity (a star, chain or ring of systems) the run
plans again after its writes, up to once per mapping, so a record created on the hub reaches the
far spoke and every link settles in the same run.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from .config import Config
from .mapping import SIDES, Mapping, prepare, prepare_mirror
from .mirror import Mirror
from .plan import Plan, components, make_plan
from .pull import Progress, PullResult, pull
from .push import DEFAULT_WORKERS, ApplyResult, Pusher, WriteProgress, apply_plan, holding, run_status
from .types import EntitySchema


@dataclass
class SyncResult:
    pull: PullResult | None
    plan: Plan
    apply: ApplyResult | None = None
    recovered: int = 0
    notes: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # one line each: what could not be done, and why
    run_id: int | None = None                         # the sync run in the history (every pass's writes)

    @property
    def ok(self) -> bool:
        return (not self.failed and (self.pull is None or self.pull.ok)
                and (self.apply is None or self.apply.ok))

    @property
    def written(self) -> dict[str, dict[str, int]]:
        """``{system: {op: n}}`` of the writes made (the daemon's metrics read it)."""
        out: dict[str, dict[str, int]] = {}
        for (target, op), n in (self.apply.done.items() if self.apply else ()):
            system = target.split(":", 1)[0]
            out.setdefault(system, {})[op] = out.get(system, {}).get(op, 0) + n
        return out

    def as_dict(self) -> dict[str, Any]:
        """What ``sync --json`` prints and the run history keeps: writes, and every failure."""
        info: dict[str, Any] = self.apply.as_dict() if self.apply else {
            "run": self.run_id, "plan": self.plan.id, "writes": {}, "failed": [], "recovered": 0, "skipped": 0,
            "requests": {}, "seconds": 0.0}
        info["failed"] = [{"error": line} for line in self.failed] + info["failed"]
        info["ok"] = self.ok
        info["pulled"] = [asdict(e) for e in self.pull.entities] if self.pull else []
        info["notes"] = self.notes
        return info

    @property
    def requests(self) -> dict[str, int]:
        total: dict[str, int] = dict(self.pull.requests) if self.pull else {}
        for system, n in (self.apply.requests.items() if self.apply else ()):
            total[system] = total.get(system, 0) + n
        return total


def run_sync(config: Config, names: Iterable[str] | None = None, *, mirror: Mirror | None = None,
             job: str | None = None, workers: int = DEFAULT_WORKERS, full: bool = False,
             dry_run: bool = False, pull_first: bool = True, pulled: PullResult | None = None,
             should_stop: Callable[[], bool] | None = None, progress: Progress | None = None,
             write_progress: WriteProgress | None = None) -> SyncResult:
    """Sync the named mappings (default: all): pull + plan + apply (``dry_run``: no apply).

    ``pulled``: the pull the caller made instead (``pull_first=False``). A mapping with a side that
    pull could not read is left alone: nothing written, nothing parked, one line in ``failed``.
    ``should_stop`` (the daemon's SIGTERM) is asked before each write; writes not started are
    left for the next run."""
    # what the files show, then each field against both sides' describe, before a mirror is created
    prepared, mirror = prepare_mirror(config, names, mirror)
    if pull_first:
        targets = sorted({str(m.side(s)) for m, _ in prepared for s in SIDES})
        pulled = pull(config, targets, full=full, mirror=mirror, job=job, progress=progress)
        prepared = prepare(config, names, mirror)  # the pull may have described a changed entity again
    skipped = _unreadable(prepared, pulled) if pulled is not None else {}
    prepared = [(m, schemas) for m, schemas in prepared if m.name not in skipped]
    failed = list(skipped.values()) + [e.message or e.status for e in (pulled.entities if pulled else ())
                                       if e.status == "refused"]  # the mass-delete breaker held deletes
    if dry_run:
        plan = make_plan(mirror, prepared)
        return SyncResult(pull=pulled, plan=plan, notes=failed + plan.notes, failed=failed)
    with holding(mirror, [m.name for m, _ in prepared]):
        pusher = Pusher(config, mirror, prepared, workers=workers)
        try:  # writes an interrupted run left unconfirmed: adopt or abandon them first
            recovered = pusher.recover()
        finally:
            pusher.close()
        plan = make_plan(mirror, prepared)
        result = SyncResult(pull=pulled, plan=plan, recovered=recovered, notes=failed + plan.notes, failed=failed)
        if plan.mappings:
            _apply_passes(config, mirror, prepared, plan, result, workers=workers, job=job,
                          should_stop=should_stop, write_progress=write_progress)
    if failed and result.apply is None:  # the history says what the exit code says
        result.run_id = mirror.start_run("sync", " ".join(sorted(skipped)), job)
        mirror.finish_run(result.run_id, "failed", result.as_dict(), "; ".join(failed))
    return result


def _apply_passes(config: Config, mirror: Mirror, prepared: list[tuple[Mapping, dict[str, EntitySchema]]],
                  plan: Plan, result: SyncResult, *, workers: int, job: str | None,
                  should_stop: Callable[[], bool] | None, write_progress: WriteProgress | None) -> None:
    """Apply PLAN, then plan and apply again while the run must go on, all in one run of the history:
    ``undo`` of it undoes every pass, and its status says whether any pass failed."""
    result.run_id = run_id = mirror.start_run("sync", " ".join(plan.mappings), job)
    error: str | None = None
    try:
        result.apply = apply_plan(config, plan, mirror=mirror, workers=workers, job=job, check=False,
                                  prepared=prepared, should_stop=should_stop, locked=True,
                                  progress=write_progress, run_id=run_id)
        shared = {name for group in components([m for m, _ in prepared]) if len(group) > 1 for name in group}
        last, done = result.apply, plan
        for _ in range(max(1, len(shared))):
            # targets changed under the plan: the mirror has them now, plan them again; and where
            # mappings share an entity, what one wrote goes on through the next (a record created
            # on the hub reaches the far spoke) and links another mapping wrote settle, in this run
            follow = last.writes and not last.failed and any(a.mapping in shared for a in done.writes())
            if not (last.stale or follow):
                break
            done = make_plan(mirror, prepared)
            if done.empty:
                break
            last = apply_plan(config, done, mirror=mirror, workers=workers, job=job, check=False,
                              prepared=prepared, should_stop=should_stop, locked=True, run_id=run_id)
            result.apply.absorb(last)
            result.notes += done.notes
    except BaseException as exc:
        error = str(exc) or type(exc).__name__
        raise
    finally:
        status = "failed" if result.failed else run_status(result.apply, error) if result.apply else "failed"
        error = "; ".join(result.failed + ([error] if error else [])) or None
        mirror.finish_run(run_id, status, result.as_dict(), error)


def _unreadable(prepared: list[tuple[Mapping, dict[str, EntitySchema]]], pulled: PullResult) -> dict[str, str]:
    """mapping -> why it is left alone, for each mapping a side of which the pull did not read."""
    read = {f"{e.system}:{e.entity}" for e in pulled.entities if e.status != "failed"}
    why = {f"{e.system}:{e.entity}": e.message or e.status for e in pulled.entities if e.status == "failed"}
    why_system = {target.split(":", 1)[0]: reason for target, reason in why.items()}  # a refused login ends
    out: dict[str, str] = {}                                                         # the system's pull
    for mapping, _ in prepared:
        for side in SIDES:
            ref = mapping.side(side)
            if str(ref) not in read and mapping.name not in out:
                reason = (why.get(str(ref)) or why_system.get(ref.system)
                          or ("the run was stopped first" if pulled.stopped else "not pulled"))
                out[mapping.name] = (f"mapping {mapping.name}: nothing was written, because {ref} could not "
                                     f"be read ({reason})")
    return out
