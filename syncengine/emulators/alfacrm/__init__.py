"""Alfa CRM's ``/v2api`` as a local server; see :mod:`.app`."""
from __future__ import annotations

from .app import ROUTES, AlfaApp, create_app

__all__ = ["ROUTES", "AlfaApp", "create_app"]
