"""Opening the mirror database: engine settings per dialect, and Alembic migrations on first use."""
from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from ..errors import UsageError
from ..resources import shared_path

_upgraded: set[str] = set()

# Driver-level writes bind datetimes directly; store them the way SQLAlchemy's SQLite types read
# them back (the sqlite3 default adapters are deprecated since Python 3.12): UTC, without offset.
def sqlite_time(value: datetime) -> str:
    return (value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value).isoformat(" ")


sqlite3.register_adapter(datetime, sqlite_time)
sqlite3.register_adapter(date, lambda value: value.isoformat())
sqlite3.register_adapter(Decimal, str)  # NUMERIC columns keep the digits the CRM gave
_lock = threading.Lock()


def migrations_dir() -> Path:
    return shared_path("migrations")


def alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(migrations_dir()))
    return cfg


def create_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 60})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # WAL: readers never block the pull
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
        return engine
    try:
        return sa.create_engine(url, pool_pre_ping=True)
    except ModuleNotFoundError as exc:  # the URL names a driver this install lacks
        extra = " (pip install 'syncengine[postgres]')" if exc.name == "psycopg" else ""
        raise UsageError(f"mirror.url: the database driver {exc.name!r} is not installed{extra}") from None
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        raise UsageError(f"mirror.url: cannot use this database URL ({exc})") from None


def exists(url: str) -> bool:
    """Whether a mirror was made at URL (the engine tables are there); creates nothing, not even
    the SQLite file."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and (
            parsed.database in (None, "", ":memory:") or not Path(str(parsed.database)).exists()):
        return False
    engine = create_engine(url)
    try:
        return sa.inspect(engine).has_table("alembic_version")
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


def upgrade(engine: sa.Engine) -> tuple[str | None, str | None]:
    """Bring the engine tables to the newest revision; returns (revision before, head)."""
    cfg = alembic_config()
    head = ScriptDirectory.from_config(cfg).get_current_head()
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":  # else pysqlite commits each CREATE alone: a process killed
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # mid-way would leave a mirror no run can open
        elif conn.dialect.name == "postgresql":  # two daemons starting at once migrate one after the other
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7259001)")
        current = MigrationContext.configure(conn).get_current_revision()
        if current != head:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    return current, head


def ensure_upgraded(engine: sa.Engine) -> None:
    """Migrate once per process and database."""
    key = engine.url.render_as_string(hide_password=True)
    with _lock:
        if key in _upgraded:
            return
        try:
            upgrade(engine)
        except sa.exc.OperationalError as exc:
            raise UsageError(f"mirror.url: cannot open the mirror database "
                             f"({str(exc.orig).strip().splitlines()[0]})") from None
        _upgraded.add(key)
