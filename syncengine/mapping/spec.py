"""The parsed form of a ``mappings/*.toml`` file, and the parts of it every later step asks about."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..types import Path_

SIDES = ("left", "right")
DIRECTIONS = ("both", "left-to-right", "right-to-left")
POLICIES = ("left", "right", "newest", "manual")
TIE_BREAKS = ("left", "right", "manual")
ON_DELETE = ("propagate", "unlink", "ignore")
ON_DELETE_CONFLICT = ("keep", "delete", "manual")  # a delete whose survivor was edited since the last sync
TYPES = ("string", "integer", "number", "boolean", "date", "datetime")

MISSING = object()


def other(side: str) -> str:
    return "right" if side == "left" else "left"


@dataclass(frozen=True)
class SideRef:
    """One side of a mapping: ``vt:Contacts``."""

    system: str
    entity: str

    def __str__(self) -> str:
        return f"{self.system}:{self.entity}"


@dataclass
class FieldMap:
    """One ``[fields]`` entry: how a value travels between the two sides."""

    name: str
    paths: dict[str, Path_]               # side -> path; a const/template field has the target's only
    direction: str = "both"
    normalize: str | None = None
    type: str | None = None               # canonical type; None: decided from both describes
    values: dict[str, Any] | None = None  # left value -> right value
    ref: str | None = None                # name of the mapping whose links translate this id
    const: Any = MISSING                  # written on create to the side that has a path
    template: str | None = None           # rendered from the other side's raw record
    conflict: str = "newest"
    tie_break: str = "manual"             # ``newest`` when both edit times are equal: left, right or manual
    formats: dict[str, str] = field(default_factory=dict)  # side -> strptime/strftime format
    country: str = "RU"

    @property
    def is_const(self) -> bool:
        return self.const is not MISSING

    @property
    def synced(self) -> bool:
        """Compared and written by the three-way diff (constants only fill creates)."""
        return not self.is_const

    def flows_to(self, side: str) -> bool:
        """May the engine write this field on SIDE?"""
        if side not in self.paths:
            return False
        return self.direction == "both" or self.direction == f"{other(side)}-to-{side}"

    @property
    def source(self) -> str | None:
        """For a template: the side it is rendered from."""
        return other(next(iter(self.paths))) if self.template is not None else None


@dataclass
class Mapping:
    """A pairing of two entities, field by field."""

    name: str
    file: str
    left: SideRef
    right: SideRef
    direction: str = "both"
    match_on: list[str] = field(default_factory=list)
    conflict: str = "newest"
    tie_break: str = "manual"
    on_delete: str = "unlink"
    on_delete_conflict: str = "keep"
    fields: dict[str, FieldMap] = field(default_factory=dict)
    phone_country: str = "RU"
    external_id: dict[str, str] = field(default_factory=dict)  # side -> field a create stamps with its source

    def side(self, which: str) -> SideRef:
        return self.left if which == "left" else self.right

    def creates_on(self, side: str) -> bool:
        return self.direction == "both" or self.direction == f"{other(side)}-to-{side}"

    @property
    def refs(self) -> set[str]:
        return {f.ref for f in self.fields.values() if f.ref}

    @property
    def synced_fields(self) -> list[FieldMap]:
        return [f for f in self.fields.values() if f.synced]

    def label(self) -> str:
        return f"{self.name} ({self.left} ↔ {self.right})"
