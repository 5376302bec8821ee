"""The shared vocabulary of every layer: what an entity looks like (``EntitySchema``, ``Field``),
how its changes arrive (``ChangeBatch``, ``Capture``) and what a connector's settings are
(``SystemSettings``, ``setting``, ``Setting``).

It sits at the bottom of the package and imports nothing of it, so connectors, pull, the mirror,
mappings and push can all speak it without importing each other.
"""
from __future__ import annotations

import builtins
import dataclasses
import enum
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

#: Field types a connector may report; the reporting tables pick SQL types from them.
FIELD_TYPES = frozenset({
    "string", "text", "integer", "number", "boolean", "date", "datetime", "email", "phone",
    "url", "picklist", "multipicklist", "reference", "owner", "json",
})


@dataclass(frozen=True)
class Setting:
    """One ``[systems.NAME]`` key as the config checks it: its types, default and allowed values.

    Made from a field of a :class:`SystemSettings` class (see :func:`setting`); the config refuses
    a value outside it (exit 2, file and key) before anything runs.
    """

    type: tuple[builtins.type, ...] = (str,)
    required: bool = False
    default: Any = None
    secret: bool = False   # never logged, never stored; the README tells users to pass it as ${VAR}
    help: str = ""
    minimum: float | None = None        # numbers: at least this
    above: float | None = None          # numbers: greater than this
    maximum: float | None = None        # numbers: at most this
    choices: tuple[str, ...] = ()       # strings: one of these
    items: builtins.type | None = None  # lists: each item of this type (strings: not empty)
    form: str | None = None             # strings: "url", "duration" or "timezone"


def setting(default: Any = dataclasses.MISSING, *, secret: bool = False, help: str = "",
            minimum: float | None = None, above: float | None = None, maximum: float | None = None,
            choices: tuple[str, ...] = (), form: str | None = None) -> Any:
    """A field of a settings class: no default means required; the annotation gives the type."""
    rule = Setting(secret=secret, help=help, minimum=minimum, above=above, maximum=maximum,
                   choices=choices, form=form)
    return dataclasses.field(default=default, metadata={"setting": rule})


@dataclass(frozen=True, kw_only=True)
class SystemSettings:
    """The settings every system takes; each connector subclasses it with its own.

    One place for each key's name, type, default and range: the config validates ``sync.toml``
    against :meth:`declared`, and a connector reads its typed values from :meth:`of`.
    """

    kind: str = setting(help="vtiger | salesplatform | simplycrm | alfacrm | rukovoditel | salesman")
    entities: list[str] | None = setting(  # noqa: RUF009 - setting() makes a dataclasses.field
        None, help="entities to pull (default: the connector's usual set)")
    rate_limit: float | None = setting(None, above=0, help="request budget, requests per second")
    timeout: float = setting(30, above=0, help="seconds to wait for one HTTP answer")
    retries: int = setting(5, minimum=0, help="retries of a transient failure (5xx, timeout, 429)")
    verify_tls: bool | str = setting(True, help="true, or the path of a CA bundle")
    sweep_every: str = setting("6h", form="duration",
                               help="how often a pull also sweeps for deletions (e.g. 30m, 6h, 0s = every pull)")
    max_delete_share: float = setting(0.10, minimum=0, maximum=1,
                                      help="a sweep deleting more than this share of an entity is refused")
    overlap: int = setting(2, minimum=0,
                           help="seconds each incremental poll re-reads, so no same-second write is lost")
    fields: list[str] = setting(  # noqa: RUF009 - setting() makes a dataclasses.field
        (), help="only these fields reach the mirror: 'name' (every entity) or 'Entity.name'")
    exclude_fields: list[str] = setting(  # noqa: RUF009
        (), help="fields that never reach the mirror: 'name' or 'Entity.name'")
    history: bool | list[str] = setting(  # noqa: RUF009
        False, help="keep <table>_history (SCD type 2): true, or a list of entities")

    @classmethod
    def declared(cls) -> dict[str, Setting]:
        """Each key with its types (from the annotation), default and rule."""
        hints = typing.get_type_hints(cls)
        found = {}
        for f in dataclasses.fields(cls):
            types, items = _runtime_types(hints[f.name])
            rule: Setting = f.metadata["setting"]
            required = f.default is dataclasses.MISSING
            found[f.name] = dataclasses.replace(rule, type=types, items=items, required=required,
                                                default=None if required else f.default)
        return found

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> Self:
        """The typed settings of a validated ``[systems.NAME]`` table (absent keys: defaults)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


def _runtime_types(hint: Any) -> tuple[tuple[builtins.type, ...], builtins.type | None]:
    """``float | None`` → (int, float); ``list[str]`` → (list,) with items str."""
    members = [m for m in typing.get_args(hint) if m is not type(None)] \
        if typing.get_origin(hint) in (types.UnionType, typing.Union) else [hint]
    found: list[builtins.type] = []
    items = None
    for member in members:
        if typing.get_origin(member) is list:
            found.append(list)
            items = typing.get_args(member)[0]
        elif member is float:
            found += [int, float]
        else:
            found.append(member)
    return tuple(dict.fromkeys(found)), items


_PATH = re.compile(r"^([A-Za-z_][A-Za-z0-9_\-]*)(?:\[(\d+)\])?$")


@dataclass(frozen=True)
class Path_:
    """``email[0]``: a record key and, for list values, one element of it."""

    key: str
    index: int | None = None

    @classmethod
    def parse(cls, text: str) -> Path_ | None:
        match = _PATH.match(text)
        if not match:
            return None
        return cls(match.group(1), int(match.group(2)) if match.group(2) is not None else None)

    def get(self, record: dict[str, Any]) -> Any:
        value = record.get(self.key)
        if self.index is None:
            return value
        if isinstance(value, list):
            return value[self.index] if self.index < len(value) else None
        return value if self.index == 0 else None  # a scalar where a list was expected

    def __str__(self) -> str:
        return self.key if self.index is None else f"{self.key}[{self.index}]"


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
    modified_precision: int = 1        # seconds that field resolves (60: to the minute)
    html_encoded: bool = False         # text is stored HTML-encoded (vtiger's family): decoded when read
    name_fields: tuple[str, ...] = ()  # what a person knows a record by (vtiger's labelFields), in order

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
