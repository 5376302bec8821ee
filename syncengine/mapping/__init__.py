"""Mappings: ``mappings/*.toml`` loaded, validated against both systems, and values translated.

``prepare(config, names, mirror)`` is the one call the rest of the engine makes: it loads the
named mappings (and those they reference), fetches both sides' schemas (the mirror's cached
``describe``, else a fresh one) and refuses anything that cannot work, before any record moves.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable

from ..config import Config
from ..connectors import Connector, connect
from ..errors import AuthError, ConfigError, ConnectorError, UsageError
from ..mirror import Mirror, mirror_exists
from ..types import EntitySchema
from .loader import dependency_order, load_mappings, mapping_files
from .normalize import normalize
from .spec import SIDES, FieldMap, Mapping, SideRef, other
from .translate import EditTime, Pending, RefResolver, TranslationError, Translator, edit_order
from .validate import validate

__all__ = [
    "SIDES",
    "EditTime",
    "FieldMap",
    "Mapping",
    "Pending",
    "RefResolver",
    "SideRef",
    "TranslationError",
    "Translator",
    "check_all",
    "dependency_order",
    "describe",
    "edit_order",
    "load_mappings",
    "mapping_files",
    "normalize",
    "other",
    "prepare",
    "prepare_mirror",
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


def schema_for(config: Config, mirror, side: SideRef, *, refresh: bool = False,
               where: tuple[str, str] | None = None) -> EntitySchema:
    """The cached describe of SIDE, or a fresh one (saved for next time; no MIRROR: not cached).

    An entity the system does not have is a ``ConfigError`` at WHERE (file, key)."""
    cached = None if refresh or mirror is None else mirror.cached_schema(side.system, side.entity)
    if cached is not None:
        return cached[0]
    connector = connect(side.system, config.system(side.system))
    try:
        schema = describe(connector, side.entity, where)
    finally:
        connector.close()
    if mirror is not None:
        mirror.save_schema(side.system, schema)
    return schema


def describe(connector: Connector, entity: str, where: tuple[str, str] | None = None) -> EntitySchema:
    """``connector.describe``; an entity the system does not have is a usage error (a ``ConfigError``
    at WHERE, file and key) listing the entities it has."""
    try:
        return connector.describe(entity)
    except ConnectorError as exc:
        if isinstance(exc, AuthError):
            raise
        known = connector.entities()
        if entity in known:
            raise
        message = no_such_entity(connector.name, entity, known)
        raise (ConfigError(*where, message) if where else UsageError(message)) from None


def no_such_entity(system: str, entity: str, known: list[str]) -> str:
    """``vt has no entity 'Contact'; did you mean Contacts? (entities: …)``"""
    close = difflib.get_close_matches(entity, known, n=3, cutoff=0.6)
    guess = f"; did you mean {', '.join(close)}?" if close else ""
    shown = ", ".join(sorted(known)[:30]) + (f" and {len(known) - 30} more" if len(known) > 30 else "")
    return f"{system} has no entity {entity!r}{guess} (entities: {shown}; `syncengine discover {system}`)"


def prepare(config: Config, names: Iterable[str] | None, mirror) -> list[tuple[Mapping, dict[str, EntitySchema]]]:
    """Load, describe and validate; mappings come referenced-first. Without a MIRROR every
    schema is described afresh (nothing is created or cached)."""
    prepared = []
    for mapping in load_mappings(config, names).values():
        schemas = {side: schema_for(config, mirror, mapping.side(side), where=(mapping.file, side))
                   for side in SIDES}
        validate(mapping, schemas)
        prepared.append((mapping, schemas))
    return prepared


def prepare_mirror(config: Config, names: Iterable[str] | None,
                   mirror: Mirror | None = None) -> tuple[list[tuple[Mapping, dict[str, EntitySchema]]], Mirror]:
    """``prepare``, then the mirror (MIRROR, or the one ``[mirror] url`` names): a mapping refused
    while no mirror exists yet creates none. An existing mirror lends its schema cache; a new one
    is made once the mappings are accepted and keeps the schemas described for them."""
    if mirror is not None or mirror_exists(config.mirror_url):
        mirror = mirror or Mirror(config.mirror_url)
        return prepare(config, names, mirror), mirror
    prepared = prepare(config, names, None)
    mirror = Mirror(config.mirror_url)
    for mapping, schemas in prepared:
        for side, schema in schemas.items():
            mirror.save_schema(mapping.side(side).system, schema)
    return prepared, mirror


def check_all(config: Config, jobs: Iterable[str] | None = None, *, mirror=None,
              describe: bool = True) -> list[str]:
    """Refuse a job naming a mapping that does not exist, then load, describe and validate the
    mappings of JOBS (default: every mapping file and every job's), before anything runs.
    ``describe=False``: only what the files show. Returns the mapping names."""
    files = mapping_files(config)
    chosen = [config.job(name) for name in jobs] if jobs is not None else config.jobs
    for job in chosen:
        for name in job.mappings:
            if name not in files:
                close = difflib.get_close_matches(name, list(files), n=1)
                guess = f"; did you mean {close[0]}?" if close else ""
                raise ConfigError(str(config.path), f"jobs.{job.name}.mappings",
                                  f"no mapping {name!r} in {config.mappings_dir}{guess} "
                                  f"(mappings: {', '.join(files) or 'none'})")
    names = None if jobs is None else sorted({m for job in chosen for m in job.mappings})
    if not describe:
        return list(load_mappings(config, names))
    return [mapping.name for mapping, _ in prepare(config, names, mirror)]
