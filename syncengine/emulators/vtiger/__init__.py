"""vtiger's webservice (and its forks SalesPlatform and Simply CRM) as a local server; see :mod:`.app`."""
from __future__ import annotations

from .app import ROUTES, VtigerApp, create_app
from .model import DIALECTS

__all__ = ["DIALECTS", "ROUTES", "VtigerApp", "create_app"]
