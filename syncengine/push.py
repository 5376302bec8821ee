"""Push: carry out a plan through the connectors, crash-safely, never over an edit it has not seen.

Every write goes through the ``outbox``: all of a plan's writes are recorded (``pending``) before
the first API call, each is marked ``sent`` just before its call and ``done`` after it, together
with the returned record (written to the mirror through the normal writer, so the next pull of
our own write is a no-op) and the link's new shadow. A crash leaves at most the in-flight writes
``sent``; the next apply finds out whether each happened — a create by looking the record up on
the target (``connector.search`` on the ``match_on`` values, else the mirror after a pull) — and
never creates it twice, and adopts a found record only when it carries what that create wrote.
Updates are idempotent and deletes treat "already gone" as done.

Right before each update or delete its target record is read again by id (none of the CRMs has
a conditional write, so the check cannot travel with the write; one read per write keeps the gap
to a round trip): if a field the update writes (a delete: any synced field) no longer holds what
the plan saw, the write is not sent (``stale``), the fresh record goes to the mirror and ``sync``
plans it again.

After a write, what the target *returned* is compared with what was sent: a field it stored
differently (cut, rounded) becomes that side's base on the link, reported once as a notice, and
is never sent back.

Writes to one system run on a small thread pool; the system's ``RequestBudget`` (``rate_limit``)
paces them. A write the CRM refuses is ``failed``, its record *parked* with the error, and the
next sync plans it again.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import sqlalchemy as sa

from . import jsonutil
from .config import Config
from .connectors import Connector, connect
from .errors import ConnectorError, TransientError, Unsupported, UsageError
from .mapping import Mapping, Pending, TranslationError, Translator, other, prepare
from .mirror import EntityOptions, EntityWriter, Locks, Mirror
from .mirror.models import ConflictRow, LinkRow, OutboxRow, ParkedRow, RecordRow, utcnow
from .mirror.provenance import forget, origin_times, record_written
from .parked import ignored_records
from .plan import Action, Plan, fingerprint, ref_resolver
from .pull import pull
from .types import EntitySchema

log = logging.getLogger("syncengine.push")

DEFAULT_WORKERS = 4
WriteProgress = Callable[[str, int, int], None]  # (system:entity, writes finished, writes planned)
ORIGIN_CHUNK = 500  # source records read per query for the origins of a plan's writes
OUT = cast(sa.Table, OutboxRow.__table__)
L = cast(sa.Table, LinkRow.__table__)


@dataclass
class ApplyResult:
    run_id: int
    plan_id: str
    done: Counter = field(default_factory=Counter)      # ("vt:Contacts", "create") -> n
    failed: list[dict[str, Any]] = field(default_factory=list)
    stale: list[dict[str, Any]] = field(default_factory=list)   # not sent: the target changed since the plan
    notices: list[str] = field(default_factory=list)            # lossy fields: stored other than sent
    recovered: int = 0
    skipped: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def writes(self) -> int:
        return sum(self.done.values())

    @property
    def ok(self) -> bool:
        return not self.failed and not self.stale

    def absorb(self, later: ApplyResult) -> None:
        """Fold in the apply of a re-plan: its writes add up, its stale writes replace ours."""
        self.done.update(later.done)
        self.failed += later.failed
        self.stale = later.stale
        self.notices += later.notices
        self.recovered += later.recovered
        self.skipped += later.skipped
        for system, n in later.requests.items():
            self.requests[system] = self.requests.get(system, 0) + n
        self.seconds += later.seconds

    def as_dict(self) -> dict[str, Any]:
        writes: dict[str, dict[str, int]] = {}
        for (target, op), n in sorted(self.done.items()):
            writes.setdefault(target, {})[op] = n
        return {"run": self.run_id, "plan": self.plan_id, "writes": writes, "failed": self.failed,
                "stale": self.stale, "notices": self.notices, "recovered": self.recovered,
                "skipped": self.skipped, "requests": self.requests, "seconds": round(self.seconds, 3)}


class Pusher:
    """Connectors, writers and translators shared by the threads of one apply, recovery or undo."""

    def __init__(self, config: Config, mirror: Mirror, prepared: list[tuple[Mapping, dict[str, EntitySchema]]],
                 *, workers: int = DEFAULT_WORKERS):
        self.config = config
        self.mirror = mirror
        self.workers = max(1, workers)
        self.lock = threading.RLock()   # one bookkeeping transaction at a time
        self.mappings: dict[str, Mapping] = {}
        self.schemas: dict[str, dict[str, EntitySchema]] = {}
        self.connectors: dict[str, Connector] = {}
        self.writers: dict[tuple[str, str], EntityWriter] = {}
        self.translators: dict[str, Translator] = {}
        self.refreshed: set[str] = set()   # targets pulled by this recovery
        self.should_stop: Callable[[], bool] | None = None
        self.saved_plan = False  # a plan from a file may be old: a create first looks for its match key
        for mapping, schemas in prepared:
            self._add(mapping, schemas)

    def _add(self, mapping: Mapping, schemas: dict[str, EntitySchema]) -> None:
        self.mappings[mapping.name] = mapping
        self.schemas[mapping.name] = schemas

    def mapping(self, name: str) -> Mapping:
        if name not in self.mappings:
            for mapping, schemas in prepare(self.config, [name], self.mirror):
                self._add(mapping, schemas)
        return self.mappings[name]

    def translator(self, name: str, *, fresh: bool = False) -> Translator:
        """The mapping's translator; ``fresh``: with the links as they are now (recovery, undo)."""
        if not fresh and name in self.translators:  # no lock: a write's compare never waits for bookkeeping
            return self.translators[name]
        mapping = self.mapping(name)
        with self.lock:
            if fresh or name not in self.translators:
                refs = ref_resolver(self.mirror, mapping.refs)
                self.translators[name] = Translator(mapping, self.schemas[name], refs)
            return self.translators[name]

    def connector(self, system: str) -> Connector:
        with self.lock:
            if system not in self.connectors:
                self.connectors[system] = connect(system, self.config.system(system))
            return self.connectors[system]

    def writer(self, mapping: str, side: str) -> EntityWriter:
        ref = self.mapping(mapping).side(side)
        with self.lock:
            key = (ref.system, ref.entity)
            if key not in self.writers:
                options = EntityOptions.from_settings(self.config.system(ref.system), ref.entity)
                self.writers[key] = self.mirror.writer(ref.system, self.schemas[mapping][side], options)
            return self.writers[key]

    def requests(self) -> dict[str, int]:
        return {name: c.http.total_requests for name, c in self.connectors.items()}

    def close(self) -> None:
        for connector in self.connectors.values():
            connector.close()

    # -- one write -------------------------------------------------------------------------
    def execute(self, row: dict[str, Any], result: ApplyResult) -> None:
        """Mark SENT, call the API, record the outcome; a refusal parks the record. An update first
        re-reads its target by id, right before its own write: if the target changed since the plan,
        it is not sent."""
        op, system, entity = row["op"], row["system"], row["entity"]
        if self.should_stop is not None and self.should_stop():
            with self.lock:
                result.skipped += 1  # left pending: the next run's plan supersedes it
            return
        if op == "create" and self._source_linked(row):
            self._set_state(row["id"], "abandoned", error="its source was linked meanwhile")
            with self.lock:
                result.skipped += 1
            return
        try:
            entered = op == "create" and self.saved_plan and self._entered_since_plan(row)
        except ConnectorError as exc:
            self.failed(row, exc, result)
            return
        if entered:
            self._set_state(row["id"], "abandoned", error="the target holds a record with its match key since "
                                                          "the plan; the next plan matches it")
            with self.lock:
                result.skipped += 1
            return
        self._set_state(row["id"], "sent", attempts=row["attempts"] + 1)
        connector = self.connector(system)
        payload = jsonutil.loads(row["payload"])
        try:
            if op == "update":
                record = self._update_if_unchanged(row, payload, result)
                if record is None:
                    return
            elif op == "create":
                record = connector.create(entity, payload)
            else:
                if not self._delete_if_unchanged(row, result):
                    return
                record = None
        except TransientError as exc:
            if op == "create":  # it may have happened: stays SENT, the next run looks it up first
                self.failed(row, exc, result, state="sent")
            else:
                self.failed(row, exc, result)
            return
        except ConnectorError as exc:
            self.failed(row, exc, result)
            return
        notices = self.done(row, record)
        with self.lock:
            result.done[(f"{system}:{entity}", op)] += 1
            result.notices += notices

    def _update_if_unchanged(self, row: dict[str, Any], payload: dict[str, Any],
                             result: ApplyResult) -> dict[str, Any] | None:
        """Re-read the target by id and write it only if the fields written still hold what the plan
        saw; None: not sent (``stale``). No CRM here has a conditional write, so the read is made
        as late as can be: it and the write take consecutive slots of the system's request budget,
        and only the compare lies between its answer and the write."""
        connector = self.connector(row["system"])
        with connector.http.budget.back_to_back(2):
            found = connector.fetch(row["entity"], [row["remote_id"]])
            current = found[0] if found else None
            changed = self._changed_since_plan(row, current)
            if not changed:
                return connector.update(row["entity"], row["remote_id"], payload)
        self._stale(row, current, changed, result)
        return None

    def _delete_if_unchanged(self, row: dict[str, Any], result: ApplyResult) -> bool:
        """Re-read the record and delete it only if its synced fields still hold what the plan saw
        (False: not sent, ``stale``): an edit made since is an edit-vs-delete for the next plan."""
        connector = self.connector(row["system"])
        with connector.http.budget.back_to_back(2):
            found = connector.fetch(row["entity"], [row["remote_id"]])
            changed = self._edited_since_plan(row, found[0]) if found else None
            if not changed:
                connector.delete(row["entity"], row["remote_id"])  # one already gone counts as deleted
                return True
        self._stale(row, found[0], changed, result)
        return False

    def _edited_since_plan(self, row: dict[str, Any], record: dict[str, Any]) -> str | None:
        """How the synced fields of the record a delete would remove differ from what the plan saw."""
        before = jsonutil.loads(row["before"] or "{}")
        if not before:
            return None  # planned by an older version: the record as it was is not kept
        tr = self.translator(row["mapping"])
        try:
            then, now = tr.canonical(row["side"], before), tr.canonical(row["side"], record)
        except TranslationError as exc:
            return str(exc)
        return "; ".join(f"{fm.name} is now {jsonutil.dumps(now.get(fm.name))} (the plan saw "
                         f"{jsonutil.dumps(then.get(fm.name))})" for fm in self.mapping(row["mapping"]).synced_fields
                         if now.get(fm.name) != then.get(fm.name)
                         and not isinstance(now.get(fm.name), Pending)
                         and not isinstance(then.get(fm.name), Pending)) or None

    def _changed_since_plan(self, row: dict[str, Any], record: dict[str, Any] | None) -> str | None:
        """How the target's current values of the fields written differ from what the plan saw."""
        if record is None:
            return "the record is gone"
        if not row["expected"]:
            return None  # written by an older version: no expectation kept
        expected = jsonutil.loads(row["expected"])
        try:
            now = self.translator(row["mapping"]).canonical(row["side"], record)
        except TranslationError as exc:
            return str(exc)
        differ = [f"{name} is now {jsonutil.dumps(now.get(name))} (the plan saw {jsonutil.dumps(value)})"
                  for name, value in expected.items() if now.get(name) != value]
        before = jsonutil.loads(row["before"] or "{}")  # a list is rewritten whole: its other elements too
        differ += [f"{key} is now {jsonutil.dumps(record.get(key))}" for key, value in before.items()
                   if isinstance(value, list) and record.get(key) != value]
        return "; ".join(differ) or None

    def _stale(self, row: dict[str, Any], record: dict[str, Any] | None, changed: str, result: ApplyResult) -> None:
        """Not sent: the mirror takes what the target holds now, so the next plan starts from it."""
        what = f"{row['op']} of {row['system']}:{row['entity']} {row['remote_id']}"
        message = f"{what} not sent, changed since the plan: {changed}"
        log.warning("%s", message)
        writer = self.writer(row["mapping"], row["side"])
        with self.lock:
            if record is not None:
                writer.apply([record])
            else:
                writer.apply([], [row["remote_id"]])
            result.stale.append({"key": row["key"], "error": message})
        self._set_state(row["id"], "stale", error=message)

    def _stored(self, row: dict[str, Any], record: dict[str, Any], settles: dict[str, Any]) -> dict[str, Any]:
        """The canonical values the target holds of the fields written, as its answer shows them."""
        mapping, side = self.mapping(row["mapping"]), row["side"]
        try:
            canon = self.translator(row["mapping"]).canonical(side, record)
        except TranslationError:
            return {}
        out = {}
        for name in settles:
            fm = mapping.fields[name]
            path = fm.paths.get(side)
            carried = fm.source == side if fm.template is not None and path is None else \
                path is not None and path.key in record
            if carried and name in canon and not isinstance(canon[name], Pending):
                out[name] = canon[name]
        return out

    def _provenance(self, row: dict[str, Any], record: dict[str, Any]) -> dict[str, tuple[Any, dict[str, Any]]]:
        """``{path: (value the target stored, origin)}`` of the fields the row wrote (a field the
        mapping no longer has since the plan is left out)."""
        fields = self.mapping(row["mapping"]).fields
        origins = jsonutil.loads(row["origins"]) if row.get("origins") else {}
        return {str(path): (path.get(record), origin) for name, origin in origins.items()
                if name in fields and (path := fields[name].paths.get(row["side"])) is not None}

    def done(self, row: dict[str, Any], record: dict[str, Any] | None) -> list[str]:
        """The write happened: mirror the returned record, move the link's shadow and the written
        side's base, close the row. Returns the notices of fields stored other than sent."""
        op, mapping, side = row["op"], row["mapping"], row["side"]
        settles = jsonutil.loads(row["settles"])
        stored = self._stored(row, record, settles) if record is not None else {}
        writer = self.writer(mapping, side)
        now = utcnow()
        with self.lock:
            if record is not None:
                writer.apply([record])
            elif op == "delete":
                writer.apply([], [row["remote_id"]])
            remote_id = str(record["id"]) if record is not None else row["remote_id"]
            ids = {"left": row["left_id"], "right": row["right_id"]}
            ids[side] = remote_id
            shadow_before = None
            lossy = {name: value for name, value in stored.items() if value != settles[name]}
            notices = [f"{mapping}: {row['system']}:{row['entity']} {remote_id} stored {name} as "
                       f"{jsonutil.dumps(value)}, not the {jsonutil.dumps(settles[name])} it was sent; kept as "
                       "that side's base and not sent back" for name, value in lossy.items()]
            with self.mirror.engine.begin() as conn:
                link = find_link(conn, mapping, ids["left"], ids["right"])
                if op == "create" and link is None:
                    conn.execute(sa.insert(L).values(mapping=mapping, left_id=ids["left"], right_id=ids["right"],
                                                     state="active", shadow=jsonutil.dumps(settles),
                                                     bases=settled_bases(None, settles, {side: lossy}),
                                                     created_at=now, updated_at=now))
                elif link is not None:
                    shadow_before = link.shadow
                    values: dict[str, Any] = {"updated_at": now}
                    if op == "delete":
                        values["state"] = "deleted"
                    else:
                        values["shadow"] = jsonutil.dumps({**jsonutil.loads(link.shadow), **settles})
                        values["bases"] = settled_bases(link.bases, settles, {side: lossy})
                    conn.execute(sa.update(L).where(L.c.id == link.id).values(**values))
                if op == "delete":
                    forget(conn, row["system"], row["entity"], remote_id)
                elif record is not None:
                    record_written(conn, row["system"], row["entity"], remote_id, self._provenance(row, record),
                                   mapping=mapping, run_id=row["run_id"], now=now)
                conn.execute(sa.update(OUT).where(OUT.c.key == row["key"], OUT.c.state == "failed").values(
                    state="retried", updated_at=now))
                conn.execute(sa.update(OUT).where(OUT.c.id == row["id"]).values(
                    state="done", remote_id=remote_id, left_id=ids["left"], right_id=ids["right"],
                    shadow_before=shadow_before, stored=jsonutil.dumps(stored) if stored else None, error=None,
                    updated_at=now))
                conn.execute(sa.delete(ParkedRow).where(
                    ParkedRow.mapping == mapping,
                    sa.or_(sa.and_(ParkedRow.side == side, ParkedRow.remote_id == remote_id),
                           sa.and_(ParkedRow.side == other(side), ParkedRow.remote_id == ids[other(side)]))))
        for notice in notices:
            log.warning("%s", notice)
        return notices

    def failed(self, row: dict[str, Any], exc: ConnectorError, result: ApplyResult, *,
               state: str = "failed") -> None:
        """Park the record with its error; ``state="sent"`` when the write may have happened."""
        what = f"{row['op']} of {row['system']}:{row['entity']} {row['remote_id'] or ''}".strip()
        message = f"{what}: {exc}" + ("; whether it happened is checked on the next run" if state == "sent" else "")
        log.warning("%s", message)
        self._set_state(row["id"], state, error=str(exc))
        side = row["side"] if row["op"] != "create" else other(row["side"])
        rid = row["remote_id"] if row["op"] != "create" else row[f"{side}_id"]
        with self.lock:
            with self.mirror.engine.begin() as conn:
                park(conn, row["mapping"], side, rid, "write", message)
            result.failed.append({"key": row["key"], "error": message})

    def _set_state(self, row_id: int, state: str, **values: Any) -> None:
        with self.lock, self.mirror.engine.begin() as conn:
            conn.execute(sa.update(OUT).where(OUT.c.id == row_id).values(state=state, updated_at=utcnow(), **values))

    def _entered_since_plan(self, row: dict[str, Any]) -> bool:
        """Does the target hold an unlinked record with the create's match key (entered by hand after
        the plan)? Creating would make a duplicate. One search per create of a saved plan with match_on."""
        match = jsonutil.loads(row["match"]) if row["match"] else None
        if not match or match.get("external"):
            return False
        side = row["side"]
        ref = self.mapping(row["mapping"]).side(side)
        try:
            candidates = self.connector(ref.system).search(ref.entity, match["criteria"])
        except Unsupported:
            return False
        tr = self.translator(row["mapping"], fresh=True)
        column = L.c.left_id if side == "left" else L.c.right_id
        with self.mirror.engine.connect() as conn:
            linked = set(conn.execute(sa.select(column).where(L.c.mapping == row["mapping"])).scalars())
        return any(str(c["id"]) not in linked and list(tr.match_key(tr.canonical(side, c)) or ()) == match["key"]
                   for c in candidates)

    def _source_linked(self, row: dict[str, Any]) -> bool:
        source = other(row["side"])
        column = L.c.left_id if source == "left" else L.c.right_id
        with self.mirror.engine.connect() as conn:
            return conn.execute(sa.select(L.c.id).where(L.c.mapping == row["mapping"], L.c.state == "active",
                                                        column == row[f"{source}_id"])).first() is not None

    # -- recovery --------------------------------------------------------------------------
    def recover(self, plan_id: str | None = None) -> int:
        """Settle writes an interrupted run left ``sent``; returns how many turned out to be done.

        A create that happened is adopted (linked, mirrored); one that did not is retried when it
        belongs to PLAN_ID (a resumed plan) and abandoned otherwise (the next plan makes it again).
        Pending rows of other plans are abandoned: a newer plan supersedes them.
        """
        with self.mirror.engine.connect() as conn:  # our mappings only: their sync locks are ours
            rows = [dict(r._mapping) for r in conn.execute(sa.select(OUT).where(
                OUT.c.state.in_(("sent", "pending")), OUT.c.plan_id != (plan_id or ""),
                OUT.c.mapping.in_(list(self.mappings))).order_by(OUT.c.id))]
            if plan_id:
                rows += [dict(r._mapping) for r in conn.execute(sa.select(OUT).where(
                    OUT.c.state == "sent", OUT.c.plan_id == plan_id).order_by(OUT.c.id))]
        adopted = 0
        for row in rows:
            mine = row["plan_id"] == plan_id
            if row["state"] == "sent" and row["op"] == "create":
                try:
                    found = self.find_created(row)
                except (ConnectorError, UsageError, TranslationError) as exc:
                    log.warning("cannot check whether %s happened: %s", row["key"], exc)
                    continue  # stays sent; checked again next time
                if found is not None:
                    self.done(row, found)
                    adopted += 1
                    continue
            self._set_state(row["id"], "pending" if mine else "abandoned",
                            error=None if mine else "superseded by a later plan")
        return adopted

    def find_created(self, row: dict[str, Any]) -> dict[str, Any] | None:
        """The record a ``sent`` create made, if it exists: searched on the CRM by match_on, else
        read from the mirror once a pull has refreshed it. Only a record carrying every value the
        create wrote is ours: another with the same key is someone else's."""
        mapping, side = row["mapping"], row["side"]
        tr = self.translator(mapping, fresh=True)
        ref = self.mapping(mapping).side(side)
        match = jsonutil.loads(row["match"]) if row["match"] else None
        settles = jsonutil.loads(row["settles"])
        candidates: Iterable[dict[str, Any]] | None = None
        if match:
            try:
                candidates = self.connector(ref.system).search(ref.entity, match["criteria"])
            except Unsupported as exc:  # a failed search raises: the row stays sent, asked again next run
                log.info("%s cannot search (%s); looking in the mirror", ref, exc)
        if candidates is None:
            self._refresh(str(ref))
            candidates = self.mirror.records(ref.system, ref.entity).values()
        column = L.c.left_id if side == "left" else L.c.right_id
        with self.mirror.engine.connect() as conn:
            linked = set(conn.execute(sa.select(column).where(L.c.mapping == mapping, L.c.state == "active")).scalars())
            cut = {name for bases in conn.execute(sa.select(L.c.bases).where(
                L.c.mapping == mapping, L.c.bases.is_not(None))).scalars()
                for name in jsonutil.loads(bases).get(side, {})}  # fields this side is known to store shorter
        for candidate in sorted(candidates, key=lambda r: str(r["id"])):
            if str(candidate["id"]) in linked:
                continue
            if match and match.get("external"):  # stamped with its source on create: ours or not
                if str(candidate.get(match["external"])) == match["criteria"][match["external"]]:
                    return candidate
                continue
            if match and list(tr.match_key(tr.canonical(side, candidate)) or ()) != match["key"]:
                continue
            held = self._stored(row, candidate, settles)
            if held and all(_may_hold(settles[name], value, cut=name in cut) for name, value in held.items()):
                return candidate
        return None

    def _refresh(self, target: str) -> None:
        """Pull TARGET before its mirror answers "was it created?" (a plan's records may be old);
        once per recovery. A failed pull raises: the create stays ``sent``, checked next run."""
        if target in self.refreshed:
            return
        result = pull(self.config, [target], mirror=self.mirror)
        if not result.ok:
            raise TransientError(f"{target} could not be read to check an unconfirmed create")
        self.refreshed.add(target)


