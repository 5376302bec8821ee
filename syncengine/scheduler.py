"""``syncengine daemon``: APScheduler runs the ``[[jobs]]`` of sync.toml on their schedules.

A run of a job pulls its ``pull`` targets, then syncs its ``mappings``. Three guards keep each
scheduled run happening once:

* in one daemon, APScheduler's ``max_instances=1`` and ``coalesce``: a run still going when the
  next is due makes that one skip, never overlap;
* across daemons, a lock per job held for the whole run: a PostgreSQL advisory lock
  (``pg_try_advisory_lock``) on a shared mirror, a ``flock``-ed file beside a SQLite mirror;
* under that lock, the ``runs`` table: a daemon whose timer fires a little late finds that another
  daemon already ran this occurrence and skips it. Interval jobs are aligned to the Unix epoch so
  every daemon agrees on the occurrences (``every = "15m"`` fires at :00, :15, :30, :45).

A stop request (SIGTERM, SIGINT) lets the current batch commit, then the run ends as ``stopped``.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from .config import Config, Job
from .errors import ConnectorError
from .metrics import Metrics
from .mirror import Locks, Mirror
from .mirror.models import RunRow

if TYPE_CHECKING:
    from .pull import PullResult

log = logging.getLogger("syncengine.daemon")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
JOB_RUN = "job"  # runs.kind of a whole job run (its pull and sync runs carry the job name too)


# -- schedules ---------------------------------------------------------------------------------

def trigger_for(job: Job) -> BaseTrigger:
    """The job's APScheduler trigger; interval triggers start at the epoch so daemons agree."""
    if job.cron:
        return CronTrigger.from_crontab(job.cron)
    if job.every:
        return IntervalTrigger(seconds=job.every.total_seconds(), start_date=EPOCH, timezone=UTC)
    raise ValueError(f"job {job.name} has neither cron nor every")


def next_run(job: Job, after: datetime | None = None) -> datetime | None:
    """When the job runs next (aware datetime), or None for a job without a schedule."""
    if not (job.cron or job.every):
        return None
    now = after or datetime.now(UTC)
    return trigger_for(job).get_next_fire_time(None, now)


def current_occurrence(trigger: BaseTrigger, now: datetime) -> tuple[datetime, timedelta]:
    """The latest fire time at or before NOW, and the gap to the one after it."""
    for lookback in (timedelta(minutes=1), timedelta(hours=1), timedelta(days=1), timedelta(days=32),
                     timedelta(days=367)):
        fire = trigger.get_next_fire_time(None, now - lookback)
        if fire is not None and fire <= now:
            while True:
                following = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
                if following is None or following > now:
                    return fire, (following - fire) if following else lookback
                fire = following
    return now, timedelta(days=1)


# -- running a job -----------------------------------------------------------------------------

@dataclass
class JobOutcome:
    job: str
    status: str                      # ok | warning | failed | stopped | skipped
    reason: str | None = None        # why skipped: locked | done
    run_id: int | None = None
    seconds: float = 0.0
    pulled: dict[str, int] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    error: str | None = None


