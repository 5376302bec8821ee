"""The audit trail of operator actions (retry, ignore, resolve, approve…), kept in the run history.

The console and the CLI call :func:`record` alike, so ``runs`` says who did what, and when, whichever
way it was done.
"""
from __future__ import annotations

import getpass
import os
from typing import Any

from .mirror import Mirror

ACTION_RUN = "action"  # runs.kind of an operator action


def cli_user() -> str:
    """Who runs a CLI command: the OS user, as the shell knows it."""
    try:
        return f"{getpass.getuser()}@cli"
    except (KeyError, OSError):  # no passwd entry (a container's numeric uid)
        return f"uid {os.getuid()}@cli"


def record(mirror: Mirror, who: str, action: str, subject: str, *, ok: bool = True,
           detail: dict[str, Any] | None = None, error: str | None = None) -> int:
    """One finished ``action`` run: WHO did ACTION (e.g. ``parked retry``) to SUBJECT (e.g. ``parked 7``)."""
    run_id = mirror.start_run(ACTION_RUN, f"{action} {subject}")
    mirror.finish_run(run_id, "ok" if ok else "failed",
                      {"who": who, "action": action, "subject": subject, **(detail or {})}, error)
    return run_id


def plan_applied(mirror: Mirror, who: str, plan: Any, result: Any) -> int:
    """``apply`` of a saved plan (the CLI's file or the console's "plan now"): who carried it out."""
    return record(mirror, who, "plan apply", f"plan {plan.id} ({', '.join(plan.mappings)})", ok=result.ok,
                  detail={"sync_run": result.run_id, "writes": result.writes})