# -- apply ---------------------------------------------------------------------------------

@contextmanager
def holding(mirror: Mirror, names: Iterable[str]) -> Iterator[None]:
    """The sync lock of each mapping, so two processes never write one mapping's records at once
    (sorted: two runs never wait on each other in a circle)."""
    locks = Locks(mirror)
    with ExitStack() as stack:
        for name in sorted(set(names)):
            stack.enter_context(locks.hold(f"sync:{name}", wait=True))
        yield


def apply_plan(config: Config, plan: Plan, *, mirror: Mirror | None = None, workers: int = DEFAULT_WORKERS,
               job: str | None = None, check: bool = True,
               prepared: list[tuple[Mapping, dict[str, EntitySchema]]] | None = None,
               should_stop: Callable[[], bool] | None = None, locked: bool = False,
               progress: WriteProgress | None = None, run_id: int | None = None) -> ApplyResult:
    """Carry out PLAN exactly. Refused if the mirror moved since it was made; a plan interrupted
    half-way is resumed (its done writes are not repeated). ``locked``: the caller holds the
    mappings' sync locks already. ``progress(target, finished, planned)`` after each write.
    ``run_id``: record the writes under this run, which the caller started and finishes (one sync
    that applies several passes is one run, so ``undo`` of it undoes them all)."""
    mirror = mirror or Mirror(config.mirror_url)
    if not locked:
        with holding(mirror, plan.mappings):
            return apply_plan(config, plan, mirror=mirror, workers=workers, job=job, check=check,
                              prepared=prepared, should_stop=should_stop, locked=True, progress=progress,
                              run_id=run_id)
    started = time.monotonic()
    prepared = prepared if prepared is not None else prepare(config, plan.mappings, mirror)
    with mirror.engine.connect() as conn:
        states = Counter(conn.execute(sa.select(OUT.c.state).where(OUT.c.plan_id == plan.id)).scalars())
    resumed = sum(states.values())
    if resumed and not states["pending"] and not states["sent"]:
        raise UsageError(f"plan {plan.id[:8]} was already applied ({states['done']} write(s) done); "
                         "make a new plan: syncengine plan --out FILE")
    if check and not resumed:
        current = fingerprint(mirror, [m for m, _ in prepared])
        if current != plan.fingerprint:
            raise UsageError(f"the mirror changed since plan {plan.id[:8]} was made (a pull or another sync "
                             "ran); nothing was written. Make a new plan: syncengine plan --out FILE")
    owned = run_id is None
    if run_id is None:
        run_id = mirror.start_run("sync", " ".join(plan.mappings), job)
    result = ApplyResult(run_id=run_id, plan_id=plan.id)
    pusher = Pusher(config, mirror, prepared, workers=workers)
    pusher.should_stop = should_stop
    pusher.saved_plan = check  # sync's own plan (check=False) is seconds old: no search per create
    error: str | None = None
    try:
        _record_outbox(mirror, plan, run_id, _origins(pusher, plan))
        _apply_state_actions(mirror, plan)
        result.recovered = pusher.recover(plan.id)
        with mirror.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(sa.select(OUT).where(
                OUT.c.plan_id == plan.id, OUT.c.state == "pending").order_by(OUT.c.id))]
        _run_concurrently(pusher, rows, result, progress)
        _park_issues(mirror, plan)
    except BaseException as exc:
        error = str(exc) or type(exc).__name__
        raise
    finally:
        result.requests = pusher.requests()
        pusher.close()
        result.seconds = time.monotonic() - started
        if owned:
            mirror.finish_run(run_id, run_status(result, error), result.as_dict(), error)
    return result


