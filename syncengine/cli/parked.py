"""``parked``: list, retry and ignore the records a sync could not carry."""
from __future__ import annotations

import sys

import click
from rich.markup import escape
from rich.table import Table

from ..config import Config
from ..jsonutil import dumps
from .base import console, err_console, handles_errors, needs_config


@click.group("parked", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handles_errors
def parked_group(ctx: click.Context, as_json: bool) -> None:
    """List the records a sync could not carry (ambiguous match, untranslatable value, refused
    write), with the reason, when first and last seen, and how many attempts.

    \b
    Example:
      syncengine parked
      syncengine parked retry 7      # after fixing the cause in the CRM
      syncengine parked ignore 8     # leave it alone until retried
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..config import load_config
    from ..mirror import Mirror
    from ..parked import parked_records

    config = load_config(ctx.find_root().obj["config_path"])
    rows = parked_records(Mirror(config.mirror_url))
    if as_json:
        click.echo(dumps(rows, default=str))
        return
    if not rows:
        console.print("no parked records")
        return
    table = Table(box=None)
    for column in ("id", "mapping", "record", "kind", "attempts", "first seen", "last seen", "reason"):
        table.add_column(column)
    for r in rows:
        table.add_row(str(r["id"]), r["mapping"], f"{r['side']} {escape(r['remote_id'])}", r["kind"],
                      str(r["attempts"]), str(r["first_seen"])[:16], str(r["last_seen"])[:16], escape(r["error"]))
    console.print(table)


@parked_group.command("retry")
@click.argument("parked_id", type=int)
@handles_errors
@needs_config
def parked_retry(config: Config, parked_id: int) -> None:
    """Sync the record's mapping now (both sides are pulled first); exit 1 if it is parked again.

    \b
    Example:
      syncengine parked retry 7
    """
    from ..audit import cli_user
    from ..parked import retry

    outcome = retry(config, parked_id, who=cli_user())
    if outcome.carried:
        console.print(f"parked {parked_id}: {outcome.mapping} {escape(outcome.record)} went through")
    else:
        err_console.print(f"[red]still parked:[/red] {escape(outcome.error or '')}", highlight=False)
        sys.exit(1)


@parked_group.command("ignore")
@click.argument("parked_id", type=int)
@handles_errors
@needs_config
def parked_ignore(config: Config, parked_id: int) -> None:
    """Leave the record alone: no write is planned for it until `parked retry ID`.

    \b
    Example:
      syncengine parked ignore 8
    """
    from ..audit import cli_user
    from ..mirror import Mirror
    from ..parked import ignore

    row = ignore(Mirror(config.mirror_url), parked_id, who=cli_user())
    console.print(f"parked {parked_id}: {row['mapping']} {row['side']} {escape(row['remote_id'])} is ignored "
                  f"until `syncengine parked retry {parked_id}`")
