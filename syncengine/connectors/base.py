"""The connector contract: what every CRM connector offers the engine.

A connector knows HTTP, auth, paging and its CRM's defects; it knows nothing of the mirror or of
mappings. It streams: :meth:`Connector.read_changes` yields :class:`ChangeBatch` pages, never a
whole entity. Its settings are a :class:`SystemSettings` subclass (:attr:`Connector.Settings`):
the config validates ``sync.toml`` against it before anything runs, and the connector reads its
typed values from ``self.settings``.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar

from ..http import HttpClient
from ..types import FIELD_TYPES, Capture, ChangeBatch, EntitySchema, Field, SystemSettings

__all__ = ["FIELD_TYPES", "Capture", "ChangeBatch", "Connector", "EntitySchema", "Field", "SystemSettings"]


class Connector:
    """Base class: holds the system's name, settings and the shared HTTP client."""

    kind: ClassVar[str]
    #: the keys its ``[systems.NAME]`` table takes; ``self.settings`` holds their values
    Settings: ClassVar[type[SystemSettings]] = SystemSettings
    default_entities: ClassVar[tuple[str, ...]] = ()
    #: True when some edits do not move the change time the cursor follows (kanban moves,
    #: imports, owner changes): a due sweep then re-reads every record (``read_changes`` with
    #: cursor None, which must yield ``scan=True`` batches) so content hashes catch those edits.
    sweep_reads_records: ClassVar[bool] = False
    #: Requests the API allows in flight at once (None: no rule); the push's thread pool obeys it.
    max_concurrency: ClassVar[int | None] = None

    def __init__(self, name: str, config: Mapping[str, Any], http: HttpClient):
        self.name = name
        self.settings = self.Settings.of(config)
        self.http = http

    # -- metadata --------------------------------------------------------------------------
    def check(self) -> str:
        """Log in and describe the install in a few words; raise a typed error if that fails."""
        raise NotImplementedError

    def entities(self) -> list[str]:
        """Entities the API user can read."""
        raise NotImplementedError

    def describe(self, entity: str) -> EntitySchema:
        raise NotImplementedError

    def capture(self, entity: str) -> Capture:
        """How changes of ENTITY are read (may probe the server once)."""
        raise NotImplementedError

    def change_reading(self, entity: str, cursor: str | None) -> str:
        """How the next pull reads ENTITY's changes, in a few words, told from the CURSOR the last
        pull stored and the settings alone: the console shows it on every page load, so it never
        contacts the CRM."""
        return "full listing (no cursor yet)" if cursor is None else "changes since the stored cursor"

    # -- reading ---------------------------------------------------------------------------
    def read_changes(self, entity: str, cursor: str | None) -> Iterator[ChangeBatch]:
        """Changes since CURSOR (None: everything), oldest first, in pages."""
        raise NotImplementedError

    def list_ids(self, entity: str) -> Iterator[list[str]]:
        """Every live record id, in pages: the listing a deletion sweep compares with the mirror.

        A listing cut short must raise, never end early: an ended listing deletes what it missed.
        """
        raise NotImplementedError

    def fetch(self, entity: str, ids: Iterable[str]) -> list[dict[str, Any]]:
        """Re-read the named records; ids that no longer exist are left out."""
        raise NotImplementedError

    def outside_scope(self, entity: str, ids: Iterable[str]) -> list[str]:
        """Of IDS, which ``fetch`` did not find, those that exist outside what this connection reads
        (another branch, a filter): out of scope is not deleted. Default: the connection reads all."""
        return []

    def search(self, entity: str, criteria: dict[str, Any]) -> list[dict[str, Any]]:
        """Records whose fields equal CRITERIA (used to find out whether a create happened)."""
        raise NotImplementedError

    # -- writing ---------------------------------------------------------------------------
    def create(self, entity: str, values: dict[str, Any]) -> dict[str, Any]:
        """Create a record; returns it as the CRM stored it (with its "id")."""
        raise NotImplementedError

    def update(self, entity: str, remote_id: str, values: dict[str, Any]) -> dict[str, Any]:
        """Change the given fields only (the connector hides CRMs that blank unsent fields)."""
        raise NotImplementedError

    def delete(self, entity: str, remote_id: str) -> None:
        """Delete a record; one already gone counts as deleted."""
        raise NotImplementedError

    def close(self) -> None:
        self.http.close()