def run_status(result: ApplyResult, error: str | None) -> str:
    """What the run history says of an apply: failed (it raised), warning (a write failed or was stale), ok."""
    return "failed" if error else ("ok" if result.ok else "warning")


def _origins(pusher: Pusher, plan: Plan) -> dict[str, str]:
    """Where each value a write of PLAN carries comes from (action key -> JSON ``{field: origin}``),
    read before the first write moves any record's edit time: the source record's field as of its
    own edit time, or, when the source still holds a value a sync wrote there, that value's origin."""
    out: dict[str, str] = {}
    groups: dict[tuple[str, str], list[Action]] = {}
    for a in plan.writes():
        if a.op != "delete":
            groups.setdefault((a.mapping, other(a.side)), []).append(a)
    resolved = {(a.mapping, a.left_id, a.right_id): a.closes for a in plan.actions if a.op == "link" and a.closes}
    typed_at = _resolved_at(pusher.mirror, [cid for closes in resolved.values() for cid in closes])
    now = utcnow().isoformat()
    for (name, source), actions in groups.items():
        mapping, tr = pusher.mapping(name), pusher.translator(name)
        ref = mapping.side(source)
        ids = sorted({sid for a in actions if (sid := a.left_id if source == "left" else a.right_id) is not None})
        records: dict[str, tuple[dict[str, Any], Any]] = {}
        with pusher.mirror.engine.connect() as conn:
            for i in range(0, len(ids), ORIGIN_CHUNK):
                records.update((rid, (jsonutil.loads(data), changed)) for rid, data, changed in conn.execute(
                    sa.select(RecordRow.remote_id, RecordRow.data, RecordRow.last_changed).where(
                        RecordRow.system == ref.system, RecordRow.entity == ref.entity,
                        RecordRow.remote_id.in_(ids[i:i + ORIGIN_CHUNK]))))
            carried = origin_times(conn, ref.system, ref.entity, ids)
        for a in actions:
            sid = a.left_id if source == "left" else a.right_id
            if sid is None or sid not in records:
                continue
            data, changed = records[sid]
            edited = (tr.modified_at(source, data) or changed).isoformat()
            canon: dict[str, Any] | None = None  # only where a resolution may have typed the value
            closes = resolved.get((a.mapping, a.left_id, a.right_id))
            settled_at = dict(typed_at[c] for c in closes or () if c in typed_at)  # field -> when a person settled it
            if closes is not None:
                try:
                    canon = tr.canonical(source, data)
                except TranslationError:
                    canon = {}
            origins: dict[str, Any] = {}
            for field_name, value in a.settles.items():
                fm = mapping.fields.get(field_name)
                if fm is None or fm.paths.get(a.side) is None or fm.paths[a.side].key not in a.values:
                    continue  # not sent: nothing of it lands on the target
                path = fm.paths.get(source)
                if canon is not None and fm.template is None and canon.get(field_name) != value:  # typed
                    origins[field_name] = {"system": None, "entity": None, "id": None, "path": None,
                                           "edited_at": settled_at.get(field_name, now)}
                elif path is not None and (sid, str(path)) in carried:
                    origins[field_name] = carried[(sid, str(path))].as_dict()
                else:
                    origins[field_name] = {"system": ref.system, "entity": ref.entity, "id": sid,
                                           "path": None if path is None else str(path), "edited_at": edited}
            if origins:
                out[a.key] = jsonutil.dumps(origins)
    return out


