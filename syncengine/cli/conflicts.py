"""``conflicts``: list and settle the conflicts a sync left."""
from __future__ import annotations

from typing import TYPE_CHECKING

import click
from rich.markup import escape
from rich.table import Table

from ..config import Config
from ..errors import UsageError
from ..jsonutil import dumps
from ..plan_text import show_value
from .base import console, handles_errors, needs_config

if TYPE_CHECKING:  # the engine is imported when a command runs: `--help` stays quick
    pass



@click.group("conflicts", invoke_without_command=True)
@click.option("--all", "show_all", is_flag=True, help="Include settled conflicts.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handles_errors
def conflicts_group(ctx: click.Context, show_all: bool, as_json: bool) -> None:
    """List fields both sides changed differently under a `manual` policy.

    \b
    Example:
      syncengine conflicts
      syncengine conflicts resolve 7 --take left
      syncengine conflicts resolve 8 --take value=+79161234567
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..config import load_config
    from ..conflicts import conflicts
    from ..mirror import Mirror

    config = load_config(ctx.find_root().obj["config_path"])
    rows = conflicts(Mirror(config.mirror_url), all_states=show_all)
    if as_json:
        click.echo(dumps(rows, default=str))
        return
    if not rows:
        console.print("no open conflicts")
        return
    table = Table(box=None)
    for column in ("id", "mapping", "left id", "right id", "field", "left", "right", "was", "state"):
        table.add_column(column)
    for r in rows:
        table.add_row(str(r["id"]), r["mapping"], str(r["left_id"]), str(r["right_id"]), r["field"],
                      *(escape(show_value(r[k])) for k in ("left", "right", "shadow")),
                      r["state"] + (f" → {escape(show_value(r['value']))}" if r["state"] == "resolved" else ""))
    console.print(table)


@conflicts_group.command("resolve")
@click.argument("conflict_id", type=int)
@click.option("--take", required=True, help="left, right, or value=TEXT (a JSON value is parsed as JSON).")
@handles_errors
@needs_config
def conflicts_resolve(config: Config, conflict_id: int, take: str) -> None:
    """Settle one conflict; the next sync writes the chosen value to both sides.

    \b
    Example:
      syncengine conflicts resolve 7 --take right
      syncengine conflicts resolve 7 --take 'value=ivan@example.com'
    """
    from ..audit import cli_user
    from ..conflicts import resolve_conflict, typed_value
    from ..mirror import Mirror

    if take in ("left", "right"):
        outcome = resolve_conflict(Mirror(config.mirror_url), conflict_id, take=take, who=cli_user())
    elif take.startswith("value="):
        outcome = resolve_conflict(Mirror(config.mirror_url), conflict_id, value=typed_value(take[len("value="):]),
                                   who=cli_user())
    else:
        raise UsageError("--take must be left, right or value=TEXT")
    console.print(f"conflict {conflict_id}: {outcome['field']} = {escape(show_value(outcome['value']))}; "
                  "the next sync writes it")
