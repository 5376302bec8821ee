"""Mappings: ``mappings/*.toml`` loaded, validated against both systems, and values translated.

``prepare(config, names, mirror)`` is the one call the rest of the engine makes: it loads the
named mappings (and those they reference), fetches both sides' schemas (the mirror's cached
``describe``, else a fresh one) and refuses anything that cannot work, before any record moves.
"""
from __future__ import annotations

from collections.abc import Iterable

from ..config import Config
from ..connectors import connect
from ..errors import ConfigError
from ..types import EntitySchema
from .loader import dependency_order, load_mappings, mapping_files
from .normalize import normalize
from .spec import SIDES, FieldMap, Mapping, SideRef, other
from .translate import Pending, RefResolver, TranslationError, Translator
from .validate import validate

__all__ = [
    "SIDES",
    "FieldMap",
    "Mapping",
    "Pending",
    "RefResolver",
    "SideRef",
    "TranslationError",
    "Translator",
    "dependency_order",
    "load_mappings",
    "mapping_files",
    "normalize",
    "other",
    "prepare",
    "resolve_names",
    "schema_for",
    "validate",
]


def resolve_names(config: Config, name: str | None) -> list[str] | None:
    """A job name → its mappings; a mapping name → itself; None → every mapping."""
    if name is None:
        return None
    if any(job.name == name for job in config.jobs):
        return config.job(name).mappings
    if name in mapping_files(config):
        return [name]
    jobs = ", ".join(j.name for j in config.jobs) or "none"
    maps = ", ".join(mapping_files(config)) or "none"
    raise ConfigError(str(config.path), None, f"{name!r} is neither a job (jobs: {jobs}) nor a mapping "
                      f"in {config.mappings_dir} (mappings: {maps})")


def schema_for(config: Config, mirror, side: SideRef, *, refresh: bool = False) -> EntitySchema:
    """The cached describe of SIDE, or a fresh one (saved for next time)."""
    cached = None if refresh else mirror.cached_schema(side.system, side.entity)
    if cached is not None:
        return cached[0]
    connector = connect(side.system, config.system(side.system))
    try:
        schema = connector.describe(side.entity)
    finally:
        connector.close()
    mirror.save_schema(side.system, schema)
    return schema


def prepare(config: Config, names: Iterable[str] | None, mirror) -> list[tuple[Mapping, dict[str, EntitySchema]]]:
    """Load, describe and validate; mappings come referenced-first."""
    prepared = []
    for mapping in load_mappings(config, names).values():
        schemas = {side: schema_for(config, mirror, mapping.side(side)) for side in SIDES}
        validate(mapping, schemas)
        prepared.append((mapping, schemas))
    return prepared
