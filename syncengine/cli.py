"""The ``syncengine`` command. Thin: parse, call, print."""
from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__
from .config import Config, load_config
from .errors import SyncEngineError, UsageError
from .redact import SECRETS, RedactingFilter
from .types import Capture

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


# -- init / check / discover ---------------------------------------------------------------

SAMPLE_CONFIG = '''\
# syncengine configuration. Secrets come from the environment: ${VAR}.
[mirror]
url = "sqlite:///syncengine.db"     # or postgresql+psycopg://user@host/dbname

[systems.vt]
kind = "vtiger"                     # vtiger | salesplatform | simplycrm | alfacrm | rukovoditel | salesman
url = "https://crm.example.com"
username = "sync-bot"
access_key = "${VT_ACCESS_KEY}"     # export VT_ACCESS_KEY=... (My Preferences → Access Key)
entities = ["Contacts", "Accounts"]

[[jobs]]
name = "nightly"
cron = "0 2 * * *"
pull = ["vt"]
'''


@main.command()
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.argument("path", type=click.Path(dir_okay=False), default="sync.toml")
@handles_errors
def init(path: str, force: bool) -> None:
    """Write a commented sync.toml to start from.

    \b
    Example:
      syncengine init && $EDITOR sync.toml
    """
    target = Path(path)
    if target.exists() and not force:
        raise UsageError(f"{path} already exists; pass --force to overwrite it")
    target.write_text(SAMPLE_CONFIG, encoding="utf-8")
    (target.parent / "mappings").mkdir(exist_ok=True)
    console.print(f"wrote {path}; edit it, export the secrets it names, then run: syncengine check")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@handles_errors
@needs_config
def check(config: Config, as_json: bool) -> None:
    """Validate sync.toml and log in to every system, one line each.

    \b
    Example:
      syncengine --config /etc/syncengine/sync.toml check
    """
    from .connectors import connect

    results = []
    for name, settings in config.systems.items():
        connector = connect(name, settings)
        try:
            results.append({"system": name, "ok": True, "detail": connector.check()})
        except SyncEngineError as exc:
            detail = getattr(exc, "detail", str(exc))
            results.append({"system": name, "ok": False, "detail": SECRETS.redact(detail)})
        finally:
            connector.close()
    if as_json:
        click.echo(json.dumps({"config": str(config.path), "systems": results}))
    else:
        console.print(f"config {config.path}: ok")
        width = max((len(r["system"]) for r in results), default=0)
        for r in results:
            mark = "[green]ok  [/green]" if r["ok"] else "[red]FAIL[/red]"
            console.print(f"{mark} {r['system']:<{width}}  {escape(r['detail'])}", soft_wrap=True)
    if not all(r["ok"] for r in results):
        sys.exit(1)


@main.command()
@click.argument("system")
@click.argument("entity", required=False)
@handles_errors
@needs_config
def discover(config: Config, system: str, entity: str | None) -> None:
    """List a system's entities, or one entity's fields.

    \b
    Example:
      syncengine discover vt              # entities
      syncengine discover vt Contacts     # fields, types, picklists
    """
    from .connectors import connect

    connector = connect(system, config.system(system))
    try:
        if entity is None:
            for name in connector.entities():
                console.print(name)
            return
        schema = connector.describe(entity)
        capture = CAPTURE_NOTES[connector.capture(entity)]
    finally:
        connector.close()
    table = Table(title=f"{system}:{entity} → table {_table_name(system, entity)}; changes: {capture}", box=None)
    for column in ("field", "type", "label", "required", "values / refers to"):
        table.add_column(column)
    for f in schema.fields:
        extra = ", ".join(v for v, _ in f.choices[:6]) + (" …" if len(f.choices) > 6 else "") \
            if f.choices else ", ".join(f.refers_to)
        table.add_row(f.name, f.type, escape(f.label), "yes" if f.mandatory else "", escape(extra))
    console.print(table)


