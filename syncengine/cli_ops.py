"""Operations commands: ``daemon``, ``migrate`` and ``demo`` (registered on ``syncengine.cli.main``)."""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson
from rich.markup import escape

from .cli import console, err_console, handles_errors, main, needs_config
from .config import Config
from .errors import UsageError
from .redact import RedactingFilter


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message — for journald/Loki/ELK."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def setup_daemon_logging(log_format: str, verbose: int) -> None:
    """INFO by default (a daemon should say what it does); APScheduler's own lines only on errors."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name, level in (("syncengine", logging.DEBUG if verbose > 1 else logging.INFO),
                        ("apscheduler", logging.ERROR)):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False


# -- daemon ------------------------------------------------------------------------------------

@main.command()
@click.option("--job", "jobs", multiple=True, help="Run only this job (repeatable; default: every job).")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              help="Serve /healthz and Prometheus /metrics on 127.0.0.1:PORT.")
@click.option("--webhooks-port", type=click.IntRange(0, 65535), default=None,
              help="Receive SalesMan webhooks on PORT (see docs/operations.md).")
@click.option("--webhooks-host", default="127.0.0.1", show_default=True,
              help="Interface for the webhook receiver (public only behind a reverse proxy).")
@click.option("--log-format", type=click.Choice(["plain", "json"]), default="plain", show_default=True,
              help="Log lines as plain text or one JSON object a line.")
@click.pass_context
@handles_errors
@needs_config
def daemon(ctx: click.Context, config: Config, jobs: tuple[str, ...], metrics_port: int | None,
           webhooks_port: int | None, webhooks_host: str, log_format: str) -> None:
    """Run the [[jobs]] of sync.toml on their schedules until SIGTERM or Ctrl-C.

    A run never overlaps the previous run of the same job; with a PostgreSQL mirror, several
    daemons share the jobs and each run happens in exactly one of them. SIGTERM/SIGINT let the
    current batch commit, then exit 0 (a second signal exits at once).

    \b
    Example:
      syncengine daemon --metrics-port 9464 --log-format json
      curl -s 127.0.0.1:9464/metrics | grep syncengine_job_runs_total
    """
    from .metrics import MetricsServer
    from .scheduler import Daemon

    setup_daemon_logging(log_format, ctx.find_root().params.get("verbose") or 0)
    log = logging.getLogger("syncengine.daemon")
    if not config.jobs:
        raise UsageError(f"{config.path} has no [[jobs]]; add one with a name, cron or every, "
                         "and pull and/or mappings (see `syncengine init`)")
    runner = Daemon(config, jobs=list(jobs) or None)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if stop.is_set():
            log.warning("second %s: exiting now", signal.Signals(signum).name)
            os._exit(1)
        log.info("%s: finishing the current batch, then exiting", signal.Signals(signum).name)
        runner.stopping.set()
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    servers: list[Any] = []
    try:
        if metrics_port is not None:
            servers.append(_listen("--metrics-port", metrics_port,
                                   lambda: MetricsServer(runner.metrics, metrics_port, runner.healthy)))
            log.info("metrics on %s/metrics, health on %s/healthz", servers[-1].url, servers[-1].url)
        if webhooks_port is not None:
            from .webhooks import WebhookServer

            def hint(system: str, entity: str, ids: Any) -> None:
                runner.mirror.add_hints(system, entity, ids, source="webhook")

            servers.append(_listen("--webhooks-port", webhooks_port, lambda: WebhookServer(
                config, webhooks_port, host=webhooks_host, sink=hint)))
            log.info("SalesMan webhooks on %s", servers[-1].url)
        runner.start()
        log.info("daemon %s started with %d job(s)", runner.name, len(runner.jobs))
        while not stop.wait(1.0):
            pass
        runner.stop(wait=True)
        log.info("daemon stopped")
    finally:
        for server in servers:
            server.stop()


def _listen(option: str, port: int, make: Any) -> Any:
    try:
        return make().start()
    except OSError as exc:
        raise UsageError(f"{option} {port}: cannot listen ({exc.strerror}); pick another port") from None


# -- migrate -----------------------------------------------------------------------------------

@main.command()
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
    from pathlib import Path

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from .transfer import migrate as run_migrate
    from .transfer import parse_side

    if workers < 1:
        raise UsageError("--workers must be at least 1")
    src, dst = parse_side(config, source, "--from"), parse_side(config, target, "--to")
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: (stop.set(), err_console.print(
        "stopping after the writes in flight; run the same command again to resume")))
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
        click.echo(json.dumps({**summary, "report_csv": str(csv_path), "report_json": str(json_path)}))
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


# -- demo --------------------------------------------------------------------------------------

@main.command()
@click.option("--dir", "folder", type=click.Path(file_okay=False), default=None,
              help="Folder for the demo's config and mirror (default: a new temporary folder).")
@click.option("--records", default=40, show_default=True, type=click.IntRange(5, 5000),
              help="Sample contacts/customers in each emulator.")
@click.option("--keep-running", is_flag=True,
              help="Keep the emulators up until Ctrl-C, to try other commands on the demo config.")
@handles_errors
def demo(folder: str | None, records: int, keep_running: bool) -> None:
    """Try syncengine with nothing configured: bundled vtiger and Alfa CRM emulators, a SQLite mirror.

    Starts both emulators with Russian sample data, pulls them, syncs vtiger Contacts with
    Alfa customers, and prints where the mirror is and what to ask it.

    \b
    Example:
      syncengine demo
      syncengine demo --dir ./demo --keep-running   # then, in another shell:
      syncengine --config ./demo/sync.toml status
    """
    import time

    from rich.table import Table

    from .demo import QUERIES, run_demo, sample

    started = time.monotonic()
    err_console.print("starting the vtiger and Alfa CRM emulators, pulling and syncing…")
    result = run_demo(Path(folder) if folder else None, records)
    try:
        console.print(f"[bold]1. Two CRMs[/bold] (bundled emulators, sample Russian data): "
                      f"vtiger at {result.urls['vt']}, Alfa CRM at {result.urls['alfa']}; "
                      f"{len(result.shared)} people are in both.")
        table = Table(box=None, padding=(0, 1), pad_edge=False)
        for column, justify in (("pulled", "left"), ("records", "right"), ("table in the mirror", "left")):
            table.add_column(column, justify=justify)
        from .mirror import table_name
        for e in result.pulled.entities:
            table.add_row(f"{e.system}:{e.entity}", str(e.created + e.updated + e.unchanged),
                          table_name(e.system, e.entity))
        console.print("[bold]2. Pulled[/bold] both into a local SQL mirror "
                      f"({sum(result.pulled.requests.values())} API requests):")
        console.print(table)
        synced = result.synced
        written = synced.written
        links = sum(1 for a in synced.plan.actions if a.op == "link" and not a.link_id)
        console.print(f"[bold]3. Synced[/bold] vtiger Contacts ↔ Alfa customers (mappings/contacts.toml): "
                      f"{links} matched by e-mail and linked, "
                      f"{written.get('alfa', {}).get('create', 0)} created in Alfa CRM, "
                      f"{written.get('vt', {}).get('create', 0)} created in vtiger"
                      + ("" if synced.ok else " [red](with errors: see `syncengine status`)[/red]") + ".")
        console.print(f"\n[bold]The mirror[/bold] is an ordinary SQLite file: {result.mirror_path}")
        console.print(f"config: {result.config.path}   (syncengine --config {result.config.path} status)")
        console.print(f"\n[bold]Try these queries[/bold] (sqlite3 {result.mirror_path}, or any SQL tool):")
        for title, sql in QUERIES:
            console.print(f"\n-- {title}\n{sql}", highlight=False, soft_wrap=True)
        _, rows = sample(result.mirror_path, QUERIES[0][1])
        console.print("\nthe first one answers: " + "; ".join(f"{city} {count}" for city, count in rows))
        console.print(f"\ndone in {time.monotonic() - started:.1f}s.")
        if keep_running:
            console.print("emulators keep running; Ctrl-C stops them. Try: "
                          f"syncengine --config {result.config.path} daemon")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    finally:
        result.stop()
