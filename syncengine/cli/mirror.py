"""The mirror: ``pull``, ``status``, ``db upgrade``."""
from __future__ import annotations

import sys
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from ..config import Config
from ..jsonutil import dumps
from ..redact import SECRETS
from .base import console, handles_errors, needs_config, reading_progress


@click.command()
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
    from ..pull import pull as run_pull

    with reading_progress(as_json) as report:
        result = run_pull(config, list(targets) or None, full=full, sweep=sweep,
                          allow_mass_delete=allow_mass_delete, progress=report)
    if as_json:
        from dataclasses import asdict
        click.echo(dumps({"run": result.run_id, "ok": result.ok, "seconds": round(result.seconds, 3),
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
        for change in (c for e in result.entities for c in e.schema_changes):
            console.print(f"schema change: {escape(change)}")
        requests = ", ".join(f"{s} {n}" for s, n in result.requests.items())
        console.print(f"{sum(result.requests.values())} requests ({requests}) in {result.seconds:.1f}s")
    if not result.ok:
        for e in result.entities:
            if e.status != "ok":
                click.secho(f"{e.status}: ", fg="red", err=True, nl=False)
                click.echo(SECRETS.redact(e.message or ""), err=True)
        sys.exit(1)


@click.command()
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
    from ..status import collect

    info = collect(config, runs=runs)
    if as_json:
        click.echo(dumps(info, default=str))
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
    for r in info["runs"]:
        for change in r["schema_changes"]:
            console.print(f"run {r['id']} schema change: {escape(change)}")


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




@click.group()
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
    from ..mirror import db as mirror_db

    engine = mirror_db.create_engine(config.mirror_url)
    try:
        before, head = mirror_db.upgrade(engine)
    finally:
        engine.dispose()
    console.print(f"mirror at revision {head}" + (f" (was {before or 'empty'})" if before != head else " (up to date)"))


