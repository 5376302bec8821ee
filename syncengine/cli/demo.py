"""``demo``: bundled emulators, a SQLite mirror, a real sync."""
from __future__ import annotations

from pathlib import Path

import click

from .base import console, err_console, handles_errors


@click.command()
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

    from ..demo import QUERIES, run_demo, sample

    started = time.monotonic()
    err_console.print("starting the vtiger and Alfa CRM emulators, pulling and syncing…")
    result = run_demo(Path(folder) if folder else None, records)
    try:
        console.print(f"[bold]1. Two CRMs[/bold] (bundled emulators, sample Russian data): "
                      f"vtiger at {result.urls['vt']}, Alfa CRM at {result.urls['alfa']}; "
                      f"{len(result.shared)} people are in both.")
        table = Table(box=None, padding=(0, 1), pad_edge=False)
        table.add_column("pulled")
        table.add_column("records", justify="right")
        table.add_column("table in the mirror")
        from ..mirror import table_name
        for e in result.pulled.entities:
            table.add_row(f"{e.system}:{e.entity}", str(e.created + e.updated + e.unchanged),
                          table_name(e.system, e.entity))
        console.print("[bold]2. Pulled[/bold] both into a local SQL mirror "
                      f"({sum(result.pulled.requests.values())} API requests):")
        console.print(table)
        synced = result.synced
        assert synced is not None, "run_demo always syncs"
        written = synced.written
        links = sum(a.op == "link" and not a.link_id for a in synced.plan.actions)
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
