"""The mirror: records with their content hash, cursors, schemas, runs and change hints.

Writes go through :class:`EntityWriter`, one per (system, entity): each call to
:meth:`EntityWriter.apply` writes a batch of records, its deletions, the reporting rows and the
cursor that follows the batch in **one transaction**, so a crash never skips or doubles a batch.
Unchanged records (same content hash) are not written at all.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.dialects import postgresql, sqlite

from ..jsonutil import dumpb, dumps, loads
from ..redact import SECRETS
from ..types import EntitySchema, Field
from . import db, provenance, reporting
from .models import ChangeHintRow, CursorRow, RecordRow, RunRow, SchemaRow, utcnow

R = cast(sa.Table, RecordRow.__table__)
_CHUNK = 500
_REFRESH_PAGE = 2000
log = logging.getLogger("syncengine.mirror")


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0

    def __iadd__(self, other: Counts) -> Counts:
        for key, value in asdict(other).items():
            setattr(self, key, getattr(self, key) + value)
        return self


@dataclass
class CursorState:
    cursor: str | None
    last_sweep_at: datetime | None
    exists: bool


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def encode(record: dict[str, Any]) -> bytes:
    return dumpb(record, sort_keys=True)


def chunks(items: list[Any], size: int = _CHUNK) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def upsert(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], keys: list[str]) -> None:
    """INSERT … ON CONFLICT DO UPDATE, on SQLite and PostgreSQL alike."""
    if not rows:
        return
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)
    update = {c.name: insert.excluded[c.name] for c in table.columns
              if c.name not in keys and c.name in rows[0]}
    conn.execute(insert.on_conflict_do_update(index_elements=keys, set_=update), rows)


class Mirror:
    """The local SQL mirror behind ``[mirror] url``; migrates itself on first use."""

    def __init__(self, url: str):
        self.url = url
        self.engine = db.create_engine(url)
        db.ensure_upgraded(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()

    # -- schemas ---------------------------------------------------------------------------
    def cached_schema(self, system: str, entity: str) -> tuple[EntitySchema, datetime] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(SchemaRow.schema, SchemaRow.described_at).where(
                SchemaRow.system == system, SchemaRow.entity == entity)).first()
        if row is None:
            return None
        raw = loads(row.schema)
        if not _schema_is_current(raw):
            return None  # described again: one request, and what the newer describe knows is not lost
        return _schema(raw), row.described_at

    def save_schema(self, system: str, schema: EntitySchema) -> None:
        with self.engine.begin() as conn:
            upsert(conn, cast(sa.Table, SchemaRow.__table__), [{
                "system": system, "entity": schema.name,
                "schema": dumps(asdict(schema)), "described_at": utcnow()}],
                ["system", "entity"])

    # -- cursors ---------------------------------------------------------------------------
    def cursor_state(self, system: str, entity: str) -> CursorState:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(CursorRow.cursor, CursorRow.last_sweep_at).where(
                CursorRow.system == system, CursorRow.entity == entity)).first()
        return CursorState(row.cursor, row.last_sweep_at, True) if row else CursorState(None, None, False)

    # -- reads -----------------------------------------------------------------------------
    def records(self, system: str, entity: str, *, deleted: bool = False) -> dict[str, dict[str, Any]]:
        """Live records (or, with ``deleted=True``, all of them) as ``{remote_id: data}``."""
        stmt = sa.select(R.c.remote_id, R.c.data).where(R.c.system == system, R.c.entity == entity)
        if not deleted:
            stmt = stmt.where(R.c.deleted_at.is_(None))
        with self.engine.connect() as conn:
            return {rid: loads(data) for rid, data in conn.execute(stmt)}

    def live_ids(self, system: str, entity: str) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(R.c.remote_id).where(
                R.c.system == system, R.c.entity == entity, R.c.deleted_at.is_(None))).scalars())

    def deleted_ids(self, system: str, entity: str) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(R.c.remote_id).where(
                R.c.system == system, R.c.entity == entity, R.c.deleted_at.is_not(None))).scalars())

    # -- change hints ----------------------------------------------------------------------
    def add_hints(self, system: str, entity: str, ids: Iterable[str], source: str = "webhook") -> None:
        now = utcnow()
        rows = [{"system": system, "entity": entity, "remote_id": str(i), "source": source,
                 "received_at": now} for i in ids]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(ChangeHintRow), rows)

    def pending_hints(self, system: str, entity: str) -> dict[str, list[int]]:
        """``{remote_id: [hint row ids]}``; rows are removed when the re-read commits."""
        hints: dict[str, list[int]] = {}
        with self.engine.connect() as conn:
            for pk, rid in conn.execute(sa.select(ChangeHintRow.id, ChangeHintRow.remote_id).where(
                    ChangeHintRow.system == system, ChangeHintRow.entity == entity)):
                hints.setdefault(rid, []).append(pk)
        return hints

    # -- runs ------------------------------------------------------------------------------
    def start_run(self, kind: str, target: str, job: str | None = None) -> int:
        with self.engine.begin() as conn:
            return conn.execute(sa.insert(RunRow).values(
                kind=kind, job=job, target=target, started_at=utcnow(), status="running",
                counts="{}").returning(RunRow.id)).scalar_one()

    def finish_run(self, run_id: int, status: str, counts: dict[str, Any], error: str | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.update(RunRow).where(RunRow.id == run_id).values(
                finished_at=utcnow(), status=status, counts=SECRETS.redact(dumps(counts)),
                error=SECRETS.redact(error) if error else None))

    def writer(self, system: str, schema: EntitySchema, options: reporting.EntityOptions | None = None,
               seen_at: datetime | None = None) -> EntityWriter:
        return EntityWriter(self, system, schema, options or reporting.EntityOptions(), seen_at)


class ReportingTable:
    """The reporting table of one (system, entity): its layout, row converter and upsert."""

    def __init__(self, dialect: sa.Dialect, system: str, schema: EntitySchema):
        self.layout = reporting.Layout(system, schema)
        self.table = self.layout.table
        self.time_text: Callable[[datetime], Any] | None = db.sqlite_time if dialect.name == "sqlite" else None
        converter = reporting.RowConverter(schema, self.layout, sqlite=dialect.name == "sqlite")
        self.to_row = converter.row
        self.system, self.entity = system, schema.name
        sql = _DriverSql(dialect)
        names = [sql.ident(c) for c in converter.columns]
        self.upsert = (
            f"INSERT INTO {sql.ident(self.table.name)} ({', '.join(names)}) "
            f"VALUES ({', '.join([sql.param] * len(names))}) "
            f"ON CONFLICT (id) DO UPDATE SET " + ", ".join(f"{n} = excluded.{n}" for n in names[1:]))

    def ensure(self, conn: sa.Connection) -> reporting.SchemaChanges:
        """Create or migrate the table; announce what changed (log, and the caller's run record)."""
        changes = reporting.ensure_table(conn, self.layout)
        if changes.added or changes.retyped:  # old rows get the new columns from their raw JSON
            self.refresh(conn)
        if announced := changes.describe(self.table.name):
            log.info("schema change: %s", announced)
        return changes

    def refresh(self, conn: sa.Connection) -> None:
        """Rewrite every reporting row from the raw records, a page at a time (memory stays flat)."""
        now, last = utcnow().replace(tzinfo=UTC), 0
        while True:
            page = conn.execute(sa.select(R.c.id, R.c.remote_id, R.c.data, R.c.deleted_at).where(
                R.c.system == self.system, R.c.entity == self.entity, R.c.id > last)
                .order_by(R.c.id).limit(_REFRESH_PAGE)).all()
            if not page:
                return
            last = page[-1].id
            rows = [self.to_row(r.remote_id, loads(r.data), now, r.deleted_at is not None) for r in page]
            conn.exec_driver_sql(self.upsert, [row for row in rows if row is not None])


def migrate_reporting_tables(conn: sa.Connection) -> list[str]:
    """Bring every reporting table to the current layout of its cached schema (Alembic calls this)."""
    announced = []
    for system, text in conn.execute(sa.select(SchemaRow.system, SchemaRow.schema)).all():
        target = ReportingTable(conn.dialect, system, schema_from_json(text))
        announced.append(target.ensure(conn).describe(target.table.name))
    return [a for a in announced if a]


def _schema_is_current(raw: dict[str, Any]) -> bool:
    """A schema cached by an older version lacks attributes added since (vtiger's ``html_encoded``,
    say); read with their defaults it would silently change how values are decoded."""
    return {f.name for f in fields(EntitySchema)} <= raw.keys()


def schema_from_json(text: str) -> EntitySchema:
    return _schema(loads(text))


def _schema(raw: dict[str, Any]) -> EntitySchema:
    raw = dict(raw)
    parsed = [Field(**{**f, "choices": tuple(map(tuple, f["choices"])),
                       "refers_to": tuple(f["refers_to"])}) for f in raw.pop("fields")]
    raw["name_fields"] = tuple(raw["name_fields"])
    return EntitySchema(fields=parsed, **raw)


class EntityWriter:
    """Writes the batches of one (system, entity) and its reporting table."""

    def __init__(self, mirror: Mirror, system: str, schema: EntitySchema,
                 options: reporting.EntityOptions, seen_at: datetime | None = None):
        """SEEN_AT: the ``last_changed`` of what this writer changes (a pull passes its start, the
        same for every system it reads, so comparing when changes were seen is not pull order)."""
        self.mirror = mirror
        self.seen_at = seen_at
        self.system = system
        self.entity = schema.name
        self.options = options
        self.reporting = ReportingTable(mirror.engine.dialect, system, options.schema(schema))
        self.layout, self.table, self.to_row = self.reporting.layout, self.reporting.table, self.reporting.to_row
        self._sql = _DriverSql(mirror.engine.dialect)
        # SQLite gets a record's JSON as the UTF-8 it was encoded to, made TEXT by the CAST: the
        # same stored text, without decoding it for Python and encoding it again for the driver
        sqlite = mirror.engine.dialect.name == "sqlite"
        data = "CAST(? AS TEXT)" if sqlite else "?"
        self._data_param: Callable[[bytes], Any] = (lambda data: data) if sqlite else bytes.decode
        self._insert_records = self._sql(
            "INSERT INTO records (system, entity, remote_id, data, hash, first_seen, last_changed) "
            f"VALUES (?, ?, ?, {data}, ?, ?, ?)")
        self._update_records = self._sql(
            f"UPDATE records SET data = {data}, hash = ?, last_changed = ?, deleted_at = NULL WHERE id = ?")
        # cursor times as SQLAlchemy's DateTime stores them (with microseconds on SQLite), driver-level
        self._cursor_time = sa.DateTime().dialect_impl(mirror.engine.dialect).bind_processor(
            mirror.engine.dialect) or (lambda value: value)
        self.history = _History(mirror.engine.dialect, self.layout) if options.history else None
        self._inserted, self._analyze_at = 0, 1000  # records this writer inserted; when to ANALYZE next
        with mirror.engine.begin() as conn:
            changes = [self.reporting.ensure(conn).describe(self.table.name)]
            if self.history:
                changes.append(self.history.ensure(conn))
            purged = self._purge_excluded(conn, schema) if options.filters else []
        self.announced = [text for text in changes if text]
        if purged:
            self.announced.append(f"{self.table.name}: {', '.join(f'-{c}' for c in purged)} (excluded; "
                                  f"removed from the table and the raw records)")
            log.info("schema change: %s", self.announced[-1])

    def apply(self, records: list[dict[str, Any]], deleted: Iterable[str] = (), *,
              cursor: str | None = None, swept: bool = False, hint_ids: Iterable[int] = ()) -> Counts:
        """Write one batch, its deletions, reporting rows and the following cursor atomically.

        ``cursor=None`` leaves the stored cursor as it is; ``swept=True`` records a completed sweep.
        """
        now = utcnow()
        seen = self.seen_at or now
        synced_at = now.replace(tzinfo=UTC)
        # the batch's times as the driver writes them, made once rather than for every row
        stamp: Callable[[datetime], Any] = self.reporting.time_text or (lambda value: value)
        now_value, seen_value, synced_value = stamp(now), stamp(seen), stamp(synced_at)
        counts = Counts()
        filters, system, entity, to_row, data_param = (
            self.options.filters, self.system, self.entity, self.to_row, self._data_param)
        prepared: dict[str, tuple[bytes, dict[str, Any]]] = {}
        for record in records:
            if filters:
                record = self.options.record(record)
            prepared[str(record["id"])] = (encode(record), record)
        with self.mirror.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # A crash may lose the last batches, never split one from its cursor: the next
                # pull reads them again. Not waiting for each commit's fsync halves a full read.
                conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                if self._inserted >= self._analyze_at:
                    # a table that grew since the planner last looked is read by a scan of the
                    # whole entity per batch (quadratic); fresh statistics make it an index lookup
                    conn.exec_driver_sql("ANALYZE records")
                    self._analyze_at = 2 * self._inserted
            existing = self._existing(conn, list(prepared))
            inserts, updates, changed = [], [], []
            moved: dict[str, dict[str, Any]] = {}  # records that changed: values a sync wrote may be gone
            for rid, (data, record) in prepared.items():
                digest = content_hash(data)
                old = existing.get(rid)
                if old is None:
                    inserts.append((system, entity, rid, data_param(data), digest, now_value, seen_value))
                elif old[1] != digest or old[2] is not None:
                    updates.append((data_param(data), digest, seen_value, old[0]))
                    moved[rid] = record
                else:
                    counts.unchanged += 1
                    continue
                if (row := to_row(rid, record, synced_value, False)) is not None:
                    changed.append(row)
            # Driver-level executemany: the ORM's per-row bookkeeping would cost more than the API.
            if inserts:
                self._insert(conn, inserts)
            if updates:
                conn.exec_driver_sql(self._update_records, updates)
                provenance.void_changed(conn, self.system, self.entity, moved, seen)
            if changed:
                conn.exec_driver_sql(self.reporting.upsert, changed)
                if self.history:
                    self.history.changed(conn, changed, synced_at)
            counts.created, counts.updated = len(inserts), len(updates)
            self._inserted += len(inserts)
            counts.deleted = self._mark_deleted(conn, [str(d) for d in deleted if str(d) not in prepared], now)
            if cursor is not None or swept:
                self._save_cursor(conn, cursor, now if swept else None)
            hint_ids = list(hint_ids)
            if hint_ids:
                conn.execute(sa.delete(ChangeHintRow).where(ChangeHintRow.id.in_(hint_ids)))
        return counts

    def _insert(self, conn: sa.Connection, rows: list[tuple[Any, ...]]) -> None:
        """New records; psycopg takes them by COPY, the same rows for a third of executemany's CPU."""
        if conn.dialect.driver != "psycopg":
            conn.exec_driver_sql(self._insert_records, rows)
            return
        with cast(Any, conn.connection.dbapi_connection).cursor() as cursor, cursor.copy(
                "COPY records (system, entity, remote_id, data, hash, first_seen, last_changed) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def _purge_excluded(self, conn: sa.Connection, schema: EntitySchema) -> list[str]:
        """Once a field is excluded, its column and its values in the raw records go (found by
        the columns still there, so this runs once)."""
        existing = {c["name"] for c in sa.inspect(conn).get_columns(self.table.name)}
        columns = [c.name for c in reporting.Layout(self.system, schema).columns
                   if not self.options.allows(c.field) and c.name in existing]
        if not columns:
            return []
        ops = Operations(MigrationContext.configure(conn))
        for name in columns:
            ops.drop_column(self.table.name, name)
            if self.history:
                ops.drop_column(self.history.table.name, name)
        last = 0
        while page := conn.execute(sa.select(R.c.id, R.c.data).where(
                R.c.system == self.system, R.c.entity == self.entity, R.c.id > last)
                .order_by(R.c.id).limit(_REFRESH_PAGE)).all():
            last = page[-1].id
            rows = []
            for pk, text in page:
                data = encode(self.options.record(loads(text)))
                rows.append((data.decode(), content_hash(data), pk))
            conn.exec_driver_sql(self._sql("UPDATE records SET data = ?, hash = ? WHERE id = ?"), rows)
        return columns

    def _existing(self, conn: sa.Connection, ids: list[str]) -> dict[str, tuple[int, str, Any]]:
        """``{remote_id: (row id, hash, deleted_at)}`` of the ids already in the mirror."""
        found: dict[str, tuple[int, str, Any]] = {}
        for chunk in chunks(ids):
            sql = self._sql("SELECT remote_id, id, hash, deleted_at FROM records WHERE system = ? AND entity = ? "
                            f"AND remote_id IN ({', '.join('?' * len(chunk))})")
            for rid, *rest in conn.exec_driver_sql(sql, (self.system, self.entity, *chunk)):
                found[rid] = tuple(rest)
        return found

    def _mark_deleted(self, conn: sa.Connection, ids: list[str], now: datetime) -> int:
        total = 0
        keys: list[Any] = ids
        if self.layout.integer_ids:  # the rows of ids that are no integer were never written
            keys = [key for key in map(reporting.integer_id, ids) if key is not None]
        for chunk in chunks(ids):
            total += conn.execute(sa.update(R).where(
                R.c.system == self.system, R.c.entity == self.entity, R.c.remote_id.in_(chunk),
                R.c.deleted_at.is_(None)).values(deleted_at=now, last_changed=now)).rowcount
        for chunk in chunks(keys):
            conn.execute(sa.update(self.table).where(self.table.c.id.in_(chunk)).values(
                _deleted=True, _synced_at=now.replace(tzinfo=UTC)))
            if self.history:
                self.history.deleted(conn, chunk, now.replace(tzinfo=UTC))
        return total

    def _save_cursor(self, conn: sa.Connection, cursor: str | None, swept_at: datetime | None) -> None:
        """Driver-level: an ORM statement built and compiled for every batch cost more than its write."""
        values: dict[str, Any] = {"updated_at": self._cursor_time(utcnow())}
        if cursor is not None:
            values["cursor"] = cursor
        if swept_at is not None:
            values["last_sweep_at"] = self._cursor_time(swept_at)
        names = [self._sql.ident(name) for name in values]
        key = (self.system, self.entity)
        if conn.exec_driver_sql(self._sql(f"UPDATE cursors SET {', '.join(f'{n} = ?' for n in names)} "
                                          "WHERE system = ? AND entity = ?"), (*values.values(), *key)).rowcount == 0:
            conn.exec_driver_sql(self._sql(f"INSERT INTO cursors (system, entity, {', '.join(names)}) "
                                           f"VALUES ({', '.join('?' * (len(names) + 2))})"), (*key, *values.values()))


class _History:
    """``<table>_history`` (SCD type 2): each write closes the current version of a record
    (``valid_to``) and opens the new one; a deletion opens a version with ``deleted`` set."""

    def __init__(self, dialect: sa.Dialect, layout: reporting.Layout):
        self.layout = layout
        self.table = reporting.history_table(layout)
        self.data = [c.name for c in self.table.columns if c.name not in reporting.HISTORY_COLUMNS]
        sql = _DriverSql(dialect)
        names = [sql.ident(c.name) for c in self.table.columns]
        self._insert = (f"INSERT INTO {sql.ident(self.table.name)} ({', '.join(names)}) "
                        f"VALUES ({', '.join([sql.param] * len(names))})")
        self.spilled = bool(layout.spilled)

    def ensure(self, conn: sa.Connection) -> str:
        changes = reporting.ensure_table(conn, self.layout, self.table)
        if changes.created:  # history starts with the versions the mirror holds now
            source = self.layout.table
            conn.execute(sa.insert(self.table).from_select(
                [*self.data, "valid_from", "valid_to", "deleted"],
                sa.select(*(source.c[name] for name in self.data), source.c._synced_at,
                          sa.null(), source.c._deleted)))
        return changes.describe(self.table.name)

    def changed(self, conn: sa.Connection, rows: list[tuple[Any, ...]], at: datetime) -> None:
        self._close(conn, [row[0] for row in rows], at)
        width = len(self.data) - (1 if self.spilled else 0)  # the row: id, fields, _deleted, _synced_at[, _extra]
        conn.exec_driver_sql(self._insert, [
            (*row[:width], *((row[-1],) if self.spilled else ()), at, None, False) for row in rows])

    def deleted(self, conn: sa.Connection, ids: list[Any], at: datetime) -> None:
        t = self.table
        current = sa.select(*(t.c[name] for name in self.data)).where(
            t.c.id.in_(ids), t.c.valid_to.is_(None), t.c.deleted.is_(False))
        rows = conn.execute(current).all()
        if rows:
            self._close(conn, [row[0] for row in rows], at)
            conn.exec_driver_sql(self._insert, [(*row, at, None, True) for row in rows])

    def _close(self, conn: sa.Connection, ids: list[Any], at: datetime) -> None:
        t = self.table
        for chunk in chunks(ids):
            conn.execute(sa.update(t).where(t.c.id.in_(chunk), t.c.valid_to.is_(None)).values(valid_to=at))


class _DriverSql:
    """SQL text for ``exec_driver_sql`` in the driver's own placeholder style."""

    def __init__(self, dialect: sa.Dialect):
        self.qmark = dialect.paramstyle == "qmark"
        self.param = "?" if self.qmark else "%s"
        self._quote = dialect.identifier_preparer.quote

    def __call__(self, sql: str) -> str:
        """SQL written with ``?`` placeholders (and no ``?`` or ``%`` of its own)."""
        return sql if self.qmark else sql.replace("?", "%s")

    def ident(self, name: str) -> str:
        """A quoted identifier; a ``?`` or ``%`` in it stays a character (the dialect escapes ``%``)."""
        return self._quote(name)
