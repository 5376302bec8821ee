"""``syncengine ui``: the operator's console on its own (the daemon serves it too when sync.toml has [ui])."""
from __future__ import annotations

import time

import click

from ..config import Config, UiSettings
from .base import console, handles_errors, needs_config


@click.command("ui")
@click.option("--bind", default=None, help="Address to listen on (default: [ui] bind, else 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port (default: [ui] port, else 8470).")
@handles_errors
@needs_config
def ui(config: Config, bind: str | None, port: int | None) -> None:
    """Serve the operator's console (overview, runs, parked records, conflicts, held deletes,
    mappings) until Ctrl-C. Beyond loopback it needs [ui] password.

    \b
    Example:
      export SYNCENGINE_UI_PASSWORD=…   # sync.toml: [ui] password = "${SYNCENGINE_UI_PASSWORD}"
      syncengine ui                    # then open http://127.0.0.1:8470
    """
    from ..console import start_console

    settings = config.ui or UiSettings()
    settings = UiSettings(bind=bind or settings.bind, port=settings.port if port is None else port,
                          password=settings.password)
    server = start_console(config, settings)
    console.print(f"console on {server.url} (Ctrl-C stops it)"
                  + ("" if settings.password else "; no [ui] password: anyone on this machine can use it"))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
