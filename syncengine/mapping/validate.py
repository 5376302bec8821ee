"""Checking a mapping against both systems' ``describe``, before anything runs."""
from __future__ import annotations

import difflib
import string

from ..errors import ConfigError
from ..types import EntitySchema
from .spec import Mapping

# Keys a record carries that describe does not list.
_IMPLICIT = {"id", "archived"}


def validate(mapping: Mapping, schemas: dict[str, EntitySchema]) -> None:
    """Refuse unknown fields, writes to read-only fields, a list paired with a single value without
    an index, templates naming unknown fields and value maps whose keys are not the picklist's values."""
    file = mapping.file
    for name, fm in mapping.fields.items():
        _list_needs_an_index(mapping, name, schemas)
        for side, path in fm.paths.items():
            schema = schemas[side]
            key = f"fields.{name}.{side}"
            described = schema.field(path.key)
            if described is None and path.key not in _IMPLICIT:
                close = difflib.get_close_matches(path.key, schema.field_names, n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise ConfigError(file, key, f"{mapping.side(side)} has no field {path.key!r}{hint}")
            if fm.flows_to(side) and (described is None or not described.editable):
                raise ConfigError(file, key, f"{mapping.side(side)}.{path.key} is read-only, so it cannot "
                                  f"be written; make the field flow the other way (direction = …)")
        if fm.template is not None and fm.source is not None:
            source = schemas[fm.source]
            for _, placeholder, _, _ in string.Formatter().parse(fm.template):
                if placeholder and placeholder not in source.field_names and placeholder not in _IMPLICIT:
                    raise ConfigError(file, f"fields.{name}.template", f"{{{placeholder}}} is not a field of "
                                      f"{mapping.side(fm.source)}")
        if fm.values is not None:
            described = schemas["left"].field(fm.paths["left"].key)
            choices = {value for value, _ in described.choices} if described else set()
            unknown = [k for k in fm.values if choices and k not in choices]
            if unknown:
                raise ConfigError(file, f"fields.{name}.values", f"{', '.join(map(repr, unknown))} "
                                  f"not among the picklist values of {mapping.left}.{fm.paths['left'].key} "
                                  f"({', '.join(sorted(choices)[:12])})")


def _list_needs_an_index(mapping: Mapping, name: str, schemas: dict[str, EntitySchema]) -> None:
    """A list (``json``) paired whole with a single value never compares equal: every sync would
    write it again (``[1, 1, 1, …]``). Name the element instead: ``email[0]``."""
    fm = mapping.fields[name]
    if len(fm.paths) < 2:
        return
    whole_list = {side: (described := schemas[side].field(path.key)) is not None and described.type == "json"
                  and path.index is None for side, path in fm.paths.items()}
    scalar = {side: (described := schemas[side].field(path.key)) is None or described.type != "json"
              for side, path in fm.paths.items()}
    for side, other_side in (("left", "right"), ("right", "left")):
        if whole_list[side] and scalar[other_side]:
            key = fm.paths[side].key
            raise ConfigError(mapping.file, f"fields.{name}.{side}", f"{mapping.side(side)}.{key} is a list and "
                              f"{mapping.side(other_side)}.{fm.paths[other_side].key} a single value; name one "
                              f'element, e.g. {side} = "{key}[0]"')
