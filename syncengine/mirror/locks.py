"""Named locks shared by every process on one mirror: a PostgreSQL advisory lock, a ``flock``-ed
file beside a SQLite mirror, or a thread lock for an in-memory one.

The daemon holds ``job:NAME`` for a run (several daemons run each occurrence once); a pull holds
``pull:SYSTEM:ENTITY`` so two pulls of one entity never interleave their batches and cursors.
"""
from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from .store import Mirror


class Locks:
    _memory: dict[str, threading.Lock] = {}
    _memory_guard = threading.Lock()

    def __init__(self, mirror: Mirror):
        self.mirror = mirror
        self.dialect = mirror.engine.dialect.name
        self._namespace: str | None = None

    @contextmanager
    def hold(self, name: str, *, wait: bool = False) -> Iterator[bool]:
        """Yield True with the lock held for the block; without ``wait``, False at once if taken."""
        if self.dialect == "postgresql":
            with self._advisory(name, wait) as got:
                yield got
        elif self.dialect == "sqlite" and self._sqlite_path():
            with self._file(name, wait) as got:
                yield got
        else:
            with self._in_process(name, wait) as got:
                yield got

    def key(self, name: str) -> int:
        """A signed 64-bit advisory-lock key from the mirror's schema and the lock name."""
        digest = hashlib.blake2b(f"syncengine:{self._namespace}:{name}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big", signed=True)

    @contextmanager
    def _advisory(self, name: str, wait: bool) -> Iterator[bool]:
        # AUTOCOMMIT: a session-level lock must not keep a transaction open for the whole run
        with self.mirror.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            if self._namespace is None:
                self._namespace = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
            key = self.key(name)
            if wait:
                conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": key})
                got = True
            else:
                got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar_one()
            try:
                yield bool(got)
            finally:
                if got:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})

    def _sqlite_path(self) -> str | None:
        database = self.mirror.engine.url.database
        return database if database and database != ":memory:" and not database.startswith("file:") else None

    @contextmanager
    def _file(self, name: str, wait: bool) -> Iterator[bool]:
        try:
            import fcntl
        except ImportError:  # Windows: one process per SQLite mirror is all it is meant for
            with self._in_process(name, wait) as got:
                yield got
            return
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        path = Path(f"{self._sqlite_path()}.locks") / f"{safe}.lock"
        path.parent.mkdir(exist_ok=True)
        with open(path, "a+") as handle:  # flock is per open file: two holders in one process exclude too
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def _in_process(self, name: str, wait: bool) -> Iterator[bool]:
        with self._memory_guard:
            lock = self._memory.setdefault(f"{self.mirror.url}|{name}", threading.Lock())
        got = lock.acquire(blocking=wait)
        try:
            yield got
        finally:
            if got:
                lock.release()
