"""Reading ``mappings/*.toml`` and refusing what cannot work, before anything runs.

Two stages: :func:`load_mappings` checks what the files alone can tell (keys, directions, value
maps, templates, references between mappings); :func:`syncengine.mapping.validate.validate`
then checks every field against both systems' ``describe``. Every refusal is a
``ConfigError(file, key, reason)``.
"""
from __future__ import annotations

import re
import string
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import ConfigError
from .normalize import COUNTRIES, NORMALIZERS
from .spec import (
    DIRECTIONS,
    ON_DELETE,
    ON_DELETE_CONFLICT,
    POLICIES,
    SIDES,
    TIE_BREAKS,
    TYPES,
    FieldMap,
    Mapping,
    Path_,
    SideRef,
    other,
)

_PLACEHOLDER = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
_TOP_KEYS = {"left", "right", "direction", "match_on", "conflict", "tie_break", "on_delete", "on_delete_conflict",
             "phone_country", "fields", "external_id"}
_FIELD_KEYS = {"left", "right", "direction", "normalize", "type", "values", "ref", "const", "template",
               "conflict", "tie_break", "left_format", "right_format", "country"}


def mapping_files(config: Config) -> dict[str, Path]:
    folder = config.mappings_dir
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.toml"))}


def load_mappings(config: Config, names: Iterable[str] | None = None) -> dict[str, Mapping]:
    """The named mappings (default: every file) and the mappings they reference, in dependency order."""
    files = mapping_files(config)
    wanted = list(names) if names is not None else list(files)
    for name in wanted:
        if name not in files:
            raise ConfigError(str(config.mappings_dir / f"{name}.toml"), None,
                              f"no such mapping (found: {', '.join(files) or 'none'} in {config.mappings_dir})")
    loaded: dict[str, Mapping] = {}
    todo = list(wanted)
    while todo:
        name = todo.pop()
        if name in loaded:
            continue
        loaded[name] = load_mapping(config, files[name], known=set(files))
        todo += sorted(loaded[name].refs)
    return {name: loaded[name] for name in dependency_order(loaded)}


