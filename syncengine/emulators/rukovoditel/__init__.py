"""Rukovoditel's ``/api/rest.php`` as a local server; see :mod:`.app`."""
from __future__ import annotations

from .app import ROUTES, RukovoditelApp, create_app

__all__ = ["ROUTES", "RukovoditelApp", "create_app"]