def _resolved_at(mirror: Mirror, ids: list[int]) -> dict[int, tuple[str, str]]:
    """``{conflict id: (field, when it was settled)}``: a value a person typed counts from then."""
    out: dict[int, tuple[str, str]] = {}
    with mirror.engine.connect() as conn:
        for i in range(0, len(ids), ORIGIN_CHUNK):
            for cid, name, at in conn.execute(sa.select(ConflictRow.id, ConflictRow.field, ConflictRow.resolved_at)
                                              .where(ConflictRow.id.in_(ids[i:i + ORIGIN_CHUNK]))):
                if at is not None:
                    out[cid] = (name, at.isoformat())
    return out


def _record_outbox(mirror: Mirror, plan: Plan, run_id: int, origins: dict[str, str]) -> None:
    """Every write of the plan, ``pending``, in one transaction before the first call, with where
    its values come from (ORIGINS)."""
    now = utcnow()
    with mirror.engine.begin() as conn:
        known = set(conn.execute(sa.select(OUT.c.key).where(OUT.c.plan_id == plan.id)).scalars())
        rows = [{"plan_id": plan.id, "key": a.key, "run_id": run_id, "mapping": a.mapping, "op": a.op,
                 "side": a.side, "system": a.system, "entity": a.entity, "remote_id": a.remote_id,
                 "left_id": a.left_id, "right_id": a.right_id, "payload": jsonutil.dumps(a.values),
                 "settles": jsonutil.dumps(a.settles), "match": jsonutil.dumps(a.match) if a.match else None,
                 "before": jsonutil.dumps(a.before), "shadow_before": None, "state": "pending", "attempts": 0,
                 "expected": jsonutil.dumps({f: c[0] for f, c in a.changes.items()}) if a.op == "update" else None,
                 "stored": None, "origins": origins.get(a.key),
                 "error": None, "created_at": now, "updated_at": now}
                for a in plan.writes() if a.key not in known]
        if rows:
            conn.execute(sa.insert(OUT), rows)
        if known:  # a resumed plan: what is left belongs to this run
            conn.execute(sa.update(OUT).where(OUT.c.plan_id == plan.id, OUT.c.state.in_(("pending", "sent")))
                         .values(run_id=run_id))


