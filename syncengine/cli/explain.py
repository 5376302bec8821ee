"""``explain``: where each synced value of a record came from."""
from __future__ import annotations

from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from ..config import Config
from ..jsonutil import dumps
from ..plan_text import show_value
from .base import console, handles_errors, needs_config


@click.command("explain")
@click.argument("target", metavar="SYSTEM:ENTITY")
@click.argument("remote_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handles_errors
@needs_config
def explain_command(config: Config, target: str, remote_id: str, as_json: bool) -> None:
    """Show, for each mapped field of a record, the value on every linked system, where it came
    from (the system it was typed into), when it was edited there, and which run wrote it — or
    "edited here" / "never synced". Read from the mirror only.

    \b
    Example:
      syncengine explain vt:Contacts 12x345
      syncengine explain alfa:customer 17 --json
    """
    from ..errors import UsageError
    from ..explain import explain, when
    from ..mirror import Mirror

    system, _, entity = target.partition(":")
    if not system or not entity:
        raise UsageError(f"{target!r}: name the record as SYSTEM:ENTITY ID, e.g. vt:Contacts 12x345")
    found = explain(config, Mirror(config.mirror_url), system, entity, remote_id)
    if as_json:
        click.echo(dumps(found))
        return
    if not found["links"]:
        console.print(f"{escape(target)} {escape(remote_id)} is in no mapping")
        return
    for link in found["links"]:
        left, right = (f"{s['system']}:{s['entity']} {s['id'] or '-'}" for s in (link["left"], link["right"]))
        console.print(f"[bold]{escape(link['mapping'])}[/bold] ({link['state']}): {escape(left)} ↔ {escape(right)}")
        table = Table(box=None, padding=(0, 1, 0, 2))
        for column in ("field", "on", "value", "from"):
            table.add_column(column, overflow="fold")
        for entry in link["fields"]:
            first = True
            for side in ("left", "right"):
                held = entry[side]
                if held is None:
                    continue
                table.add_row(entry["field"] if first else "", link[side]["system"],
                              escape(show_value(held["value"])), escape(_source(held, when)))
                first = False
        console.print(table)


def _source(held: dict[str, Any], when: Any) -> str:
    """``vt1:Contacts 5 lastname, edited 2026-12-02 15:00:10Z, run 7`` / ``edited here, …`` / ``never synced``."""
    origin = held["origin"]
    if held["status"] == "never synced":
        return "never synced"
    if origin is None:
        return f"edited here, {when(held['edited_at'])}"
    where = f"{origin['system']}:{origin['entity']} {origin['id']} {origin['path'] or ''}".rstrip() \
        if origin["system"] else "typed to settle a conflict"
    return f"{where}, edited {when(origin['edited_at'])}, run {origin['run']}"
