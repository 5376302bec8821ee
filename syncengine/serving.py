"""Serving: the threaded HTTP server shapes (``http.server`` for emulators and webhooks, waitress for
the WSGI apps: console, metrics), and the health ``/healthz`` reports from the mirror's state.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import sqlalchemy as sa

from . import jsonutil
from .config import Config
from .deletes import UNDECIDED
from .mirror import Mirror
from .mirror.models import ConflictRow, CursorRow, HeldDeleteRow, ParkedRow, RunRow, utcnow


class BackgroundServer:
    """A ThreadingHTTPServer that serves in a background thread (``start``) or the foreground
    (``serve_forever``); a context manager in tests."""

    thread_name = "http"

    def __init__(self, handler: type[BaseHTTPRequestHandler], *, port: int = 0, host: str = "127.0.0.1"):
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self._serving = False

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        host = str(self._httpd.server_address[0])
        return f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{self.port}"

    def start(self):
        self._serving = True  # before the thread runs: a stop() right after start() must shut it down
        threading.Thread(target=self._httpd.serve_forever, daemon=True, name=self.thread_name).start()
        return self

    def serve_forever(self) -> None:
        self._serving = True
        self._httpd.serve_forever()

    def serve_until_interrupted(self) -> None:
        """Serve in the foreground until Ctrl-C, then close."""
        try:
            self.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def stop(self) -> None:
        if self._serving:
            self._httpd.shutdown()
            self._serving = False
        self._httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class WsgiServer:
    """A WSGI app under waitress (a production server: thread pool, request limits, no C build),
    served in a background thread."""

    def __init__(self, app: Callable[..., Any], *, host: str = "127.0.0.1", port: int = 0, threads: int = 4,
                 name: str = "wsgi"):
        from waitress.server import create_server

        self.name = name
        self._server: Any = create_server(app, host=host, port=port, threads=threads, ident="syncengine",
                                          clear_untrusted_proxy_headers=True)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    @property
    def url(self) -> str:
        host = str(self._server.effective_host)
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{self.port}"

    def start(self) -> WsgiServer:
        self._thread = threading.Thread(target=self._server.run, daemon=True, name=self.name)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listener and every connection inside the server's own loop (closing them from
        this thread would pull sockets from under its ``select``), then end the worker threads."""
        if self._thread is not None and self._thread.is_alive():
            try:
                self._server.trigger.pull_trigger(self._close_all)
            except OSError:  # the loop's wake-up pipe is closed already (seen once at a SIGTERM 0.1 s
                self._close_all()  # after start): nothing can wake the loop, close from here
            self._thread.join(timeout=5)
        else:
            self._close_all()
        self._server.task_dispatcher.shutdown()

    def _close_all(self) -> None:
        for channel in list(self._server._map.values()):
            channel.close()


# -- health ------------------------------------------------------------------------------------

_RECENT_PULLS = 500  # pull runs read back to find each entity's last good pull


@dataclass
class MirrorState:
    """What the mirror says about the sync's health: counts per mapping, last good pulls, job streaks."""

    parked: dict[str, int] = field(default_factory=dict)
    conflicts: dict[str, int] = field(default_factory=dict)
    held_deletes: dict[tuple[str, str], int] = field(default_factory=dict)  # (system, entity) -> undecided
    last_pulls: dict[tuple[str, str], datetime] = field(default_factory=dict)
    last_outcomes: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # the newest pull's entry
    failed_in_a_row: dict[str, tuple[int, str | None]] = field(default_factory=dict)  # job -> (runs, last error)
    now: datetime = field(default_factory=utcnow)

    def freshness_seconds(self) -> dict[tuple[str, str], float]:
        return {key: (self.now - at).total_seconds() for key, at in self.last_pulls.items()}


def mirror_state(config: Config, mirror: Mirror) -> MirrorState:
    state = MirrorState()
    with mirror.engine.connect() as conn:
        state.parked = dict(conn.execute(sa.select(ParkedRow.mapping, sa.func.count()).group_by(ParkedRow.mapping))
                            .tuples().all())
        state.conflicts = dict(conn.execute(sa.select(ConflictRow.mapping, sa.func.count()).where(
            ConflictRow.state == "open").group_by(ConflictRow.mapping)).tuples().all())
        state.held_deletes = {(system, entity): n for system, entity, n in conn.execute(
            sa.select(HeldDeleteRow.system, HeldDeleteRow.entity, sa.func.count()).where(
                HeldDeleteRow.state.in_(UNDECIDED)).group_by(HeldDeleteRow.system, HeldDeleteRow.entity))}
        state.last_pulls, state.last_outcomes = _last_pulls(conn)
        for job in config.jobs:
            state.failed_in_a_row[job.name] = _failed_in_a_row(conn, job.name, config.health.failed_runs)
    return state


def _last_pulls(conn: sa.Connection) -> tuple[dict[tuple[str, str], datetime],
                                                dict[tuple[str, str], dict[str, Any]]]:
    """When each entity was last pulled successfully: the newest pull run that read it without error
    (an entity with no such run among the recent ones: its cursor's last commit); and each entity's
    newest pull outcome (status, message, when)."""
    good: dict[tuple[str, str], datetime] = {}
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for finished_at, counts in conn.execute(sa.select(RunRow.finished_at, RunRow.counts).where(
            RunRow.kind == "pull", RunRow.finished_at.is_not(None)).order_by(RunRow.id.desc())
            .limit(_RECENT_PULLS)):
        for e in jsonutil.loads(counts or "{}").get("entities", []):
            key = (e["system"], e["entity"])
            newest.setdefault(key, {**e, "at": finished_at})
            if e.get("status") == "ok":
                good.setdefault(key, finished_at)
    for system, entity, updated_at in conn.execute(sa.select(CursorRow.system, CursorRow.entity,
                                                             CursorRow.updated_at)):
        good.setdefault((system, entity), updated_at)
    return good, newest


def _failed_in_a_row(conn: sa.Connection, job: str, limit: int) -> tuple[int, str | None]:
    """How many of the job's last LIMIT finished runs failed before the newest success, and the last error."""
    from .scheduler import JOB_RUN

    runs = conn.execute(sa.select(RunRow.status, RunRow.error).where(
        RunRow.kind == JOB_RUN, RunRow.job == job, RunRow.finished_at.is_not(None))
        .order_by(RunRow.id.desc()).limit(limit)).all()
    failed = 0
    for status, _ in runs:
        if status != "failed":
            break
        failed += 1
    return failed, runs[0].error if failed else None


def health_problems(config: Config, mirror: Mirror, *, alive: Callable[[], bool] = lambda: True,
                    state: MirrorState | None = None) -> list[str]:
    """Why ``/healthz`` should answer 503 (empty: healthy). See ``[health]`` in docs/operations.md."""
    problems = [] if alive() else ["the daemon is stopping"]
    state = state or mirror_state(config, mirror)
    limit = config.health.failed_runs
    for job, (failed, error) in sorted(state.failed_in_a_row.items()):
        if failed >= limit:
            problems.append(f"job {job}: the last {failed} runs failed ({error or 'no error recorded'})")
    stale = config.health.stale_after
    for (system, entity), seconds in sorted(state.freshness_seconds().items()):
        if seconds > stale.total_seconds():
            problems.append(f"{system}:{entity}: last successful pull {timedelta(seconds=int(seconds))} ago "
                            f"(stale after {stale})")
    return problems
