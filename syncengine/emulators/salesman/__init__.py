"""SalesMan CRM's REST API v2 as a local server, one module per resource; see :mod:`.app`."""
from __future__ import annotations

from .app import ROUTES, SalesManApp, create_app

__all__ = ["ROUTES", "SalesManApp", "create_app"]
