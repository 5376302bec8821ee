"""``syncengine migrate``: a one-off, one-way copy of a whole entity to another CRM.

A migration is a sync that only flows one way: the mapping that pairs the two entities (and the
mappings it references — accounts before contacts before deals) is turned one-way, deletions are
ignored, and the sync engine does the rest. So an interrupted migration resumes without
duplicates for the same reasons a sync does: every write goes through the outbox before its API
call, a create whose outcome is unknown is looked up on the target (``match_on``) before it is
tried again, and a record already copied is linked and not copied twice. Run the same command
again to resume.

The report lists every source record with what happened to it (copied, updated, matched to an
existing target record, skipped because it is already there, failed with the reason).
"""
from __future__ import annotations

import csv
import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from .config import Config
from .errors import UsageError
from .jsonutil import dumpb
from .mapping import SIDES, Mapping, load_mappings, mapping_files, other, prepare_mirror, validate
from .mapping.spec import SideRef
from .mirror import Mirror
from .mirror.models import LinkRow, OutboxRow
from .plan import Plan, make_plan
from .pull import Progress, pull
from .push import DEFAULT_WORKERS, Pusher, apply_plan

WriteProgress = Callable[[str, int, int], None]  # (target, writes finished, writes planned)

OUTCOMES = ("copied", "updated", "matched", "skipped", "failed", "pending")


@dataclass
class RecordOutcome:
    mapping: str
    source_id: str
    target_id: str | None
    outcome: str                 # one of OUTCOMES (with --dry-run: what would happen)
    reason: str = ""


@dataclass
class MigrationReport:
    source: str
    target: str
    mappings: list[str]
    dry_run: bool
    run_id: int | None = None
    records: list[RecordOutcome] = field(default_factory=list)
    in_target: dict[str, int] = field(default_factory=dict)   # mapping -> source records linked now
    in_source: dict[str, int] = field(default_factory=dict)   # mapping -> live source records
    recovered: int = 0
    stopped: bool = False
    seconds: float = 0.0

    def totals(self, mapping: str | None = None) -> dict[str, int]:
        counts = dict.fromkeys(OUTCOMES, 0)
        for r in self.records:
            if mapping is None or r.mapping == mapping:
                counts[r.outcome] += 1
        return counts

    @property
    def ok(self) -> bool:
        return not self.stopped and not any(r.outcome in ("failed", "pending") for r in self.records)

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "dry_run": self.dry_run, "run": self.run_id,
                "ok": self.ok, "stopped": self.stopped, "seconds": round(self.seconds, 3),
                "recovered": self.recovered,
                "mappings": [{"mapping": m, "source_records": self.in_source.get(m, 0),
                              "in_target": self.in_target.get(m, 0), **self.totals(m)} for m in self.mappings],
                "failed": [dataclasses.asdict(r) for r in self.records if r.outcome in ("failed", "pending")]}

    def write(self, stem: Path) -> tuple[Path, Path]:
        """``STEM.csv`` (one row per source record) and ``STEM.json`` (summary and failures)."""
        stem.parent.mkdir(parents=True, exist_ok=True)
        csv_path, json_path = stem.with_name(stem.name + ".csv"), stem.with_name(stem.name + ".json")
        with open(csv_path, "w", newline="", encoding="utf-8") as handle:
            out = csv.writer(handle)
            out.writerow(["mapping", "source_id", "target_id", "outcome", "reason"])
            for r in self.records:
                out.writerow([r.mapping, r.source_id, r.target_id or "", r.outcome, r.reason])
        json_path.write_bytes(dumpb(self.as_dict(), indent=True))
        return csv_path, json_path


def parse_side(config: Config, text: str, option: str) -> SideRef:
    system, _, entity = text.partition(":")
    if not system or not entity:
        raise UsageError(f"{option} {text!r}: write SYSTEM:ENTITY, e.g. vt:Contacts")
    config.system(system)
    return SideRef(system, entity)


def find_mapping(config: Config, source: SideRef, target: SideRef,
                 mapping_file: str | None = None) -> tuple[Config, str]:
    """The config whose mappings folder holds the mapping, and the mapping's name."""
    if mapping_file:
        path = Path(mapping_file)
        if not path.is_file():
            raise UsageError(f"--mapping {mapping_file}: no such file")
        config = dataclasses.replace(config, mappings_dir=path.resolve().parent)
        return config, path.stem
    pair = {str(source), str(target)}
    found = [name for name, mapping in load_mappings(config).items()
             if {str(mapping.left), str(mapping.right)} == pair] if mapping_files(config) else []
    if not found:
        raise UsageError(f"no mapping in {config.mappings_dir} pairs {source} with {target}; write one "
                         f"(see mappings/contacts.toml) or pass --mapping FILE")
    if len(found) > 1:
        raise UsageError(f"mappings {', '.join(found)} all pair {source} with {target}; choose one with --mapping")
    return config, found[0]


