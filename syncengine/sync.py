"""``run_sync``: pull both sides of the mappings, settle interrupted writes, plan, apply.

Used by ``syncengine sync``, and meant for the daemon and ``migrate``: one call, one result.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .config import Config
from .mapping import SIDES, load_mappings, prepare
from .mirror import Mirror
from .plan import Plan, make_plan
from .pull import PullResult, pull
from .push import DEFAULT_WORKERS, ApplyResult, Pusher, apply_plan, holding


@dataclass
class SyncResult:
    pull: PullResult | None
    plan: Plan
    apply: ApplyResult | None = None
    recovered: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.pull is None or self.pull.ok) and (self.apply is None or self.apply.ok)

    @property
    def written(self) -> dict[str, dict[str, int]]:
        """``{system: {op: n}}`` of the writes made (the daemon's metrics read it)."""
        out: dict[str, dict[str, int]] = {}
        for (target, op), n in (self.apply.done.items() if self.apply else ()):
            system = target.split(":", 1)[0]
            out.setdefault(system, {})[op] = out.get(system, {}).get(op, 0) + n
        return out

    @property
    def requests(self) -> dict[str, int]:
        total: dict[str, int] = dict(self.pull.requests) if self.pull else {}
        for system, n in (self.apply.requests.items() if self.apply else ()):
            total[system] = total.get(system, 0) + n
        return total


def run_sync(config: Config, names: Iterable[str] | None = None, *, mirror: Mirror | None = None,
             job: str | None = None, workers: int = DEFAULT_WORKERS, full: bool = False,
             dry_run: bool = False, pull_first: bool = True,
             should_stop: Callable[[], bool] | None = None) -> SyncResult:
    """Sync the named mappings (default: all): pull + plan + apply (``dry_run``: no apply).

    ``should_stop`` (the daemon's SIGTERM) is asked before each write; writes not started are
    left for the next run."""
    load_mappings(config, names)  # what the files alone show is wrong is refused before the mirror is created
    mirror = mirror or Mirror(config.mirror_url)
    prepared = prepare(config, names, mirror)  # then each field against both sides' describe
    pulled = None
    if pull_first:
        targets = sorted({str(m.side(s)) for m, _ in prepared for s in SIDES})
        pulled = pull(config, targets, full=full, mirror=mirror, job=job)
        prepared = prepare(config, names, mirror)  # the pull may have described a changed entity again
    if dry_run:
        plan = make_plan(mirror, prepared)
        return SyncResult(pull=pulled, plan=plan, recovered=0, notes=list(plan.notes))
    with holding(mirror, [m.name for m, _ in prepared]):
        pusher = Pusher(config, mirror, prepared, workers=workers)
        try:  # writes an interrupted run left unconfirmed: adopt or abandon them first
            recovered = pusher.recover()
        finally:
            pusher.close()
        plan = make_plan(mirror, prepared)
        result = SyncResult(pull=pulled, plan=plan, recovered=recovered, notes=list(plan.notes))
        result.apply = apply_plan(config, plan, mirror=mirror, workers=workers, job=job, check=False,
                                  prepared=prepared, should_stop=should_stop, locked=True)
    return result