def _apply_state_actions(mirror: Mirror, plan: Plan) -> None:
    """Links, unlinks and conflicts: mirror-only steps, in one transaction (idempotent on resume)."""
    now = utcnow()
    actions = [a for a in plan.actions if not a.calls_api]
    if not actions:
        return
    with mirror.engine.begin() as conn:
        links = {}
        for row in conn.execute(sa.select(L).where(L.c.mapping.in_(sorted({a.mapping for a in actions})),
                                                   L.c.state == "active")):  # only live links claim records
            links[(row.mapping, "left", row.left_id)] = links[(row.mapping, "right", row.right_id)] = row
        inserts, shadows, states, closes = [], [], [], []
        for a in actions:
            link = links.get((a.mapping, "left", a.left_id)) or links.get((a.mapping, "right", a.right_id))
            if a.op == "link":
                if link is None:
                    inserts.append({"mapping": a.mapping, "left_id": a.left_id, "right_id": a.right_id,
                                    "state": "active", "shadow": jsonutil.dumps(a.settles), "created_at": now,
                                    "updated_at": now})
                elif a.settles:
                    shadow = {**jsonutil.loads(link.shadow), **a.settles}
                    shadows.append({"b_id": link.id, "b_shadow": jsonutil.dumps(shadow),
                                    "b_bases": settled_bases(link.bases, a.settles, {})})
                closes += a.closes
            elif a.op == "unlink" and link is not None:
                states.append({"b_id": link.id, "b_state": a.state})
        if inserts:
            conn.execute(sa.insert(L), inserts)
        if shadows:
            conn.execute(sa.update(L).where(L.c.id == sa.bindparam("b_id")).values(
                shadow=sa.bindparam("b_shadow"), bases=sa.bindparam("b_bases"), updated_at=now), shadows)
        if states:
            conn.execute(sa.update(L).where(L.c.id == sa.bindparam("b_id")).values(
                state=sa.bindparam("b_state"), updated_at=now), states)
        if closes:
            conn.execute(sa.update(ConflictRow).where(ConflictRow.id.in_(closes),
                                                      ConflictRow.state.in_(("open", "resolved")))
                         .values(state="applied", resolved_at=now))
        for a in actions:  # conflicts last: a new pair's conflict needs the link inserted above
            if a.op != "conflict":
                continue
            link = find_link(conn, a.mapping, a.left_id, a.right_id)
            c = a.conflict or {}
            if link is None:
                continue
            exists = conn.execute(sa.select(ConflictRow.id, ConflictRow.state).where(
                ConflictRow.mapping == a.mapping, ConflictRow.link_id == link.id,
                ConflictRow.field == c["field"], ConflictRow.state.in_(("open", "resolved")))).first()
            if exists is not None:  # refreshed to each side's current value; a resolution edited since opens again
                conn.execute(sa.update(ConflictRow).where(ConflictRow.id == exists.id).values(
                    left_value=jsonutil.dumps(c["left"]), right_value=jsonutil.dumps(c["right"]), state="open",
                    value=None, take=None, resolved_at=None))
            elif exists is None:
                conn.execute(sa.insert(ConflictRow).values(
                    mapping=a.mapping, link_id=link.id, field=c["field"], left_value=jsonutil.dumps(c["left"]),
                    right_value=jsonutil.dumps(c["right"]), shadow_value=jsonutil.dumps(c["shadow"]), state="open",
                    created_at=now))