CAPTURE_NOTES = {
    Capture.FEED: "read from the CRM's change feed, deletions included",
    Capture.INCREMENTAL: "polled by change time; deletions found by sweeps",
    Capture.SCAN: "no change feed: every pull scans, content hashes tell what changed",
}


def _table_name(system: str, entity: str) -> str:
    from .mirror import table_name
    return table_name(system, entity)


# -- pull / status -------------------------------------------------------------------------

@main.command()
@click.argument("targets", nargs=-1)
@click.option("--full", is_flag=True, help="Read everything again (ignore cursors) and sweep for deletions.")
@click.option("--sweep", is_flag=True, help="Sweep for deletions even if not due.")
@click.option("--allow-mass-delete", is_flag=True, help="Let a sweep delete more than max_delete_share.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@handles_errors
@needs_config
def pull(config: Config, targets: tuple[str, ...], full: bool, sweep: bool,
         allow_mass_delete: bool, as_json: bool) -> None:
    """Pull changes from CRMs into the mirror (all systems, or SYSTEM[:ENTITY] ...).

    \b
    Example:
      syncengine pull                    # every system, every configured entity
      syncengine pull vt:Contacts alfa   # one entity of vt, all of alfa
      syncengine pull vt --full          # re-read everything, sweep deletions
    """
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from .pull import pull as run_pull

    tasks: dict[tuple[str, str], Any] = {}
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed} records"),
                  TimeElapsedColumn(), console=err_console, transient=True,
                  disable=as_json or not err_console.is_terminal) as progress:
        def report(system: str, entity: str, done: int) -> None:
            key = (system, entity)
            if key not in tasks:
                tasks[key] = progress.add_task(f"{system}:{entity}", total=None)
            progress.update(tasks[key], completed=done)

        result = run_pull(config, list(targets) or None, full=full, sweep=sweep,
                          allow_mass_delete=allow_mass_delete, progress=report)
    if as_json:
        from dataclasses import asdict
        click.echo(json.dumps({"run": result.run_id, "ok": result.ok, "seconds": round(result.seconds, 3),
                               "requests": result.requests, "entities": [asdict(e) for e in result.entities]}))
    else:
        table = Table(box=None)
        for column in ("entity", "created", "updated", "deleted", "unchanged", "note"):
            table.add_column(column, justify="right" if column not in ("entity", "note") else "left")
        for e in result.entities:
            note = escape(e.message) if e.message else ("swept" if e.swept else "")
            style = "" if e.status == "ok" else "red"
            table.add_row(f"{e.system}:{e.entity}", str(e.created), str(e.updated), str(e.deleted),
                          str(e.unchanged), note, style=style)
        console.print(table)
        requests = ", ".join(f"{s} {n}" for s, n in result.requests.items())
        console.print(f"{sum(result.requests.values())} requests ({requests}) in {result.seconds:.1f}s")
    if not result.ok:
        for e in result.entities:
            if e.status != "ok":
                click.secho(f"{e.status}: ", fg="red", err=True, nl=False)
                click.echo(SECRETS.redact(e.message or ""), err=True)
        sys.exit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option("--runs", default=5, show_default=True, help="How many recent runs to show.")
