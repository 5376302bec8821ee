"""Faithful local HTTP servers of each CRM API (tests, benchmarks, ``syncengine demo``).

Each emulator module offers ``create_app(records=N, **options) -> EmulatorApp``; the keyword
options (credentials, dialect, defect switches) are exposed by ``syncengine emulate KIND --option``.
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any

from .base import EmulatorApp, EmulatorServer, Faults, Request, Response

__all__ = [
    "EMULATORS",
    "EmulatorApp",
    "EmulatorServer",
    "Faults",
    "Request",
    "Response",
    "app_options",
    "create_app",
    "start",
]

# kind -> (module, fixed options that select the dialect)
EMULATORS: dict[str, tuple[str, dict[str, Any]]] = {
    "vtiger": ("syncengine.emulators.vtiger", {"dialect": "v84"}),
    "salesplatform": ("syncengine.emulators.vtiger", {"dialect": "sp72"}),
    "simplycrm": ("syncengine.emulators.vtiger", {"dialect": "simplycrm"}),
    "alfacrm": ("syncengine.emulators.alfacrm", {}),
    "rukovoditel": ("syncengine.emulators.rukovoditel", {}),
    "salesman": ("syncengine.emulators.salesman", {}),
}


def _factory(kind: str):
    if kind not in EMULATORS:
        raise KeyError(f"no emulator for kind {kind!r}; known: {', '.join(EMULATORS)}")
    module, fixed = EMULATORS[kind]
    return importlib.import_module(module).create_app, fixed


def app_options(kind: str) -> dict[str, Any]:
    """The options ``create_app`` of KIND accepts, with their defaults."""
    create, fixed = _factory(kind)
    return {name: p.default for name, p in inspect.signature(create).parameters.items()
            if p.kind is p.KEYWORD_ONLY or (p.default is not p.empty and name not in fixed)}


def create_app(kind: str, records: int = 100, **options: Any) -> EmulatorApp:
    create, fixed = _factory(kind)
    return create(records=records, **{**fixed, **options})


def start(kind: str, records: int = 100, *, faults: Faults | None = None, port: int = 0,
          **options: Any) -> EmulatorServer:
    """Start an emulator in a background thread (tests, bench, demo); stop() it when done."""
    return EmulatorServer(create_app(kind, records, **options), port=port, faults=faults).start()
