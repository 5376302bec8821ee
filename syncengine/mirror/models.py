"""The engine's own state. Changed only through Alembic migrations in ``migrations/``.

Every timestamp is naive UTC (SQLite has no time zones; PostgreSQL stores the same values).
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import DateTime, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class RecordRow(Base):
    """Every record read from a system: raw JSON as the API gave it, and its content hash."""

    __tablename__ = "records"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    system: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(128))
    remote_id: Mapped[str] = mapped_column(String(128))
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
    remote_id: Mapped[str] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (Index("ix_change_hints_target", "system", "entity"),)
