"""Getting started: ``init``, ``check``, ``discover``."""
from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from ..config import Config
from ..errors import SyncEngineError, UsageError
from ..jsonutil import dumps
from ..redact import SECRETS
from ..types import Capture
from .base import console, handles_errors, needs_config

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


@click.command()
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


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@handles_errors
@needs_config
def check(config: Config, as_json: bool) -> None:
    """Validate sync.toml, log in to every system, and check every mapping and job against the
    systems' fields (exit 2 naming the file and key of the first problem).

    \b
    Example:
      syncengine --config /etc/syncengine/sync.toml check
    """
    from ..connectors import connect
    from ..mapping import check_all

    results: list[dict[str, Any]] = []
    for name, settings in config.systems.items():
        connector = connect(name, settings)
        try:
            results.append({"system": name, "ok": True, "detail": connector.check()})
        except SyncEngineError as exc:
            detail = getattr(exc, "detail", str(exc))
            results.append({"system": name, "ok": False, "detail": SECRETS.redact(detail)})
        finally:
            connector.close()
    reachable = all(r["ok"] for r in results)  # else describing would only log in again and fail
    mappings = check_all(config, describe=reachable)
    if as_json:
        click.echo(dumps({"config": str(config.path), "systems": results, "mappings": mappings}))
    else:
        console.print(f"config {config.path}: ok")
        width = max((len(r["system"]) for r in results), default=0)
        for r in results:
            mark = "[green]ok  [/green]" if r["ok"] else "[red]FAIL[/red]"
            console.print(f"{mark} {r['system']:<{width}}  {escape(r['detail'])}")
        if mappings:
            console.print(f"mappings {'ok' if reachable else 'read (not checked against the systems)'}: "
                          f"{', '.join(mappings)}")
    if not reachable:
        sys.exit(1)


@click.command()
@click.argument("system")
@click.argument("entity", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@handles_errors
@needs_config
def discover(config: Config, system: str, entity: str | None, as_json: bool) -> None:
    """List a system's entities, or one entity's fields.

    \b
    Example:
      syncengine discover vt              # entities
      syncengine discover vt Contacts     # fields, types, picklists
      syncengine discover vt Contacts --json | jq '.fields[].name'
    """
    from ..connectors import connect
    from ..mapping import describe

    connector = connect(system, config.system(system))
    try:
        if entity is None:
            entities = connector.entities()
            if as_json:
                click.echo(dumps({"system": system, "entities": entities}))
            for name in [] if as_json else entities:
                console.print(name)
            return
        schema = describe(connector, entity)
        capture = connector.capture(entity)
    finally:
        connector.close()
    if as_json:
        click.echo(dumps({"system": system, "entity": entity, "table": _table_name(system, entity),
                          "changes": capture.value, "fields": [asdict(f) for f in schema.fields]}))
        return
    table = Table(title=f"{system}:{entity} → table {_table_name(system, entity)}; "
                        f"changes: {CAPTURE_NOTES[capture]}", box=None)
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
    from ..mirror import table_name
    return table_name(system, entity)


