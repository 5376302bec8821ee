"""Two-way sync: ``plan``, ``apply``, ``sync``, ``undo``."""
from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape

from ..config import Config
from ..errors import UsageError
from ..jsonutil import dumps
from ..plan_text import plan_lines
from .base import console, err_console, handles_errors, needs_config

if TYPE_CHECKING:  # the engine is imported when a command runs: `--help` stays quick
    from ..plan import Plan


def summary_lines(plan: Plan) -> list[str]:
    """One line per mapping: what the sync does (``--verbose`` prints it field by field)."""
    lines: list[str] = []
    for name in plan.mappings:
        sides = plan.sides.get(name, {})
        actions = [a for a in plan.actions if a.mapping == name]
        writes = Counter((f"{a.system}:{a.entity}", a.op) for a in actions if a.calls_api)
        parts = [f"{n} {op} in {target}" for (target, op), n in sorted(writes.items())]
        counts = {"matched and linked": sum(1 for a in actions if a.op == "link" and a.link_id is None),
                  "conflict(s)": sum(1 for a in actions if a.op == "conflict"),
                  "record(s) parked": sum(1 for i in plan.issues if i.mapping == name)}
        parts += [f"{n} {what}" for what, n in counts.items() if n]
        lines.append(f"{name} ({sides.get('left')} ↔ {sides.get('right')}): {', '.join(parts) or 'nothing to do'}")
    return lines + [f"note: {n}" for n in plan.notes]