@handles_errors
@needs_config
def status(config: Config, as_json: bool, runs: int) -> None:
    """Jobs and next runs, entities, parked records and conflicts, recent runs, at a glance.

    \b
    Example:
      syncengine status
      syncengine status --json | jq '.jobs[] | {name, next_run_at}'
    """
    from .status import collect

    info = collect(config, runs=runs)
    if as_json:
        click.echo(json.dumps(info, default=str))
        return
    console.print(f"mirror {info['mirror']}   (times UTC)", overflow="ellipsis", no_wrap=True)
    if info["jobs"]:
        table = _compact_table("jobs", ("job", 14), ("schedule", 16), ("next run", 11), ("last run", 11),
                               ("result", 8), ("secs", 6, "right"))
        for j in info["jobs"]:
            last = j["last_run"] or {}
            table.add_row(j["name"], j["schedule"], _short(j["next_run_at"]), _short(last.get("started_at")),
                          last.get("status", "-"), _secs(last.get("seconds")),
                          style="red" if last.get("status") == "failed" else "")
        console.print(table)
    table = _compact_table("entities", ("entity", 26), ("live", 8, "right"), ("deleted", 7, "right"),
                           ("last change", 11), ("last sweep", 11))
    for e in info["entities"]:
        table.add_row(e["target"], str(e["live"]), str(e["deleted"]), _short(e["cursor_at"]),
                      _short(e["last_sweep_at"]))
    console.print(table)
    if info["mappings"]:
        table = _compact_table("mappings", ("mapping", 20), ("links", 8, "right"), ("parked", 7, "right"),
                               ("conflicts", 9, "right"), ("failed writes", 13, "right"))
        for m in info["mappings"]:
            table.add_row(m["mapping"], str(m["links"]), str(m["parked"]), str(m["open_conflicts"]),
                          str(m["failed_writes"]), style="yellow" if m["parked"] or m["open_conflicts"] else "")
        console.print(table)
    table = _compact_table("recent runs", ("run", 5, "right"), ("kind", 5), ("job / target", 16),
                           ("started", 11), ("result", 8), ("secs", 6, "right"), ("error", 14))
    for r in info["runs"]:
        table.add_row(str(r["id"]), r["kind"], r["job"] or r["target"], _short(r["started_at"]), r["status"],
                      _secs(r["seconds"]), escape(r["error"] or ""), style="red" if r["status"] == "failed" else "")
    console.print(table)


def _compact_table(title: str, *columns: tuple[Any, ...]) -> Table:
    """A borderless table whose columns keep to their widths (status fits 80 columns)."""
    table = Table(title=title, title_justify="left", box=None, padding=(0, 1), pad_edge=False)
    for name, width, *justify in columns:
        table.add_column(name, max_width=width, no_wrap=True, overflow="ellipsis",
                         justify=justify[0] if justify else "left")
    return table


def _short(value: Any) -> str:
    """``2026-11-22 14:05`` → ``11-22 14:05``: enough to read, narrow enough to fit."""
    return str(value)[5:16] if value else "-"