def one_way(mapping: Mapping, source_system: str) -> str:
    """Make MAPPING copy from the side on SOURCE_SYSTEM to the other, and never delete; returns that side."""
    source = next((s for s in SIDES if mapping.side(s).system == source_system), None)
    if source is None:
        raise UsageError(f"mapping {mapping.name} ({mapping.left} ↔ {mapping.right}) has no side on "
                         f"{source_system}; a migration copies every mapping it needs from one system")
    target = other(source)
    if not mapping.creates_on(target):
        raise UsageError(f"mapping {mapping.name} flows {mapping.direction} only, never into "
                         f"{mapping.side(target)}; migrate the other way or change its direction")
    mapping.direction = f"{source}-to-{target}"
    mapping.on_delete = "ignore"
    mapping.fields = {name: fm for name, fm in mapping.fields.items() if target in fm.paths}
    for fm in mapping.fields.values():
        fm.direction = mapping.direction
    return source


def migrate(config: Config, source: SideRef, target: SideRef, *, mapping_file: str | None = None,
            dry_run: bool = False, workers: int = DEFAULT_WORKERS, mirror: Mirror | None = None,
            read_progress: Progress | None = None, write_progress: WriteProgress | None = None,
            should_stop: Callable[[], bool] | None = None) -> MigrationReport:
    """Copy SOURCE to TARGET (and what it references) one way; safe to run again to resume."""
    started = time.monotonic()
    config, name = find_mapping(config, source, target, mapping_file)
    prepared, mirror = prepare_mirror(config, [name], mirror)  # a refused mapping makes no mirror
    sources: dict[str, str] = {}
    for mapping, schemas in prepared:
        sources[mapping.name] = one_way(mapping, source.system)
        validate(mapping, schemas)
    report = MigrationReport(str(source), str(target), [m.name for m, _ in prepared], dry_run)
    report.run_id = mirror.start_run("migrate", f"{source} -> {target}")
    error: str | None = None
    try:
        sides = sorted({str(m.side(s)) for m, _ in prepared for s in SIDES})
        pulled = pull(config, sides, mirror=mirror, progress=read_progress, should_stop=should_stop)
        failed = [f"{e.system}:{e.entity}: {e.message}" for e in pulled.entities if e.status == "failed"]
        if failed:
            raise UsageError(f"cannot read {'; '.join(failed)}; nothing was copied")
        if pulled.stopped or (should_stop and should_stop()):
            report.stopped = True
            return report
        linked_before = {m.name: _linked(mirror, m.name, sources[m.name]) for m, _ in prepared}
        if not dry_run:
            pusher = Pusher(config, mirror, prepared, workers=workers)
            try:
                report.recovered = pusher.recover()
            finally:
                pusher.close()
        for mapping, schemas in prepared:  # one at a time: a contact's account is linked before it is planned
            plan = make_plan(mirror, [(mapping, schemas)])
            states: dict[str, tuple[str, str | None]] = {}
            if not dry_run and plan.writes() and not report.stopped:
                label = str(mapping.side(other(sources[mapping.name])))
                with _watch_outbox(mirror, plan, label, write_progress):
                    result = apply_plan(config, plan, mirror=mirror, workers=workers, check=False,
                                        prepared=prepared, should_stop=should_stop)
                report.stopped = result.skipped > 0 and bool(should_stop and should_stop())
                states = _outbox_states(mirror, plan.id)
            _outcomes(report, mirror, mapping, sources[mapping.name], plan, states, linked_before[mapping.name])
    except BaseException as exc:
        error = str(exc) or type(exc).__name__
        raise
    finally:
        report.seconds = time.monotonic() - started
        mirror.finish_run(report.run_id, "failed" if error else "stopped" if report.stopped else
                          "ok" if report.ok else "warning",
                          {"seconds": round(report.seconds, 3), "dry_run": dry_run,
                           "mappings": report.as_dict()["mappings"]}, error)
    return report


