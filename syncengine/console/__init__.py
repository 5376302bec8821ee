"""The operator's console: a small Flask app served by waitress (``syncengine ui``, or beside the
daemon), over the same functions the CLI calls."""
from .app import create_app, start_console

__all__ = ["create_app", "start_console"]