def _secs(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else "-"


@main.command()
@click.option("--port", default=8765, show_default=True, help="Port to listen on.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 to accept SalesMan's calls from outside; put TLS in front).")
@handles_errors
@needs_config
def webhooks(config: Config, port: int, host: str) -> None:
    """Receive SalesMan webhooks as change hints; the next pull re-reads just those records.

    \b
    Example:
      syncengine webhooks --port 8765     # then register http://HOST:8765/SYSTEM in SalesMan
    """
    from .webhooks import WebhookServer

    try:
        server = WebhookServer(config, port, host)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from None
    if not server.receiver.systems:
        raise UsageError(f"{config.path}: no system of kind salesman is configured; webhooks have nowhere to go")
    for name in server.receiver.systems:
        click.echo(f"{name}: register {server.url}/{name} in SalesMan (Панель управления → Webhook)")
    server.serve_until_interrupted()


# -- db / emulate ------------------------------------------------------------------------

@main.group()
def db() -> None:
    """The mirror database."""


@db.command("upgrade")
@handles_errors
@needs_config
def db_upgrade(config: Config) -> None:
    """Apply the engine's schema migrations to the mirror (also done on first use).

    \b
    Example:
      syncengine db upgrade
    """
    from .mirror import db as mirror_db

    engine = mirror_db.create_engine(config.mirror_url)
    try:
        before, head = mirror_db.upgrade(engine)
    finally:
        engine.dispose()
    console.print(f"mirror at revision {head}" + (f" (was {before or 'empty'})" if before != head else " (up to date)"))


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("kind")
@click.option("--port", default=8000, show_default=True, help="Port on 127.0.0.1 (0 = any free port).")
@click.option("--records", default=1000, show_default=True, help="How many sample records to seed.")
@click.option("--name", default=None, help="System name in the printed TOML section (default: KIND).")
@click.option("--latency", default=0.0, help="Seconds added to every request.")
@click.option("--error-rate", default=0.0, help="Share of requests answered with HTTP 5xx.")
@click.option("--timeout-rate", default=0.0, help="Share of requests that hang, then drop.")
@click.option("--broken-json-rate", default=0.0, help="Share of answers cut in half.")
@click.option("--expire-rate", default=0.0, help="Share of requests before which sessions expire.")
@click.option("--rate-limit", default=0.0, help="Requests/second above which the server answers 429.")
@click.option("--seed", default=None, type=int, help="Random seed for the fault switches.")
@click.pass_context
@handles_errors
def emulate(ctx: click.Context, kind: str, port: int, records: int, name: str | None, latency: float,
            error_rate: float, timeout_rate: float, broken_json_rate: float, expire_rate: float,
            rate_limit: float, seed: int | None) -> None:
    """Serve a bundled CRM emulator on 127.0.0.1 until Ctrl-C.

    KIND is vtiger, salesplatform, simplycrm, alfacrm, rukovoditel or salesman. Emulator-specific
    options follow as --option-name VALUE (e.g. vtiger: --sync-broken true, --access-key KEY).

    \b
    Example:
      syncengine emulate vtiger --port 8081 --records 10000
      syncengine emulate salesplatform --error-rate 0.1 --sync-broken true
    """
    from . import emulators

    if kind not in emulators.EMULATORS:
        raise UsageError(f"no emulator for {kind!r}; choose one of: {', '.join(emulators.EMULATORS)}")
    options = _extra_options(kind, ctx.args)
    faults = emulators.Faults(latency=latency, error_rate=error_rate, timeout_rate=timeout_rate,
                              broken_json_rate=broken_json_rate, expire_rate=expire_rate,
                              rate_limit=rate_limit, seed=seed)
    app = emulators.create_app(kind, records, **options)
    try:
        server = emulators.EmulatorServer(app, port=port, faults=faults)
    except OSError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); pick another --port") from None
    click.echo(f"# {kind} emulator with {records} records on {server.url} (Ctrl-C stops it)")
    click.echo(f"# stats: {server.url}/__emulator__/stats")
    click.echo(app.toml_section(name or kind, server.url))
    sys.stdout.flush()
    server.serve_until_interrupted()


def _extra_options(kind: str, args: list[str]) -> dict[str, Any]:
    """``--access-key X --sync-broken true`` → typed keyword options of the emulator's create_app."""
    from . import emulators

    accepted = emulators.app_options(kind)
    options: dict[str, Any] = {}
    it = iter(args)
    for arg in it:
        if not arg.startswith("--"):
            raise UsageError(f"unexpected argument {arg!r}")
        key, _, value = arg[2:].partition("=")
        key = key.replace("-", "_")
        if key not in accepted:
            names = ", ".join("--" + k.replace("_", "-") for k in accepted) or "none"
            raise UsageError(f"the {kind} emulator has no option --{key.replace('_', '-')}; options: {names}")
        if not value:
            value = next(it, None)
            if value is None:
                raise UsageError(f"--{key.replace('_', '-')} needs a value")
        options[key] = _typed(value, accepted[key])
    return options


def _typed(value: str, default: Any) -> Any:
    if isinstance(default, bool) or (default is None and value.lower() in ("true", "false")):
        return value.lower() in ("1", "true", "yes", "on")
    for kind in (int, float):
        if isinstance(default, kind):
            return kind(value)
    return value


# The commands of the later stages register themselves on `main`.
from . import cli_ops, cli_sync  # noqa: E402,F401

if __name__ == "__main__":  # pragma: no cover
    # `python -m syncengine.cli` runs this file as __main__; the stage modules registered their
    # commands on the importable copy, so run that one.
    from syncengine.cli import main as _main

    _main()