def _run_concurrently(pusher: Pusher, rows: list[dict[str, Any]], result: ApplyResult,
                      progress: WriteProgress | None = None) -> None:
    """One small pool per target system; the systems run side by side."""
    planned = Counter(f"{row['system']}:{row['entity']}" for row in rows)
    finished: Counter[str] = Counter()
    counting = threading.Lock()

    def report(row: dict[str, Any]) -> Callable[[Future[None]], None]:
        target = f"{row['system']}:{row['entity']}"

        def done(future: Future[None]) -> None:
            if progress is not None and not future.cancelled():
                with counting:
                    finished[target] += 1
                    progress(target, finished[target], planned[target])
        return done

    by_system: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_system.setdefault(row["system"], []).append(row)
    workers = {system: min(pusher.workers, pusher.connector(system).max_concurrency or pusher.workers)
               for system in by_system}
    pools = {system: ThreadPoolExecutor(n, thread_name_prefix=f"push-{system}") for system, n in workers.items()}
    try:
        futures = [pools[row["system"]].submit(pusher.execute, row, result) for row in rows]
        for future, row in zip(futures, rows, strict=True):
            future.add_done_callback(report(row))
        for future in futures:
            future.result()
    finally:
        for pool in pools.values():
            pool.shutdown(wait=True, cancel_futures=True)


