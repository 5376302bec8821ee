"""The ids a sweep saw, kept in a temporary table of the mirror, so that comparing a listing of
200,000 records with the mirror costs database work, not memory that grows with the entity."""
from __future__ import annotations

from collections.abc import Iterable

from .store import Mirror

_TABLE = "sweep_listing"


class Listing:
    """Use as a context manager: ``add`` pages of ids, then ask ``missing`` and ``unknown``."""

    def __init__(self, mirror: Mirror, system: str, entity: str):
        self.system, self.entity = system, entity
        # its own connection: a temporary table lives and dies with the connection that made it
        self.conn = mirror.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {_TABLE}")
        self.conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {_TABLE} (id TEXT PRIMARY KEY)")
        self.qmark = self.conn.dialect.paramstyle == "qmark"
        self.count = 0

    def __enter__(self) -> Listing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {_TABLE}")
        self.conn.close()

    def add(self, ids: Iterable[str]) -> None:
        rows = [(str(i),) for i in ids]
        if rows:
            mark = "?" if self.qmark else "%s"
            self.conn.exec_driver_sql(f"INSERT INTO {_TABLE} (id) VALUES ({mark}) ON CONFLICT DO NOTHING", rows)
            self.count += len(rows)

    def live_count(self) -> int:
        return self._scalar("SELECT count(*) FROM records WHERE system = ? AND entity = ? AND deleted_at IS NULL")

    def missing(self) -> set[str]:
        """Live in the mirror, absent from the listing."""
        return self._ids(f"SELECT remote_id FROM records WHERE system = ? AND entity = ? AND deleted_at IS NULL "
                         f"AND remote_id NOT IN (SELECT id FROM {_TABLE})")

    def unknown(self) -> set[str]:
        """Listed, but not live in the mirror (never read, or restored)."""
        return self._ids(f"SELECT id FROM {_TABLE} WHERE id NOT IN (SELECT remote_id FROM records "
                         f"WHERE system = ? AND entity = ? AND deleted_at IS NULL)")

    def _sql(self, sql: str) -> str:
        return sql if self.qmark else sql.replace("?", "%s")

    def _scalar(self, sql: str) -> int:
        return self.conn.exec_driver_sql(self._sql(sql), (self.system, self.entity)).scalar_one()

    def _ids(self, sql: str) -> set[str]:
        return set(self.conn.exec_driver_sql(self._sql(sql), (self.system, self.entity)).scalars())
