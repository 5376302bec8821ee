"""The ``syncengine`` command group and what every command shares: errors, config, output."""
from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console

from .. import __version__
from ..config import load_config
from ..errors import SyncEngineError
from ..jsonutil import dumps
from ..redact import SECRETS, RedactingFilter

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def _setup_logging(verbose: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("syncengine")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)


def fail(message: str, code: int = 1) -> None:
    """One unwrapped line on stderr (scripts grep it), then exit."""
    click.secho("error: ", fg="red", err=True, nl=False)
    click.echo(SECRETS.redact(message), err=True)
    sys.exit(code)


def handles_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our typed errors into one line on stderr and the right exit code (2 = usage)."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SyncEngineError as exc:
            fail(str(exc), exc.exit_code)
    return wrapper


def needs_config(func: Callable[..., Any]) -> Callable[..., Any]:
    """Load and validate sync.toml before the command runs; pass it as ``config``."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        path = click.get_current_context().find_root().obj["config_path"]
        return func(*args, config=load_config(path), **kwargs)
    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Config file (default: $SYNCENGINE_CONFIG or ./sync.toml).")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(__version__, prog_name="syncengine")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """Pull CRMs into a local SQL mirror and keep them in step.

    \b
    Example:
      syncengine demo                 # try it: bundled emulators + SQLite
      syncengine check                # can every system in sync.toml be reached?
      syncengine pull vt:Contacts     # pull one entity into the mirror
    """
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path
    _setup_logging(verbose)


def show_value(value: Any) -> str:
    """A field value as one token in a plan or conflict line: ∅ for none, JSON otherwise."""
    if value is None:
        return "∅"
    return dumps(value)