def _park_issues(mirror: Mirror, plan: Plan) -> None:
    """Parked = what this sync could not do: the plan's issues plus its refused writes."""
    with mirror.engine.begin() as conn:
        failed = {(r.mapping, r.side, r.remote_id) for r in conn.execute(
            sa.select(ParkedRow.mapping, ParkedRow.side, ParkedRow.remote_id).where(
                ParkedRow.mapping.in_(plan.mappings), ParkedRow.kind == "write",
                ParkedRow.last_seen >= _plan_started(conn, plan)))}
        ignored = ignored_records(conn, plan.mappings)  # set aside by an operator: kept as they are
        keep = {(i.mapping, i.side, i.remote_id) for i in plan.issues} | failed | ignored
        for row in conn.execute(sa.select(ParkedRow.id, ParkedRow.mapping, ParkedRow.side, ParkedRow.remote_id)
                                .where(ParkedRow.mapping.in_(plan.mappings))).all():
            if (row.mapping, row.side, row.remote_id) not in keep:
                conn.execute(sa.delete(ParkedRow).where(ParkedRow.id == row.id))
        for issue in plan.issues:
            if (issue.mapping, issue.side, issue.remote_id) not in ignored:
                park(conn, issue.mapping, issue.side, issue.remote_id, issue.kind, issue.error)


