"""The shared vocabulary of every layer: what an entity looks like (``EntitySchema``, ``Field``),
how its changes arrive (``ChangeBatch``, ``Capture``) and what a connector's settings are
(``Setting``, ``COMMON_SETTINGS``).

It sits at the bottom of the package and imports nothing of it, so connectors, pull, the mirror,
mappings and push can all speak it without importing each other.
"""
from __future__ import annotations

import builtins
import enum
from dataclasses import dataclass, field
from typing import Any

#: Field types a connector may report; the reporting tables pick SQL types from them.
FIELD_TYPES = frozenset({
    "string", "text", "integer", "number", "boolean", "date", "datetime", "email", "phone",
    "url", "picklist", "multipicklist", "reference", "owner", "json",
})


@dataclass(frozen=True)
class Setting:
    """One ``[systems.NAME]`` key a connector takes: its type, default and the values it allows.

    The config refuses a value outside them (exit 2, file and key) before anything runs, so a
    connector can take its settings as given.
    """

    type: type | tuple[type, ...] = str
    required: bool = False
    default: Any = None
    secret: bool = False   # never logged, never stored; the README tells users to pass it as ${VAR}
    help: str = ""
    minimum: float | None = None        # numbers: at least this
    above: float | None = None          # numbers: greater than this
    maximum: float | None = None        # numbers: at most this
    choices: tuple[str, ...] = ()       # strings: one of these
    items: builtins.type | None = None           # lists: each item of this type (strings: not empty)
    form: str | None = None             # strings: "url", "duration" or "timezone"


#: Settings every system takes, whatever its kind.
COMMON_SETTINGS: dict[str, Setting] = {
    "kind": Setting(str, required=True,
                    help="vtiger | salesplatform | simplycrm | alfacrm | rukovoditel | salesman"),
    "entities": Setting(list, items=str, help="entities to pull (default: the connector's usual set)"),
    "rate_limit": Setting((int, float), default=None, above=0, help="request budget, requests per second"),
    "timeout": Setting((int, float), default=30, above=0, help="seconds to wait for one HTTP answer"),
    "retries": Setting(int, default=5, minimum=0, help="retries of a transient failure (5xx, timeout, 429)"),
    "verify_tls": Setting((bool, str), default=True, help="true, or the path of a CA bundle"),
    "sweep_every": Setting(str, default="6h", form="duration",
                           help="how often a pull also sweeps for deletions (e.g. 30m, 6h, 0s = every pull)"),
    "max_delete_share": Setting((int, float), default=0.10, minimum=0, maximum=1,
                                help="a sweep deleting more than this share of an entity is refused"),
    "overlap": Setting(int, default=2, minimum=0,
                       help="seconds each incremental poll re-reads, so no same-second write is lost"),
    "fields": Setting(list, default=[], items=str,
                      help="only these fields reach the mirror: 'name' (every entity) or 'Entity.name'"),
    "exclude_fields": Setting(list, default=[], items=str,
                              help="fields that never reach the mirror: 'name' or 'Entity.name'"),
    "history": Setting((bool, list), default=False,
                       help="keep <table>_history (SCD type 2): true, or a list of entities"),
}


@dataclass(frozen=True)
class Field:
    """One field of an entity as the CRM describes it."""

    name: str
    type: str = "string"
    label: str = ""
    mandatory: bool = False
    editable: bool = True
    choices: tuple[tuple[str, str], ...] = ()   # (raw value, label) of picklists
    refers_to: tuple[str, ...] = ()             # target entities of references
    format: str | None = None                   # strptime format of date/datetime values, if not ISO

    def __post_init__(self) -> None:
        if self.type not in FIELD_TYPES:
            raise ValueError(f"field {self.name}: unknown type {self.type!r}")


@dataclass
class EntitySchema:
    """An entity's fields, in the CRM's order."""

    name: str
    fields: list[Field]
    label: str = ""
    timezone: str = "UTC"              # the zone of the CRM's naive datetime strings
    modified_field: str | None = None  # the field holding the record's last change time
    html_encoded: bool = False         # text is stored HTML-encoded (vtiger's family): decoded when read

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]


class Capture(enum.Enum):
    """How an entity's changes can be read."""

    FEED = "feed"                # changes and deletions, incrementally (vtiger sync)
    INCREMENTAL = "incremental"  # changes incrementally, deletions only by sweep (vtiger query)
    SCAN = "scan"                # no change feed: every pull lists the whole entity


@dataclass
class ChangeBatch:
    """One page of changes, and the cursor to resume *after* it (None: cursor unchanged).

    ``scan=True`` says the batch belongs to a full listing: when every batch of one
    :meth:`Connector.read_changes` call is a scan batch and the stream ends normally, together
    they list every live record, and the engine sweeps the rest away (with the mass-delete breaker).
    """

    records: list[dict[str, Any]] = field(default_factory=list)  # each has an "id"
    deleted: list[str] = field(default_factory=list)
    cursor: str | None = None
    scan: bool = False