def dependency_order(mappings: dict[str, Mapping]) -> list[str]:
    """Referenced mappings first, so a contact's account is linked before the contact is written."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise ConfigError(mappings[name].file, "fields", f"mapping {name!r} references itself "
                              "through a cycle of ref = …; break the cycle")
        visiting.add(name)
        for ref in sorted(mappings[name].refs):
            if ref in mappings and ref != name:
                visit(ref)
        visiting.discard(name)
        order.append(name)

    for name in mappings:
        visit(name)
    return order


def load_mapping(config: Config, path: Path, *, known: set[str]) -> Mapping:
    file = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, None, f"not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(file, None, "not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(file, None, f"cannot read it ({exc.strerror})") from None
    for key in raw:
        if key not in _TOP_KEYS:
            raise ConfigError(file, key, f"unknown key; allowed: {', '.join(sorted(_TOP_KEYS))}")
    sides = {side: _side_ref(config, file, side, raw.get(side)) for side in SIDES}
    if sides["left"] == sides["right"]:
        raise ConfigError(file, "right", f"{sides['right']} is the same entity as left; a mapping pairs two "
                          "different entities (each sync would copy every record onto itself)")
    direction = _choice(file, "direction", raw.get("direction", "both"), DIRECTIONS)
    conflict = _choice(file, "conflict", raw.get("conflict", "newest"), POLICIES)
    tie_break = _choice(file, "tie_break", raw.get("tie_break", "manual"), TIE_BREAKS)
    on_delete = _choice(file, "on_delete", raw.get("on_delete", "unlink"), ON_DELETE)
    on_delete_conflict = _choice(file, "on_delete_conflict", raw.get("on_delete_conflict", "keep"), ON_DELETE_CONFLICT)
    country = _country(file, "phone_country", raw.get("phone_country", "RU"))
    fields_raw = raw.get("fields")
    if not isinstance(fields_raw, dict) or not fields_raw:
        raise ConfigError(file, "fields", "missing or empty; add a [fields] table, e.g. "
                          'email = { left = "email", right = "email[0]", normalize = "email" }')
    mapping = Mapping(name=path.stem, file=file, left=sides["left"], right=sides["right"],
                      direction=direction, conflict=conflict, tie_break=tie_break, on_delete=on_delete,
                      on_delete_conflict=on_delete_conflict, phone_country=country)
    for name, spec in fields_raw.items():
        mapping.fields[name] = _field(file, name, spec, mapping, known)
    _one_writer_per_key(mapping)
    match_on = raw.get("match_on", [])
    if not isinstance(match_on, list) or not all(isinstance(m, str) for m in match_on):
        raise ConfigError(file, "match_on", 'must be a list of field names, e.g. ["email"]')
    for name in match_on:
        fm = mapping.fields.get(name)
        if fm is None:
            raise ConfigError(file, "match_on", f"{name!r} is not a field of [fields] "
                              f"(fields: {', '.join(mapping.fields)})")
        if not fm.synced or fm.template is not None or len(fm.paths) != 2:
            raise ConfigError(file, "match_on", f"{name!r} must be a field present on both sides, "
                              "not a constant or a template")
    mapping.match_on = match_on
    mapping.external_id = _external_id(file, raw.get("external_id"))
    return mapping


def _external_id(file: str, value: Any) -> dict[str, str]:
    """``"cf_sync_id"`` (a field of the left side) or ``{ left = "…", right = "…" }``."""
    if value is None:
        return {}
    if isinstance(value, str) and value:
        return {"left": value}
    if isinstance(value, dict) and value and all(k in SIDES and isinstance(v, str) and v for k, v in value.items()):
        return dict(value)
    raise ConfigError(file, "external_id", 'a field name of the left side, e.g. "cf_sync_id", or '
                      '{ left = "cf_sync_id", right = "custom_sync_id" }')


def _side_ref(config: Config, file: str, side: str, value: Any) -> SideRef:
    if not isinstance(value, str) or value.count(":") != 1 or not all(value.split(":")):
        raise ConfigError(file, side, 'must name a system and an entity, e.g. "vt:Contacts"')
    system, entity = value.split(":")
    if system not in config.systems:
        raise ConfigError(file, side, f"unknown system {system!r} (configured in {config.path}: "
                          f"{', '.join(config.systems) or 'none'})")
    return SideRef(system, entity)


def _choice(file: str, key: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(file, key, f"{value!r} is not one of: {', '.join(allowed)}")
    return value


def _country(file: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or value.upper() not in COUNTRIES:
        raise ConfigError(file, key, f"{value!r} is not a country code; use an ISO 3166 code such as RU, KZ, BY, UA")
    return value.upper()


def _field(file: str, name: str, spec: Any, mapping: Mapping, known: set[str]) -> FieldMap:
    key = f"fields.{name}"
    if isinstance(spec, str):  # shorthand: name = "same_key_on_both_sides"
        spec = {"left": spec, "right": spec}
    if not isinstance(spec, dict):
        raise ConfigError(file, key, 'must be a table, e.g. { left = "email", right = "email[0]" }')
    for k in spec:
        if k not in _FIELD_KEYS:
            raise ConfigError(file, f"{key}.{k}", f"unknown key; allowed: {', '.join(sorted(_FIELD_KEYS))}")
    paths: dict[str, Path_] = {}
    for side in SIDES:
        if side in spec:
            path = Path_.parse(spec[side]) if isinstance(spec[side], str) else None
            if path is None:
                raise ConfigError(file, f"{key}.{side}", "must be a field name, optionally with a list "
                                  'index, e.g. "email" or "email[0]"')
            paths[side] = path
    fm = FieldMap(name=name, paths=paths, conflict=mapping.conflict, country=mapping.phone_country)
    fm.conflict = _choice(file, f"{key}.conflict", spec.get("conflict", mapping.conflict), POLICIES)
    fm.tie_break = _choice(file, f"{key}.tie_break", spec.get("tie_break", mapping.tie_break), TIE_BREAKS)
    if "normalize" in spec:
        fm.normalize = _choice(file, f"{key}.normalize", spec["normalize"], tuple(NORMALIZERS))
    if "type" in spec:
        fm.type = _choice(file, f"{key}.type", spec["type"], TYPES)
    if "country" in spec:
        fm.country = _country(file, f"{key}.country", spec["country"])
    for side in SIDES:
        fmt = spec.get(f"{side}_format")
        if fmt is not None:
            if not isinstance(fmt, str) or "%" not in fmt:
                raise ConfigError(file, f"{key}.{side}_format", 'must be a strftime format, e.g. "%d.%m.%Y"')
            fm.formats[side] = fmt
    special = [k for k in ("const", "template", "values", "ref") if k in spec]
    if len(special) > 1 and not set(special) <= {"values"}:
        raise ConfigError(file, key, f"{' and '.join(special)} cannot be combined; use one of them")
    mapping_dir = mapping.direction
    wanted = _choice(file, f"{key}.direction", spec.get("direction", mapping_dir), DIRECTIONS)
    if mapping_dir != "both" and wanted != mapping_dir:
        raise ConfigError(file, f"{key}.direction", f"the mapping flows {mapping_dir} only; "
                          f"a field cannot flow {wanted}")
    fm.direction = wanted

    if "const" in spec or "template" in spec:
        what = "const" if "const" in spec else "template"
        if len(paths) != 1:
            raise ConfigError(file, key, f"a {what} field names the one side it is written to "
                              f"(left = … or right = …), not both: a {what} cannot be synced both ways")
        target = next(iter(paths))
        if what == "const":
            fm.const = spec["const"]
            fm.direction = f"{other(target)}-to-{target}"
        else:
            if spec.get("direction") == "both":
                raise ConfigError(file, f"{key}.direction", "a template on a field synced both ways "
                                  "cannot be read back; templates flow one way")
            implied = f"{other(target)}-to-{target}"
            if wanted not in ("both", implied):
                raise ConfigError(file, f"{key}.direction", f"the template writes {target}, so it flows {implied}")
            if mapping_dir not in ("both", implied):
                raise ConfigError(file, key, f"the mapping flows {mapping_dir}; this template would write {target}")
            template = spec["template"]
            if not isinstance(template, str):
                raise ConfigError(file, f"{key}.template", 'must be a string such as "{firstname} {lastname}"')
            _check_template(file, f"{key}.template", template)
            fm.template = template
            fm.direction = implied
        return fm

    if len(paths) != 2:
        missing = "right" if "left" in paths else "left"
        raise ConfigError(file, f"{key}.{missing}", "missing; a synced field names its key on both sides "
                          "(or give const = … / template = … for a one-sided value)")
    if "values" in spec:
        fm.values = _value_map(file, f"{key}.values", spec["values"])
    if "ref" in spec:
        ref = spec["ref"]
        if not isinstance(ref, str) or ref not in known:
            raise ConfigError(file, f"{key}.ref", f"no mapping named {ref!r} "
                              f"(mappings: {', '.join(sorted(known)) or 'none'})")
        fm.ref = ref
    return fm


def _check_template(file: str, key: str, template: str) -> None:
    """Only plain ``{field}`` placeholders: positions, conversions, format specs and attribute
    lookups would fail (or read something else) only when a record is rendered."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(file, key, f"not a valid template ({exc}); write fields as {{name}}, "
                          "literal braces as {{ and }}") from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if not _PLACEHOLDER.match(name) or spec or conversion:
            written = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ConfigError(file, key, f"{written} is not a field placeholder; write fields as {{name}} "
                              "(no positions, !conversions, :formats or .attributes), literal braces as {{ and }}")


