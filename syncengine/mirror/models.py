"""The engine's own state. Changed only through Alembic migrations in ``migrations/``.

Every timestamp is naive UTC (SQLite has no time zones; PostgreSQL stores the same values).
"""
from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class RecordRow(Base):
    """Every record read from a system: raw JSON as the API gave it, and its content hash."""

    __tablename__ = "records"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    system: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(128))
    remote_id: Mapped[str] = mapped_column(Text)
    data: Mapped[str] = mapped_column(Text)
    hash: Mapped[str] = mapped_column(String(32))
    first_seen: Mapped[datetime] = mapped_column(DateTime)
    last_changed: Mapped[datetime] = mapped_column(DateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    __table_args__ = (Index("ix_records_key", "system", "entity", "remote_id", unique=True),)


class CursorRow(Base):
    """Where the next incremental read of (system, entity) starts, and when it was last swept."""

    __tablename__ = "cursors"
    system: Mapped[str] = mapped_column(String(64), primary_key=True)
    entity: Mapped[str] = mapped_column(String(128), primary_key=True)
    cursor: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_sweep_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class SchemaRow(Base):
    """The last ``describe`` of an entity, so a pull need not describe again every time."""

    __tablename__ = "schemas"
    system: Mapped[str] = mapped_column(String(64), primary_key=True)
    entity: Mapped[str] = mapped_column(String(128), primary_key=True)
    schema: Mapped[str] = mapped_column(Text)
    described_at: Mapped[datetime] = mapped_column(DateTime)


class RunRow(Base):
    """One pull / sync / migrate run."""

    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    job: Mapped[str | None] = mapped_column(String(128), nullable=True)
    target: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # running | ok | failed | warning
    counts: Mapped[str] = mapped_column(Text, default="{}")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class ChangeHintRow(Base):
    """A record some side channel (webhook, change log) says changed: re-read at the next pull."""

    __tablename__ = "change_hints"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    system: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(128))
    remote_id: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (Index("ix_change_hints_target", "system", "entity"),)


# -- sync state (issue 6; migration 0002) ---------------------------------------------------

class LinkRow(Base):
    """A pair of records of one mapping, and the shadow: the canonical values both agreed on last.

    ``bases``: where a side *holds* something else than the shadow (it stored less than it was
    sent: a cut text, a datetime kept to the minute), that side's base, ``{side: {field: value}}``;
    a side's base of a field is its entry here, else the shadow's (migration 0004).
    ``state``: active | unlinked (on_delete = unlink; the survivor is left alone, free to match) |
    deleted | rejected (its delete was rejected: the survivor is re-created on the other side).
    """

    __tablename__ = "links"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    mapping: Mapped[str] = mapped_column(String(128))
    left_id: Mapped[str] = mapped_column(Text)
    right_id: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="active")
    shadow: Mapped[str] = mapped_column(Text, default="{}")
    bases: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)

    # Only live links claim records: an ended link keeps its history, not its ids (migration 0005).
    __table_args__ = (Index("ix_links_left", "mapping", "left_id", unique=True,
                            sqlite_where=text("state = 'active'"), postgresql_where=text("state = 'active'")),
                      Index("ix_links_right", "mapping", "right_id", unique=True,
                            sqlite_where=text("state = 'active'"), postgresql_where=text("state = 'active'")))


class OutboxRow(Base):
    """Every write, recorded before its API call and kept afterwards as the journal ``undo`` reads.

    ``state``: pending (not sent yet) | sent (the call may have happened) | done | failed |
    stale (not sent: the target changed since the plan) | abandoned (superseded by a later plan) |
    retried (failed, then done by a later plan) | undone.
    """

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plan_id: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(Text)
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    mapping: Mapped[str] = mapped_column(String(128))
    op: Mapped[str] = mapped_column(String(16))          # create | update | delete
    side: Mapped[str] = mapped_column(String(8))          # the side written: left | right
    system: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(128))
    remote_id: Mapped[str | None] = mapped_column(Text, nullable=True)  # target; known after a create
    left_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    right_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    payload: Mapped[str] = mapped_column(Text, default="{}")   # raw values sent
    settles: Mapped[str] = mapped_column(Text, default="{}")   # canonical values the shadow takes
    match: Mapped[str | None] = mapped_column(Text, nullable=True)  # how to find a create after a crash
    before: Mapped[str | None] = mapped_column(Text, nullable=True)  # previous raw values, for undo
    shadow_before: Mapped[str | None] = mapped_column(Text, nullable=True)
    expected: Mapped[str | None] = mapped_column(Text, nullable=True)  # update: target's canonical values planned over
    stored: Mapped[str | None] = mapped_column(Text, nullable=True)    # canonical values the target returned
    origins: Mapped[str | None] = mapped_column(Text, nullable=True)   # field -> where its value came from (0006)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (Index("ix_outbox_plan_key", "plan_id", "key", unique=True),
                      Index("ix_outbox_state", "state"), Index("ix_outbox_run", "run_id"))