class Daemon:
    """The scheduler, the locks and the metrics of one ``syncengine daemon`` process."""

    def __init__(self, config: Config, *, mirror: Mirror | None = None, metrics: Metrics | None = None,
                 jobs: list[str] | None = None, name: str | None = None):
        self.config = config
        self.jobs = [config.job(j) for j in jobs] if jobs else list(config.jobs)
        self._check_mappings(mirror)  # a broken mapping refuses the start, before the mirror is created
        self.mirror = mirror or Mirror(config.mirror_url)
        self.metrics = metrics or Metrics()
        self.locks = Locks(self.mirror)
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.stopping = threading.Event()
        self.scheduler = BackgroundScheduler(job_defaults={  # cron: the machine's local time
            "max_instances": 1, "coalesce": True, "misfire_grace_time": None})
        self.scheduler.add_listener(self._on_skipped, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)

    def _check_mappings(self, mirror: Mirror | None) -> None:
        """The jobs' mappings must exist and fit both sides' describe; a CRM that cannot be asked
        now is no reason to refuse the start (the first run will say so)."""
        from .mapping import check_all

        try:
            check_all(self.config, [job.name for job in self.jobs], mirror=mirror)
        except ConnectorError as exc:
            log.warning("the jobs' mappings could not be checked against the CRMs now: %s", exc)

    def start(self) -> None:
        for job in self.jobs:
            if not (job.cron or job.every):
                log.warning("job %s has neither cron nor every, so the daemon leaves it alone; "
                            "add one, or run it by hand: syncengine sync %s", job.name, job.name)
                continue
            self.scheduler.add_job(self.run_job, trigger_for(job), args=[job], id=job.name, name=job.name)
            self.metrics.set("syncengine_job_running", 0, job=job.name)
        self.metrics.set("syncengine_up", 1)
        self.metrics.set("syncengine_daemon_start_time_seconds", time.time())
        self.scheduler.start()
        for scheduled in self.scheduler.get_jobs():
            log.info("job %s: next run %s", scheduled.id, scheduled.next_run_time.isoformat())

    def stop(self, wait: bool = True) -> None:
        """Ask running jobs to stop after their current batch; with ``wait``, wait for them."""
        self.stopping.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)
        self.metrics.set("syncengine_up", 0)

    def healthy(self) -> bool:
        return self.scheduler.running and not self.stopping.is_set()

    def run_job(self, job: Job, *, scheduled: bool = True) -> JobOutcome:
        """Run JOB once here unless another daemon holds it or already ran this occurrence."""
        if self.stopping.is_set():
            return JobOutcome(job.name, "skipped", reason="stopping")
        with self.locks.hold(f"job:{job.name}") as got:
            if not got:
                log.info("job %s: running in another daemon; skipped here", job.name)
                return self._skipped(job, "locked")
            if scheduled and self._already_ran(job):
                log.info("job %s: this run was already made by another daemon; skipped here", job.name)
                return self._skipped(job, "done")
            return self._run(job)

    def _already_ran(self, job: Job) -> bool:
        if not (job.cron or job.every):
            return False
        now = datetime.now(UTC)
        fire, gap = current_occurrence(trigger_for(job), now)
        tolerance = min(gap / 4, timedelta(seconds=30))  # clocks of several machines differ a little
        since = (fire - tolerance).astimezone(UTC).replace(tzinfo=None)
        with self.mirror.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(RunRow).where(
                RunRow.kind == JOB_RUN, RunRow.job == job.name, RunRow.started_at >= since)).scalar_one() > 0

    def _skipped(self, job: Job, reason: str) -> JobOutcome:
        self.metrics.inc("syncengine_job_skipped_total", job=job.name, reason=reason)
        return JobOutcome(job.name, "skipped", reason=reason)

    def _on_skipped(self, event: JobExecutionEvent) -> None:
        reason = "overlap" if event.code == EVENT_JOB_MAX_INSTANCES else "missed"
        log.warning("job %s: %s", event.job_id, "the previous run is still going; this one is skipped"
                    if reason == "overlap" else "missed its time; skipped")
        self.metrics.inc("syncengine_job_skipped_total", job=event.job_id, reason=reason)

    def _run(self, job: Job) -> JobOutcome:
        target = " ".join(job.pull + [f"mapping:{m}" for m in job.mappings])
        outcome = JobOutcome(job.name, "ok")
        outcome.run_id = self.mirror.start_run(JOB_RUN, target or "-", job.name)
        started = time.monotonic()
        self.metrics.set("syncengine_job_running", 1, job=job.name)
        log.info("job %s: run %d started", job.name, outcome.run_id)
        try:
            targets = pull_targets(self.config, job)
            pulled = self._pull(job, targets, outcome) if targets else None
            if job.mappings and not self.stopping.is_set():
                self._sync(job, outcome, pulled)
            if self.stopping.is_set() and outcome.status == "ok":
                outcome.status = "stopped"
        except Exception as exc:  # one failed run must not end the daemon
            outcome.status, outcome.error = "failed", str(exc) or type(exc).__name__
            log.error("job %s: run %d failed: %s", job.name, outcome.run_id, outcome.error)
        finally:
            outcome.seconds = time.monotonic() - started
            self.mirror.finish_run(outcome.run_id, outcome.status, {
                "daemon": self.name, "seconds": round(outcome.seconds, 3), "pulled": outcome.pulled,
                "written": outcome.written}, outcome.error)
            self._count(job, outcome)
        log.info("job %s: run %d %s in %.1fs (pulled %s, written %s)", job.name, outcome.run_id,
                 outcome.status, outcome.seconds, _summary(outcome.pulled), _summary(outcome.written))
        return outcome

    def _pull(self, job: Job, targets: list[str], outcome: JobOutcome) -> PullResult:
        from .pull import pull

        result = pull(self.config, targets, mirror=self.mirror, job=job.name,
                      should_stop=self.stopping.is_set)
        for e in result.entities:
            for change in ("created", "updated", "deleted", "unchanged"):
                count = getattr(e, change)
                outcome.pulled[change] = outcome.pulled.get(change, 0) + count
                self.metrics.inc("syncengine_records_pulled_total", count, system=e.system,
                                 entity=e.entity, change=change)
        self._count_http(result.requests, result.errors)
        if not result.ok:  # an entity that could not be read, or a sweep whose deletes were held
            outcome.status = "failed"
            outcome.error = "; ".join(f"{e.system}:{e.entity}: {e.message}" for e in result.entities
                                      if e.status != "ok")
            log.error("job %s: %s", job.name, outcome.error)
        return result

    def _sync(self, job: Job, outcome: JobOutcome, pulled: PullResult | None) -> None:
        from .sync import run_sync

        result = run_sync(self.config, job.mappings, mirror=self.mirror, job=job.name, pulled=pulled,
                          should_stop=self.stopping.is_set, pull_first=False)  # the job's pull read both sides
        for system, ops in result.written.items():
            for op, count in ops.items():
                outcome.written[op] = outcome.written.get(op, 0) + count
                self.metrics.inc("syncengine_records_written_total", count, system=system, op=op)
        self._count_http(result.requests, {})
        if result.failed:
            outcome.status = "failed"
            outcome.error = outcome.error or "; ".join(result.failed)
        elif not result.ok and outcome.status == "ok":
            outcome.status = "warning"  # some writes were refused: their records are parked

    def _count_http(self, requests: dict[str, int], errors: dict[str, dict[str, int]]) -> None:
        for system, count in requests.items():
            self.metrics.inc("syncengine_http_requests_total", count, system=system)
        for system, kinds in errors.items():
            for kind, count in kinds.items():
                self.metrics.inc("syncengine_http_errors_total", count, system=system, error=kind)

    def _count(self, job: Job, outcome: JobOutcome) -> None:
        m = self.metrics
        m.set("syncengine_job_running", 0, job=job.name)
        m.inc("syncengine_job_runs_total", job=job.name, status=outcome.status)
        m.set("syncengine_job_last_duration_seconds", round(outcome.seconds, 3), job=job.name)
        if outcome.status == "failed":
            m.inc("syncengine_job_failures_total", job=job.name)
        elif outcome.status in ("ok", "warning"):
            m.set("syncengine_job_last_success_timestamp_seconds", time.time(), job=job.name)


def pull_targets(config: Config, job: Job) -> list[str]:
    """The job's ``pull`` targets, plus both sides of its mappings that those do not cover, so one
    pull per run reads everything the sync compares."""
    targets = list(job.pull)
    if not job.mappings:
        return targets
    from .connectors import connector_class
    from .mapping import SIDES, load_mappings

    covered: set[tuple[str, str]] = set()
    for target in job.pull:
        system, _, entity = target.partition(":")
        settings = config.system(system)
        entities = [entity] if entity else (settings.get("entities")
                                            or connector_class(settings["kind"]).default_entities)
        covered.update((system, e) for e in entities)
    for mapping in load_mappings(config, job.mappings).values():
        for side in SIDES:
            ref = mapping.side(side)
            if (ref.system, ref.entity) not in covered:
                covered.add((ref.system, ref.entity))
                targets.append(str(ref))
    return targets


def _summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items() if v) or "nothing"