@contextmanager
def sync_progress(quiet: bool) -> Iterator[tuple[Callable[[str, str, int], None], Callable[[str, int, int], None]]]:
    """(read, write) callbacks drawing one transient line per entity on a terminal's stderr while
    a pull reads it and while the push writes to it; nothing when QUIET or not a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    tasks: dict[str, Any] = {}
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err_console, transient=True,
                  disable=quiet or not err_console.is_terminal) as progress:
        def line(key: str, done: int, total: int | None) -> None:
            if key not in tasks:
                tasks[key] = progress.add_task(key, total=total)
            progress.update(tasks[key], completed=done, total=total)

        def read(system: str, entity: str, done: int) -> None:
            line(f"reading {system}:{entity}", done, None)

        def write(target: str, done: int, planned: int) -> None:
            line(f"writing {target}", done, planned)

        yield read, write


def _print_plan(plan: Plan) -> None:
    for line in plan_lines(plan):
        style = {"+": "green", "-": "red", "~": "yellow", "!": "magenta", "?": "red"}.get(line.strip()[:1], "")
        console.print(f"[{style}]{escape(line)}[/{style}]" if style else escape(line))


@click.command("plan")
@click.argument("name", required=False)
@click.option("--out", type=click.Path(dir_okay=False), help="Save the plan for `syncengine apply FILE`.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--pull", "pull_first", is_flag=True, help="Pull both sides of the mappings first.")
@handles_errors
@needs_config
def plan_command(config: Config, name: str | None, out: str | None, as_json: bool, pull_first: bool) -> None:
    """Show every create / update / delete a sync would make, field by field; change nothing.

    NAME is a job or a mapping (default: every mapping in mappings/).

    \b
    Example:
      syncengine plan contacts --pull --out contacts.plan
      syncengine apply contacts.plan
    """
    from ..mapping import prepare_mirror, resolve_names
    from ..plan import make_plan
    from ..pull import pull

    prepared, mirror = prepare_mirror(config, resolve_names(config, name))  # a refused mapping makes no mirror
    if pull_first:
        targets = sorted({str(m.side(s)) for m, _ in prepared for s in ("left", "right")})
        pulled = pull(config, targets, mirror=mirror)
        if not pulled.ok:  # a plan from a mirror that could not be refreshed would show stale records
            for e in pulled.entities:
                if e.status != "ok":
                    err_console.print(f"[red]error:[/red] {e.system}:{e.entity}: {escape(e.message or e.status)}")
            sys.exit(1)
    plan = make_plan(mirror, prepared)
    if out:
        Path(out).write_bytes(plan.to_json())
    if as_json:
        click.echo(plan.to_json().decode())
    else:
        _print_plan(plan)
        if out:
            console.print(f"plan saved to {out}; carry it out with: syncengine apply {out}")


@click.command("apply")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--workers", default=4, show_default=True, help="Concurrent writes per system.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handles_errors
@needs_config
def apply_command(config: Config, file: str, workers: int, as_json: bool) -> None:
    """Carry out a saved plan exactly; refused if the mirror changed since it was made.

    A plan interrupted half-way (crash, kill) is resumed by applying it again.

    \b
    Example:
      syncengine plan --out today.plan && syncengine apply today.plan
    """
    from ..audit import cli_user, plan_applied
    from ..mirror import Mirror
    from ..push import apply_plan

    try:
        from ..plan import Plan

        plan = Plan.from_json(Path(file).read_bytes())
    except ValueError as exc:
        raise UsageError(f"{file}: {exc}") from None
    mirror = Mirror(config.mirror_url)
    with sync_progress(as_json) as (_, write):
        result = apply_plan(config, plan, mirror=mirror, workers=workers, progress=write)
    plan_applied(mirror, cli_user(), plan, result)
    _print_apply(result, as_json)


def _print_apply(result: Any, as_json: bool) -> None:
    info = result.as_dict()
    if as_json:
        click.echo(dumps(info, default=str))
    else:
        for target, ops in info["writes"].items():
            console.print(f"{target}: " + ", ".join(f"{n} {op}" for op, n in ops.items()))
        extra = f", {result.recovered} interrupted write(s) confirmed" if result.recovered else ""
        console.print(f"run {result.run_id}: {result.writes} write(s) in {result.seconds:.1f}s{extra}")
        _print_parked(result.failed)
        _print_not_sent(result)
    if result.failed or result.stale:
        sys.exit(1)


def _print_not_sent(result: Any) -> None:
    """Writes skipped because their target changed since the plan; fields stored other than sent."""
    for stale in result.stale:
        err_console.print(f"[yellow]not sent:[/yellow] {escape(stale['error'])}; sync or plan again")
    for notice in result.notices:
        err_console.print(f"[yellow]stored differently:[/yellow] {escape(notice)}")


def _print_parked(failed: list[dict[str, Any]], shown: int = 10) -> None:
    for failure in failed[:shown]:
        err_console.print(f"[red]parked:[/red] {escape(failure['error'])}")
    if len(failed) > shown:
        err_console.print(f"… and {len(failed) - shown} more parked; `syncengine status` counts them")


@click.command("sync")
@click.argument("name", required=False)
@click.option("--dry-run", is_flag=True, help="Pull and plan only; print the plan.")
@click.option("--full", is_flag=True, help="Re-read both sides completely first.")
@click.option("--workers", default=4, show_default=True, help="Concurrent writes per system.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("-v", "--verbose", is_flag=True, help="Print the plan field by field, not just a summary.")
@handles_errors
@needs_config
def sync_command(config: Config, name: str | None, dry_run: bool, full: bool, workers: int, as_json: bool,
                 verbose: bool) -> None:
    """Pull both sides, plan, apply: keep the mapped entities in step.

    NAME is a job or a mapping (default: every mapping in mappings/). Exits 1 when a side could
    not be read, deletes were held or writes were refused.

    \b
    Example:
      syncengine sync contacts
      syncengine sync nightly --dry-run
    """
    from ..mapping import resolve_names
    from ..sync import run_sync

    with sync_progress(as_json) as (read, write):
        result = run_sync(config, resolve_names(config, name), job=name if any(j.name == name for j in config.jobs)
                          else None, workers=workers, full=full, dry_run=dry_run, progress=read,
                          write_progress=write)
    if as_json:
        click.echo(result.plan.to_json().decode() if dry_run else dumps(result.as_dict(), default=str))
    else:
        if dry_run or verbose:
            _print_plan(result.plan)
        else:
            for line in summary_lines(result.plan):
                console.print(escape(line))
        if result.apply is not None:
            extra = f", {result.recovered} interrupted write(s) confirmed" if result.recovered else ""
            console.print(f"run {result.apply.run_id}: {result.apply.writes} write(s) "
                          f"in {result.apply.seconds:.1f}s{extra}")
            _print_parked(result.apply.failed)
            _print_not_sent(result.apply)
        for line in result.failed:
            err_console.print(f"[red]error:[/red] {escape(line)}")
    if not result.ok:
        sys.exit(1)


@click.command("undo")
@click.argument("run_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handles_errors
@needs_config
def undo_command(config: Config, run_id: int, as_json: bool) -> None:
    """Put back the values a sync run overwrote, and delete the records it created.

    Deleted records cannot be restored through the APIs; they are listed. The next sync will
    make the same changes again unless the cause (a mapping, an edit) is fixed first.

    \b
    Example:
      syncengine status            # find the run id
      syncengine undo 42
    """
    from ..undo import undo

    result = undo(config, run_id)
    if as_json:
        click.echo(dumps({"run": run_id, "restored": result.restored, "not_restored": result.not_restored,
                          "left_alone": result.left_alone}))
    else:
        console.print(f"run {run_id}: {len(result.restored)} write(s) undone")
        for line in result.not_restored:
            err_console.print(f"[red]not undone:[/red] {escape(line)}")
        for line in result.left_alone:
            err_console.print(f"[yellow]changed since:[/yellow] {escape(line)}")
    if result.not_restored or result.left_alone:
        sys.exit(1)