def _plan_started(conn: sa.Connection, plan: Plan) -> Any:
    return conn.execute(sa.select(sa.func.min(OUT.c.created_at)).where(OUT.c.plan_id == plan.id)).scalar() or utcnow()


def park(conn: sa.Connection, mapping: str, side: str, remote_id: str, kind: str, error: str) -> None:
    now = utcnow()
    updated = conn.execute(sa.update(ParkedRow).where(
        ParkedRow.mapping == mapping, ParkedRow.side == side, ParkedRow.remote_id == remote_id).values(
        kind=kind, error=error, attempts=ParkedRow.attempts + 1, last_seen=now)).rowcount
    if not updated:
        conn.execute(sa.insert(ParkedRow).values(mapping=mapping, side=side, remote_id=remote_id, kind=kind,
                                                 error=error, attempts=1, first_seen=now, last_seen=now))


def _may_hold(sent: Any, held: Any, *, cut: bool) -> bool:
    """Could a CRM that was sent SENT hold HELD? Equal, kept to the minute, or cut to a column where
    that field is known to be CUT (any prefix of any text is not: 'Ann' is not 'Anna-Maria' cut)."""
    if held == sent:
        return True
    if not isinstance(sent, str) or not isinstance(held, str) or not held:
        return False
    if cut and sent.startswith(held):
        return True
    return len(sent) == len(held) == 20 and sent.endswith("Z") and sent[:16] == held[:16] and held[16:] == ":00Z"


def settled_bases(current: str | None, settles: dict[str, Any], held: dict[str, dict[str, Any]]) -> str | None:
    """A link's bases once SETTLES are agreed: their old entries go, HELD (side -> field -> the
    value that side stored instead) is kept. None when every side holds the shadow."""
    bases: dict[str, dict[str, Any]] = jsonutil.loads(current) if current else {}
    for values in bases.values():
        for name in settles:
            values.pop(name, None)
    for side, values in held.items():
        bases.setdefault(side, {}).update(values)
    bases = {side: values for side, values in bases.items() if values}
    return jsonutil.dumps(bases) if bases else None


def find_link(conn: sa.Connection, mapping: str, left_id: str | None, right_id: str | None) -> Any:
    """The active link holding either record (ended links keep history, not ownership)."""
    live = sa.select(L).where(L.c.mapping == mapping, L.c.state == "active")
    if left_id is not None:
        row = conn.execute(live.where(L.c.left_id == left_id)).first()
        if row is not None:
            return row
    if right_id is not None:
        return conn.execute(live.where(L.c.right_id == right_id)).first()
    return None


__all__ = ["ApplyResult", "Pusher", "apply_plan", "find_link", "holding", "park"]
