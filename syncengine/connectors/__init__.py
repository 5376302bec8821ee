"""One module per API family; :func:`connect` builds the connector a system's ``kind`` names."""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from ..http import HttpClient
from .base import Capture, ChangeBatch, Connector, EntitySchema, Field, SystemSettings

__all__ = [
    "KINDS",
    "Capture",
    "ChangeBatch",
    "Connector",
    "EntitySchema",
    "Field",
    "SystemSettings",
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


def connect(name: str, config: Mapping[str, Any]) -> Connector:
    """The connector for system NAME, configured by its validated ``[systems.NAME]`` table."""
    common = SystemSettings.of(config)
    http = HttpClient(name, rate_limit=common.rate_limit, timeout=common.timeout, retries=common.retries,
                      verify=common.verify_tls)
    return connector_class(common.kind)(name, config, http)