class ConflictRow(Base):
    """Both sides changed a field differently and the policy is ``manual``.

    ``state``: open | resolved (``value`` chosen, or ``take``: that side's value at the next sync,
    written by it) | applied | moot. ``left_value``/``right_value`` are refreshed at every plan.
    """

    __tablename__ = "conflicts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    mapping: Mapped[str] = mapped_column(String(128))
    link_id: Mapped[int] = mapped_column(Integer)
    field: Mapped[str] = mapped_column(String(128))
    left_value: Mapped[str] = mapped_column(Text)     # canonical values, JSON
    right_value: Mapped[str] = mapped_column(Text)
    shadow_value: Mapped[str | None] = mapped_column(Text, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="open")
    value: Mapped[str | None] = mapped_column(Text, nullable=True)
    take: Mapped[str | None] = mapped_column(String(8), nullable=True)  # left | right
    created_at: Mapped[datetime] = mapped_column(DateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    __table_args__ = (Index("ix_conflicts_link", "mapping", "link_id", "field"),
                      Index("ix_conflicts_state", "state"))


class ParkedRow(Base):
    """A record the last sync could not carry (ambiguous match, untranslatable value, refused write)."""

    __tablename__ = "parked"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    mapping: Mapped[str] = mapped_column(String(128))
    side: Mapped[str] = mapped_column(String(8))
    remote_id: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))     # ambiguous | translation | write
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    first_seen: Mapped[datetime] = mapped_column(DateTime)
    last_seen: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (Index("ix_parked_record", "mapping", "side", "remote_id", unique=True),)


class HeldDeleteRow(Base):
    """A record a pull found gone, held until the evidence is enough to act on it (issue 12).

    ``reason``: feed (the CRM's delete feed) | sweep (absent from a listing, a by-id re-read found
    nothing) | scope (it exists, outside what this system reads) | breaker (the mass-delete
    breaker held it; the mirror still has it live). ``state``: waiting (seen gone once; a later
    pull re-reads it) | confirmed | held (a person decides: breaker, edit-vs-delete) | approved |
    rejected | released (it came back). The row of a record is reused when it goes again.
    """

    __tablename__ = "held_deletes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    system: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(128))
    remote_id: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    first_seen: Mapped[datetime] = mapped_column(DateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    __table_args__ = (Index("ix_held_deletes_record", "system", "entity", "remote_id", unique=True),
                      Index("ix_held_deletes_state", "state"))


class ProvenanceRow(Base):
    """Where a value the sync wrote came from (migration 0006): one row per field path of a record
    written. ``value`` is the raw value the target stored there; while the record still holds it,
    the value's edit time is ``edited_at`` (its origin's), not the record's own. The origin is the
    first system a value was typed into: a value that hops vt1 → Alfa → vt2 keeps vt1's id and time.
    ``origin_system`` NULL: the sync made the value itself (a value typed to resolve a conflict).
    """

    __tablename__ = "provenance"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    system: Mapped[str] = mapped_column(Text)
    entity: Mapped[str] = mapped_column(Text)
    remote_id: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Text)                  # email[0]
    value: Mapped[str] = mapped_column(Text)                 # JSON, as the target stored it
    origin_system: Mapped[str | None] = mapped_column(Text, nullable=True)
    origin_entity: Mapped[str | None] = mapped_column(Text, nullable=True)
    origin_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    origin_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    edited_at: Mapped[datetime] = mapped_column(DateTime)    # when the origin was edited (naive UTC)
    mapping: Mapped[str] = mapped_column(Text)               # the mapping that wrote it
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    written_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (Index("ix_provenance_field", "system", "entity", "remote_id", "path", unique=True),)
