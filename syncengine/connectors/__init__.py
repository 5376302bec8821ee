"""One module per API family; :func:`connect` builds the connector a system's ``kind`` names."""
from __future__ import annotations

import importlib
from typing import Any

from ..http import HttpClient
from .base import COMMON_SETTINGS, Capture, ChangeBatch, Connector, EntitySchema, Field, Setting

__all__ = [
    "COMMON_SETTINGS",
    "KINDS",
    "Capture",
    "ChangeBatch",
    "Connector",
    "EntitySchema",
    "Field",
    "Setting",
    "connect",
    "connector_class",
]

# kind -> "module:Class"; imported lazily so a config check does not import every connector
KINDS: dict[str, str] = {
    "vtiger": "syncengine.connectors.vtiger:VtigerConnector",
    "salesplatform": "syncengine.connectors.vtiger:SalesPlatformConnector",
    "simplycrm": "syncengine.connectors.vtiger:SimplyCrmConnector",
    "alfacrm": "syncengine.connectors.alfacrm:AlfaCrmConnector",
    "rukovoditel": "syncengine.connectors.rukovoditel:RukovoditelConnector",
    "salesman": "syncengine.connectors.salesman:SalesManConnector",
}


def connector_class(kind: str) -> type[Connector]:
    module, _, cls = KINDS[kind].partition(":")
    return getattr(importlib.import_module(module), cls)


def connect(name: str, config: dict[str, Any]) -> Connector:
    """The connector for system NAME, configured by its validated ``[systems.NAME]`` table."""
    http = HttpClient(name, rate_limit=config.get("rate_limit"), timeout=config.get("timeout", 30),
                      retries=config.get("retries", 5), verify=config.get("verify_tls", True))
    return connector_class(config["kind"])(name, config, http)
