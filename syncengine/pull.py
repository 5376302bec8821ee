"""Pull: read changes from connectors into the mirror.

For each (system, entity): re-read records that change hints name (webhooks, change logs); read
changes since the cursor, committing each batch with the cursor that follows it; then, when the
read was a full scan or a sweep is due, compare the complete id listing with the mirror (in a
temporary table: memory stays flat): records listed but unknown are fetched.

Deletes on evidence: absence from a listing is a hint. A missing record is re-read by id; one
still gone, or named by the CRM's delete feed, is marked deleted and queued as *waiting*
(``syncengine/deletes.py``); one that exists outside the read scope (another branch) is *out of
scope*, never a delete. The next pull re-reads the waiting ones by id: still gone is *confirmed*
(only then does a sync act on it), back is *released*. More missing than ``max_delete_share`` of
the entity trips the breaker: nothing is deleted and the records are *held* for a person
(``syncengine deletes``). A listing cut short raises, and so deletes nothing. One pull of an
entity runs at a time (a named lock in the mirror).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from . import deletes
from .config import Config, parse_duration
from .connectors import Connector, connect
from .errors import AuthError, ConnectorError, MassDeleteRefused, Unsupported
from .mirror import Counts, EntityOptions, EntityWriter, Locks, Mirror
from .mirror.listing import Listing
from .mirror.models import utcnow
from .types import ChangeBatch, EntitySchema

log = logging.getLogger("syncengine.pull")  # outcomes go in PullResult: the CLI and the daemon report them

SCHEMA_MAX_AGE = timedelta(hours=24)
Progress = Callable[[str, str, int], None]  # (system, entity, records read so far)
ShouldStop = Callable[[], bool]             # asked after each committed batch (daemon shutdown)


@dataclass
class EntityResult:
    system: str
    entity: str
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    swept: bool = False
    status: str = "ok"          # ok | refused (mass delete) | failed
    message: str | None = None
    schema_changes: list[str] = field(default_factory=list)  # "vt_contacts: +cf_855 (date)"

    def add(self, counts: Counts) -> None:
        for key, value in asdict(counts).items():
            setattr(self, key, getattr(self, key) + value)


@dataclass
class PullResult:
    entities: list[EntityResult] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)
    errors: dict[str, dict[str, int]] = field(default_factory=dict)  # system -> error type -> n
    seconds: float = 0.0
    run_id: int | None = None
    stopped: bool = False       # should_stop() said so: ended after a committed batch

    @property
    def ok(self) -> bool:
        return all(e.status == "ok" for e in self.entities)

    def entity(self, system: str, entity: str) -> EntityResult:
        return next(e for e in self.entities if e.system == system and e.entity == entity)


def parse_targets(config: Config, targets: Iterable[str] | None) -> list[tuple[str, str | None]]:
    """``["vt", "alfa:customer"]`` → ``[("vt", None), ("alfa", "customer")]``; none → every system."""
    parsed: list[tuple[str, str | None]] = []
    for target in targets or config.systems:
        system, _, entity = target.partition(":")
        config.system(system)
        parsed.append((system, entity or None))
    return parsed


def pull(config: Config, targets: Iterable[str] | None = None, *, full: bool = False,
         sweep: bool = False, allow_mass_delete: bool = False, progress: Progress | None = None,
         mirror: Mirror | None = None, job: str | None = None,
         should_stop: ShouldStop | None = None) -> PullResult:
    """Pull TARGETS (default: every configured system) into the mirror.

    ``should_stop`` is asked after each committed batch; when it says yes the pull ends there
    (no sweep of a half-read entity) and the run is recorded as ``stopped``.
    """
    started, seen_at = time.monotonic(), utcnow()
    mirror = mirror or Mirror(config.mirror_url)
    plan = parse_targets(config, targets)
    result = PullResult()
    result.run_id = mirror.start_run("pull", " ".join(f"{s}:{e}" if e else s for s, e in plan), job)
    error: str | None = None
    try:
        for system, only in plan:
            settings = config.system(system)
            connector = connect(system, settings)
            try:
                entities = [only] if only else list(settings.get("entities") or connector.default_entities)
                puller = _EntityPuller(mirror, connector, settings, full=full, sweep=sweep,
                                       allow_mass_delete=allow_mass_delete, progress=progress,
                                       should_stop=should_stop, seen_at=seen_at)
                for entity in entities:
                    if should_stop and should_stop():
                        result.stopped = True
                        break
                    outcome = puller.pull(entity)
                    result.entities.append(outcome)
                    if puller.auth_failed:  # the next entities would be refused the same way
                        break
                result.stopped = result.stopped or puller.stopped
            finally:
                result.requests[system] = result.requests.get(system, 0) + connector.http.total_requests
                errors = result.errors.setdefault(system, {})
                for kind, count in connector.http.errors.items():
                    errors[kind] = errors.get(kind, 0) + count
                connector.close()
            if result.stopped:
                break
    except BaseException as exc:
        error = str(exc) or type(exc).__name__
        raise
    finally:
        result.seconds = time.monotonic() - started
        status = "failed" if error or not result.ok else "stopped" if result.stopped else "ok"
        mirror.finish_run(result.run_id, status, {
            "entities": [asdict(e) for e in result.entities], "requests": result.requests,
            "seconds": round(result.seconds, 3)}, error)
    return result


class _EntityPuller:
    """Pulls the entities of one system."""

    def __init__(self, mirror: Mirror, connector: Connector, settings: dict, *, full: bool,
                 sweep: bool, allow_mass_delete: bool, progress: Progress | None,
                 should_stop: ShouldStop | None = None, seen_at: datetime | None = None):
        self.mirror = mirror
        self.seen_at = seen_at
        self.connector = connector
        self.system = connector.name
        self.full = full
        self.force_sweep = sweep or full
        self.allow_mass_delete = allow_mass_delete
        self.progress = progress
        self.should_stop = should_stop
        self.stopped = False
        self.sweep_every = parse_duration(settings["sweep_every"])
        self.max_delete_share = float(settings["max_delete_share"])
        self.auth_failed = False
        self.locks = Locks(mirror)
        self.settings = settings

    def pull(self, entity: str) -> EntityResult:
        result = EntityResult(self.system, entity)
        try:
            with self.locks.hold(f"pull:{self.system}:{entity}", wait=True):  # one pull of it at a time
                self._pull(entity, result)
        except MassDeleteRefused as exc:
            result.status, result.message = "refused", str(exc)
            log.info("%s", exc)
        except AuthError as exc:
            result.status, result.message = "failed", str(exc)
            self.auth_failed = True
            log.info("%s", exc)
        except ConnectorError as exc:
            result.status, result.message = "failed", str(exc)
            log.info("%s:%s: %s", self.system, entity, exc)
        return result

    def _pull(self, entity: str, result: EntityResult) -> None:
        started = utcnow()  # deletes queued before this moment get their second look
        schema = self._schema(entity, refresh=self.full)
        options = EntityOptions.from_settings(self.settings, entity)
        writer = self.mirror.writer(self.system, schema, options, self.seen_at)
        result.schema_changes += writer.announced
        state = self.mirror.cursor_state(self.system, entity)
        self._apply_hints(writer, entity, result)

        sweep_due = self.force_sweep or self._sweep_due(state)
        rescan = sweep_due and self.connector.sweep_reads_records
        cursor = None if self.full or rescan else state.cursor
        with Listing(self.mirror, self.system, entity) as listing:
            scanned, batches, read, redescribed = True, 0, 0, False
            for batch in coalesce(prefetch(self.connector.read_changes(entity, cursor))):
                batches += 1
                if not redescribed and self._has_new_fields(schema, batch):
                    redescribed = True
                    schema = self._schema(entity, refresh=True)
                    writer = self.mirror.writer(self.system, schema, options, self.seen_at)
                    result.schema_changes += writer.announced
                gone = self._queue_gone(entity, [str(d) for d in batch.deleted], "feed")
                result.add(writer.apply(batch.records, gone, cursor=batch.cursor))
                if batch.scan:
                    listing.add(r["id"] for r in batch.records)
                else:
                    scanned = False
                read += len(batch.records)
                if self.progress:
                    self.progress(self.system, entity, read)
                if self.should_stop and self.should_stop():
                    self.stopped = True  # the batch and its cursor are committed: resume from here
                    return

            if batches and scanned:
                self._sweep(writer, entity, listing, result, fetch_unknown=False)
            elif sweep_due:
                for page in self.connector.list_ids(entity):
                    listing.add(page)
                self._sweep(writer, entity, listing, result, fetch_unknown=True)
            elif cursor is None or state.last_sweep_at is None:
                # a first read that completed, resumed or not, counts as the first sweep
                writer.apply([], swept=True)
        self._second_look(writer, entity, started, result)

    def _sweep_due(self, state) -> bool:
        if state.last_sweep_at is None:  # a first read cut short resumes from its cursor
            return state.exists and state.cursor is None
        return utcnow() - state.last_sweep_at >= self.sweep_every

    def _sweep(self, writer: EntityWriter, entity: str, listing: Listing, result: EntityResult,
               *, fetch_unknown: bool) -> None:
        missing = listing.missing()
        held = deletes.held_ids(self.mirror, self.system, entity)
        deletes.set_state(self.mirror, self.system, entity, held - missing, "released", where=("held",))
        if missing and not self.allow_mass_delete:
            live = listing.live_count()
            allowed = max(int(self.max_delete_share * live), 1)
            if not listing.count or len(missing) > allowed:
                deletes.observe(self.mirror, self.system, entity, missing, "breaker", state="held")
                raise MassDeleteRefused(
                    f"{self.system}:{entity}: the sweep found {len(missing)} of {live} records "
                    f"missing ({len(missing) / live:.0%}), more than max_delete_share "
                    f"{self.max_delete_share:.0%}; nothing was deleted. They are held: `syncengine deletes` "
                    f"lists them, `syncengine deletes approve --all` (or `syncengine pull {self.system}:{entity} "
                    f"--allow-mass-delete`) deletes them, `syncengine deletes reject ID…` keeps them")
        unknown = sorted(listing.unknown()) if fetch_unknown else []
        records = self.connector.fetch(entity, unknown) if unknown else []
        found = self._reread(entity, missing)  # absence is a hint: ask for each one by id
        gone = self._queue_gone(entity, sorted(missing - {str(r["id"]) for r in found}), "reread")
        result.add(writer.apply(records + found, gone, swept=True))
        result.swept = True

    def _reread(self, entity: str, ids: set[str]) -> list[dict[str, Any]]:
        try:
            return self.connector.fetch(entity, sorted(ids)) if ids else []
        except Unsupported:
            return []

    def _queue_gone(self, entity: str, ids: list[str], reason: str) -> list[str]:
        """Queue IDS, which the CRM says are gone, before the mirror marks them deleted; those that
        exist outside the read scope are queued as such. Returns the ids to mark deleted."""
        if not ids:
            return ids
        scope = set(self.connector.outside_scope(entity, ids))
        deletes.observe(self.mirror, self.system, entity, scope, "scope", state="scope")
        deletes.observe(self.mirror, self.system, entity, set(ids) - scope, reason)
        return ids

    def _second_look(self, writer: EntityWriter, entity: str, started: datetime, result: EntityResult) -> None:
        """Deletes an earlier pull queued: re-read by id; still gone is confirmed, back is released."""
        waiting = deletes.waiting_ids(self.mirror, self.system, entity, started)
        found = self._reread(entity, set(waiting))
        if found:
            result.add(writer.apply(found))
        still = set(waiting) - {str(r["id"]) for r in found}
        scope = set(self.connector.outside_scope(entity, sorted(still))) if still else set()
        deletes.set_state(self.mirror, self.system, entity, scope, "scope", where=("waiting",))
        deletes.set_state(self.mirror, self.system, entity, still - scope, "confirmed", where=("waiting",))
        deletes.release_live(self.mirror, self.system, entity)

    def _apply_hints(self, writer: EntityWriter, entity: str, result: EntityResult) -> None:
        hints = self.mirror.pending_hints(self.system, entity)
        if not hints:
            return
        records = self.connector.fetch(entity, list(hints))
        gone = self._queue_gone(entity, sorted(set(hints) - {str(r["id"]) for r in records}), "reread")
        result.add(writer.apply(records, gone,
                                hint_ids=[pk for pks in hints.values() for pk in pks]))

    def _schema(self, entity: str, *, refresh: bool) -> EntitySchema:
        cached = None if refresh else self.mirror.cached_schema(self.system, entity)
        if cached and utcnow() - cached[1] < SCHEMA_MAX_AGE:
            return cached[0]
        try:
            schema = self.connector.describe(entity)
        except ConnectorError as exc:
            if isinstance(exc, AuthError):
                raise
            known = self.connector.entities()
            if entity not in known:  # a typo in sync.toml or on the command line
                raise ConnectorError(f"no entity {entity!r}; this system has: {', '.join(known[:25])}"
                                     f"{' …' if len(known) > 25 else ''} (`syncengine discover {self.system}`)",
                                     system=self.system) from None
            raise
        self.mirror.save_schema(self.system, schema)
        return schema

    @staticmethod
    def _has_new_fields(schema: EntitySchema, batch: ChangeBatch) -> bool:
        """A record key the schema lacks means the CRM gained a field: describe again."""
        known = set(schema.field_names) | {"id", "label"}
        return any(key not in known for record in batch.records[:50] for key in record)


T = TypeVar("T")
COALESCE = 500  # records; pages without a cursor of their own are written together, in fewer commits


def coalesce(batches: Iterator[ChangeBatch], size: int = COALESCE) -> Iterator[ChangeBatch]:
    """Join consecutive small batches that carry no cursor (e.g. the pages of a scan).

    A batch with a cursor closes the group it joins, so every cursor still commits with exactly
    the records before it; scan and non-scan batches are never mixed.
    """
    group: ChangeBatch | None = None
    for batch in batches:
        if group is not None and group.scan != batch.scan:
            yield group
            group = None
        if group is None:
            group = ChangeBatch(list(batch.records), list(batch.deleted), batch.cursor, batch.scan)
        else:  # a later page wins over an earlier one for the same id
            if batch.deleted:
                gone = {str(d) for d in batch.deleted}
                group.records = [r for r in group.records if str(r["id"]) not in gone]
            if batch.records and group.deleted:
                back = {str(r["id"]) for r in batch.records}
                group.deleted = [d for d in group.deleted if str(d) not in back]
            group.records += batch.records
            group.deleted += batch.deleted
            group.cursor = batch.cursor
        if group.cursor is not None or len(group.records) >= size:
            yield group
            group = None
    if group is not None:
        yield group


def prefetch(pages: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Read the next pages in a thread while the caller writes this one (network ‖ database).

    Order is kept and an error in the reader is raised here, after the pages before it.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def read() -> None:
        try:
            for page in pages:
                while not stop.is_set():
                    try:
                        q.put((page, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((done, None))
        except BaseException as exc:  # handed to the consumer
            q.put((done, exc))

    reader = threading.Thread(target=read, daemon=True, name="pull-prefetch")
    reader.start()
    try:
        while True:
            page, error = q.get()
            if page is done:
                if error is not None:
                    raise error
                return
            yield page
    finally:
        stop.set()
        reader.join(timeout=5)
