"""``migrate``: a one-off copy from one CRM to another."""
from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from ..config import Config
from ..errors import UsageError
from ..jsonutil import dumps
from .base import console, err_console, handles_errors, needs_config


@click.command()
@click.option("--from", "source", required=True, metavar="SYSTEM:ENTITY", help="What to copy, e.g. vt:Contacts.")
@click.option("--to", "target", required=True, metavar="SYSTEM:ENTITY", help="Where to, e.g. alfa:customer.")
@click.option("--mapping", "mapping_file", type=click.Path(dir_okay=False), default=None,
              help="Mapping file (default: the one in mappings/ that pairs the two).")
@click.option("--dry-run", is_flag=True, help="Read both sides and report what would be copied; write nothing.")
@click.option("--report", "report_stem", type=click.Path(dir_okay=False), default=None,
              help="Write REPORT.csv and REPORT.json (default: ./migrate-RUN).")
@click.option("--workers", default=4, show_default=True, help="Concurrent writes per system.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@handles_errors
@needs_config
def migrate(config: Config, source: str, target: str, mapping_file: str | None, dry_run: bool,
            report_stem: str | None, workers: int, as_json: bool) -> None:
    """Copy a whole entity to another CRM, one way, with its references first.

    Safe to interrupt: run the same command again and it resumes without duplicates.
    Ctrl-C stops after the writes in flight.

    \b
    Example:
      syncengine migrate --from vt:Contacts --to alfa:customer --dry-run
      syncengine migrate --from vt:Contacts --to alfa:customer --report reports/contacts
    """

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from ..transfer import migrate as run_migrate
    from ..transfer import parse_side

    if workers < 1:
        raise UsageError("--workers must be at least 1")
    src, dst = parse_side(config, source, "--from"), parse_side(config, target, "--to")
    stop = threading.Event()

    def interrupted(*_: Any) -> None:
        stop.set()
        err_console.print("stopping after the writes in flight; run the same command again to resume")

    previous = signal.signal(signal.SIGINT, interrupted)
    reads: dict[str, Any] = {}
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=err_console,
                  transient=True, disable=as_json or not err_console.is_terminal) as progress:
        def read(system: str, entity: str, done: int) -> None:
            key = f"reading {system}:{entity}"
            if key not in reads:
                reads[key] = progress.add_task(key, total=None)
            progress.update(reads[key], completed=done)

        def write(target: str, done: int, total: int) -> None:
            key = f"writing {target}"
            if key not in reads:
                reads[key] = progress.add_task(key, total=total)
            progress.update(reads[key], completed=done, total=total)

        try:
            report = run_migrate(config, src, dst, mapping_file=mapping_file, dry_run=dry_run, workers=workers,
                                 read_progress=read, write_progress=write, should_stop=stop.is_set)
        finally:
            signal.signal(signal.SIGINT, previous)
    stem = Path(report_stem) if report_stem else Path(f"migrate-{report.run_id}")
    csv_path, json_path = report.write(stem)
    summary = report.as_dict()
    if as_json:
        click.echo(dumps({**summary, "report_csv": str(csv_path), "report_json": str(json_path)}))
    else:
        _print_migration(report, summary, csv_path, json_path)
    if not report.ok:
        sys.exit(1)


def _print_migration(report: Any, summary: dict[str, Any], csv_path: Any, json_path: Any) -> None:
    from rich.table import Table

    verb = "would copy" if report.dry_run else "copied"
    table = Table(title=f"{report.source} → {report.target}" + ("  (dry run: nothing written)" if report.dry_run
                                                                 else ""), title_justify="left", box=None)
    for column in ("mapping", "source", verb, "updated", "matched", "skipped", "failed", "in target"):
        table.add_column(column, justify="left" if column == "mapping" else "right")
    for m in summary["mappings"]:
        table.add_row(m["mapping"], str(m["source_records"]), str(m["copied"]), str(m["updated"]),
                      str(m["matched"]), str(m["skipped"]), str(m["failed"] + m["pending"]),
                      f"{m['in_target']}/{m['source_records']}")
    console.print(table)
    for failure in summary["failed"][:10]:
        err_console.print(f"[red]{failure['outcome']}[/red] {failure['mapping']} {failure['source_id']}: "
                          f"{escape(str(failure['reason']))}", highlight=False)
    if len(summary["failed"]) > 10:
        err_console.print(f"… and {len(summary['failed']) - 10} more in the report")
    if report.recovered:
        console.print(f"{report.recovered} write(s) of an interrupted run were found on the target and adopted")
    if report.stopped:
        console.print("[yellow]stopped before the end[/yellow]: run the same command again to resume")
    console.print(f"report: {csv_path} (every record), {json_path} (summary); {report.seconds:.1f}s")