def _linked(mirror: Mirror, mapping: str, source: str) -> dict[str, str]:
    """{source id: target id} of the mapping's active links."""
    with mirror.engine.connect() as conn:
        rows = conn.execute(sa.select(LinkRow.left_id, LinkRow.right_id).where(
            LinkRow.mapping == mapping, LinkRow.state == "active")).all()
    return {(left if source == "left" else right): (right if source == "left" else left) for left, right in rows}


def _outbox_states(mirror: Mirror, plan_id: str) -> dict[str, tuple[str, str | None]]:
    with mirror.engine.connect() as conn:
        return {key: (state, error) for key, state, error in conn.execute(
            sa.select(OutboxRow.key, OutboxRow.state, OutboxRow.error).where(OutboxRow.plan_id == plan_id))}


class _watch_outbox:
    """Report the plan's finished writes to WRITE_PROGRESS from a thread while it is applied."""

    def __init__(self, mirror: Mirror, plan: Plan, label: str, callback: WriteProgress | None):
        self.mirror, self.plan, self.label, self.callback = mirror, plan, label, callback
        self.total = len(plan.writes())
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True, name="migrate-progress")

    def __enter__(self) -> _watch_outbox:
        if self.callback:
            self.callback(self.label, 0, self.total)
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        if self.callback:
            self.thread.join()
            self._report()

    def _poll(self) -> None:
        while not self.done.wait(0.25):
            self._report()

    def _report(self) -> None:
        if self.callback is None:
            return
        with self.mirror.engine.connect() as conn:
            finished = conn.execute(sa.select(sa.func.count()).select_from(OutboxRow).where(
                OutboxRow.plan_id == self.plan.id, OutboxRow.state.in_(("done", "failed")))).scalar_one()
        self.callback(self.label, finished, self.total)


def _outcomes(report: MigrationReport, mirror: Mirror, mapping: Mapping, source: str, plan: Plan,
              states: dict[str, tuple[str, str | None]], linked_before: dict[str, str]) -> None:
    """One RecordOutcome per live source record of MAPPING."""
    target = other(source)
    ref = mapping.side(source)
    live = sorted(mirror.live_ids(ref.system, ref.entity), key=_natural)
    linked_now = _linked(mirror, mapping.name, source) if not report.dry_run else linked_before
    report.in_source[mapping.name] = len(live)
    report.in_target[mapping.name] = sum(1 for rid in live if rid in linked_now)
    actions: dict[str, list[Any]] = {}
    for action in plan.actions:
        if action.mapping == mapping.name:
            rid = getattr(action, f"{source}_id")
            if rid is not None:
                actions.setdefault(str(rid), []).append(action)
    issues = {i.remote_id: i for i in plan.issues if i.mapping == mapping.name and i.side == source}
    for rid in live:
        outcome, reason = "skipped", "already in the target"
        ops = {a.op: a for a in actions.get(rid, []) if a.op in ("create", "update", "link")}
        write = ops.get("create") or (ops.get("update") if ops.get("update") and ops["update"].side == target
                                      else None)
        if rid in issues:
            outcome, reason = "failed", f"{issues[rid].kind}: {issues[rid].error}"
        elif write is not None:
            outcome = "copied" if write.op == "create" else "updated"
            if "link" in ops and write.op == "update":
                outcome = "matched"
            reason = "" if write.op == "create" else "changed: " + ", ".join(sorted(write.changes))
            if report.dry_run:
                reason = f"would be {outcome}" + (f" ({reason})" if reason else "")
            else:
                state, error = states.get(write.key, ("pending", None))
                if state == "failed":
                    outcome, reason = "failed", error or "refused by the target"
                elif state != "done":
                    outcome, reason = "pending", "not written yet (interrupted); run the migration again"
        elif "link" in ops and rid not in linked_before:
            outcome, reason = "matched", f"matched an existing {mapping.side(target)} record on " \
                                         f"{', '.join(mapping.match_on)}"
        elif rid in linked_now and rid not in linked_before:
            outcome, reason = "copied", "written by an interrupted run, found on the target and adopted"
        elif rid not in linked_now:
            outcome, reason = "pending", "waits for an unconfirmed earlier write; run the migration again"
        report.records.append(RecordOutcome(mapping.name, rid, linked_now.get(rid), outcome, reason))


def _natural(remote_id: str) -> tuple[int, str]:
    digits = "".join(ch for ch in remote_id.rpartition("x")[2] if ch.isdigit())
    return (int(digits) if digits else 0, remote_id)
