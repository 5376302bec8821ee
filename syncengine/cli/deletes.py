"""``deletes``: list the held-delete queue, approve or reject what it holds."""
from __future__ import annotations

import click
from rich.markup import escape
from rich.table import Table

from ..config import Config
from ..errors import UsageError
from ..jsonutil import dumps
from .base import console, handles_errors, needs_config


@click.group("deletes", invoke_without_command=True)
@click.option("--all", "show_all", is_flag=True, help="Include settled and released deletes.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handles_errors
def deletes_group(ctx: click.Context, show_all: bool, as_json: bool) -> None:
    """List deletes that wait: for a second look by the next pull, or for a person (mass-delete
    breaker, edit vs delete).

    \b
    Example:
      syncengine deletes
      syncengine deletes approve 4 5
      syncengine deletes approve --all
      syncengine deletes reject 6
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..config import load_config
    from ..deletes import list_deletes
    from ..mirror import Mirror

    config = load_config(ctx.find_root().obj["config_path"])
    rows = list_deletes(Mirror(config.mirror_url), everything=show_all)
    if as_json:
        click.echo(dumps(rows))
        return
    if not rows:
        console.print("no held deletes")
        return
    table = Table(box=None)
    for column in ("id", "record", "label", "reason", "state", "since", "links"):
        table.add_column(column)
    for r in rows:
        links = ", ".join(f"{link['mapping']} {link['left_id']}↔{link['right_id']}" for link in r["links"])
        table.add_row(str(r["id"]), escape(f"{r['system']}:{r['entity']} {r['remote_id']}"),
                      escape(str(r["label"] or "")), r["reason"], r["state"], r["first_seen"], escape(links))
    console.print(table)


@deletes_group.command("approve")
@click.argument("ids", type=int, nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Approve every delete that waits.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handles_errors
@needs_config
def deletes_approve(config: Config, ids: tuple[int, ...], everything: bool, as_json: bool) -> None:
    """The deletes are real: the next sync carries them out (on_delete), without waiting."""
    from ..audit import cli_user
    from ..deletes import approve
    from ..mirror import Mirror

    if not ids and not everything:
        raise UsageError("name the deletes to approve (ids from `syncengine deletes`) or pass --all")
    _report(approve(Mirror(config.mirror_url), ids, everything=everything, who=cli_user()), "approved", as_json,
            "the next sync carries them out")


@deletes_group.command("reject")
@click.argument("ids", type=int, nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handles_errors
@needs_config
def deletes_reject(config: Config, ids: tuple[int, ...], as_json: bool) -> None:
    """The deletes are wrong: nothing is deleted on the other side and the pairs are re-linked."""
    from ..audit import cli_user
    from ..deletes import reject
    from ..mirror import Mirror

    _report(reject(Mirror(config.mirror_url), ids, who=cli_user()), "rejected", as_json,
            "the next sync keeps their twins and links them again")


def _report(outcome: dict, state: str, as_json: bool, then: str) -> None:
    if as_json:
        click.echo(dumps(outcome))
    else:
        console.print(f"{len(outcome[state])} delete(s) {state}; {then}")
    if outcome["unknown"]:
        raise UsageError(f"no waiting delete with id {', '.join(map(str, outcome['unknown']))}; "
                         "`syncengine deletes` lists them")
