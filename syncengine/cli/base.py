"""The ``syncengine`` command group and what every command shares: errors, config, output."""
from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console

from .. import __version__
from ..config import load_config
from ..errors import SyncEngineError
from ..jsonutil import dumps
from ..redact import SECRETS, RedactingFilter

# soft_wrap: a line of text is never broken by us (a path or a command stays one piece to copy);
# tables still fit the terminal.
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
INTERRUPTED = "interrupted; run it again to continue"


def _setup_logging(verbose: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("syncengine")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)


def fail(message: str, code: int = 1) -> None:
    """One unwrapped line on stderr (scripts grep it), then exit; under ``--json`` also
    ``{"ok": false, "error": …, "exit_code": …}`` on stdout."""
    message = SECRETS.redact(message)
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.params.get("as_json"):
        click.echo(dumps({"ok": False, "error": message, "exit_code": code}))
    click.secho("error: ", fg="red", err=True, nl=False)
    click.echo(message, err=True)
    sys.exit(code)


def handles_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our typed errors into one line on stderr and the right exit code (2 = usage);
    Ctrl-C exits 130 saying how to go on (every command resumes where it stopped)."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SyncEngineError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            click.echo(INTERRUPTED, err=True)
            sys.exit(130)
    return wrapper


@contextmanager
def reading_progress(quiet: bool) -> Iterator[Callable[[str, str, int], None]]:
    """A transient line per entity on a terminal's stderr while a pull reads it (none when QUIET)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    tasks: dict[tuple[str, str], Any] = {}
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed} records"),
                  TimeElapsedColumn(), console=err_console, transient=True,
                  disable=quiet or not err_console.is_terminal) as progress:
        def report(system: str, entity: str, done: int) -> None:
            if (system, entity) not in tasks:
                tasks[(system, entity)] = progress.add_task(f"reading {system}:{entity}", total=None)
            progress.update(tasks[(system, entity)], completed=done)

        yield report


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