def _one_writer_per_key(mapping: Mapping) -> None:
    """Two fields writing one key of a side would overwrite each other on every sync."""
    for side in SIDES:
        writers: dict[str, list[tuple[str, int | None]]] = {}
        for name, fm in mapping.fields.items():
            if not (fm.flows_to(side) or (fm.is_const and side in fm.paths)):
                continue
            path = fm.paths[side]
            for earlier, index in writers.get(path.key, []):
                if index is None or path.index is None or index == path.index:
                    raise ConfigError(mapping.file, f"fields.{name}.{side}", f"{mapping.side(side)}.{path.key} "
                                      f"is also written by fields.{earlier}; two fields writing one key overwrite "
                                      "each other: remove one, or make one flow the other way (direction = …)")
            writers.setdefault(path.key, []).append((name, path.index))


def _value_map(file: str, key: str, values: Any) -> dict[str, Any]:
    """Left value -> right value; must be one-to-one so the way back is unambiguous."""
    if not isinstance(values, dict) or not values:
        raise ConfigError(file, key, 'must be a table of left value = right value, e.g. { "Hot" = 1, "Cold" = 2 }')
    seen: dict[str, str] = {}
    for left, right in values.items():
        if not isinstance(right, (str, int, float, bool)):
            raise ConfigError(file, f"{key}.{left}", "must be a string or a number")
        text = str(right)
        if text in seen:
            raise ConfigError(file, key, f"not one-to-one: {seen[text]!r} and {left!r} both map to "
                              f"{right!r}, so {right!r} could not be translated back")
        seen[text] = left
    return dict(values)
