"""The daemon: schedules, no overlapping runs, one run per occurrence across daemons, metrics, SIGTERM."""
from __future__ import annotations

import itertools
import json
import math
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from datetime import UTC

import pytest
import sqlalchemy as sa

from syncengine.config import load_config
from syncengine.metrics import MetricsServer
from syncengine.mirror import Mirror
from syncengine.mirror.models import RunRow
from syncengine.pull import pull
from syncengine.scheduler import JOB_RUN, Daemon
from syncengine.serving import health_problems


def job_runs(mirror: Mirror, job: str) -> list[RunRow]:
    with mirror.engine.connect() as conn:
        return list(conn.execute(sa.select(RunRow).where(RunRow.kind == JOB_RUN, RunRow.job == job)
                                 .order_by(RunRow.started_at)))


def assert_no_overlap(runs: list[RunRow]) -> None:
    for before, after in itertools.pairwise(runs):
        assert before.finished_at is not None
        assert after.started_at >= before.finished_at, f"runs {before.id} and {after.id} overlap"


def seconds_between(start: float, stop: float) -> set[int]:
    """Whole seconds at which a 1 s interval job must have fired in [start, stop]."""
    return set(range(math.floor(start) + 1, math.floor(stop) + 1))


def run_for(daemons: list[Daemon], seconds: float) -> tuple[float, float]:
    started = time.time()
    for d in daemons:
        d.start()
    time.sleep(seconds)
    stopped = time.time()
    for d in daemons:
        d.stop(wait=True)
    return started, stopped


def utc_seconds(run: RunRow) -> int:
    """The whole second a run belongs to: 1 s interval jobs fire on whole seconds of the epoch."""
    return math.floor(run.started_at.replace(tzinfo=UTC).timestamp())


def test_two_jobs_run_once_per_occurrence_and_never_overlap(two_crms, ops_config, sqlite_url):
    vt, _ = two_crms
    vt.faults.latency = 0.4  # every vtiger run makes >= 3 requests: it outlasts its 1 s interval
    config = load_config(ops_config(sqlite_url, jobs=[
        {"name": "fast", "every": "1s", "pull": ["alfa"]},
        {"name": "slow", "every": "1s", "pull": ["vt"]}]))
    daemon = Daemon(config)
    started, stopped = run_for([daemon], 4.6)

    fast = job_runs(daemon.mirror, "fast")
    assert_no_overlap(fast)
    seconds = [utc_seconds(r) for r in fast]
    assert len(seconds) == len(set(seconds)), "an occurrence ran twice"
    assert seconds_between(started, stopped - 0.3) <= set(seconds) <= seconds_between(started, stopped)
    assert all(r.status in ("ok", "stopped") for r in fast)

    slow = job_runs(daemon.mirror, "slow")
    assert_no_overlap(slow)
    assert 2 <= len(slow) < len(seconds_between(started, stopped))
    assert daemon.metrics.value("syncengine_job_skipped_total", job="slow", reason="overlap") >= 1
    for job, runs in (("fast", fast), ("slow", slow)):  # a run going at stop() ends early, as "stopped"
        assert sum(daemon.metrics.value("syncengine_job_runs_total", job=job, status=status)
                   for status in ("ok", "stopped")) == len(runs)


def test_two_daemons_on_one_mirror_run_each_occurrence_once(two_crms, ops_config, mirror_url):
    path = ops_config(mirror_url, jobs=[{"name": "a", "every": "1s", "pull": ["alfa"]},
                                        {"name": "b", "every": "1s", "pull": ["vt"]}])
    pull(load_config(path))  # the first, longer pull: later runs fit their 1 s interval
    daemons = [Daemon(load_config(path), mirror=Mirror(mirror_url), name=f"daemon-{i}") for i in (1, 2)]
    run_for(daemons, 4.6)

    ran_by: set[str] = set()
    for job in ("a", "b"):
        runs = job_runs(daemons[0].mirror, job)
        assert_no_overlap(runs)
        seconds = [utc_seconds(r) for r in runs]
        assert len(seconds) == len(set(seconds)), f"job {job}: an occurrence ran in both daemons"
        # Which occurrences ran at all depends on how loaded the machine is (a 1 s job on a busy
        # machine misfires); that none ran twice does not.
        assert len(seconds) >= 2, f"job {job}: only {len(seconds)} occurrence(s) ran"
        ran_by |= {json.loads(r.counts)["daemon"] for r in runs}
    skipped = sum(d.metrics.value("syncengine_job_skipped_total", job=j, reason=r)
                  for d in daemons for j in ("a", "b") for r in ("locked", "done"))
    assert skipped >= 3  # every occurrence fires in both daemons; one of them stands aside
    assert ran_by <= {"daemon-1", "daemon-2"}
    for d in daemons:
        d.mirror.dispose()


def test_metrics_endpoint_counts_the_runs_that_happened(two_crms, ops_config, sqlite_url):
    config = load_config(ops_config(sqlite_url, jobs=[
        {"name": "good", "cron": "0 0 1 1 *", "pull": ["alfa"]},
        {"name": "bad", "cron": "0 0 1 1 *", "pull": ["vt"]}], vt_extra={"access_key": "wrong-key"}))
    daemon = Daemon(config)
    daemon.start()
    server = MetricsServer(daemon.metrics, 0, lambda: health_problems(config, daemon.mirror,
                                                                     alive=daemon.healthy)).start()
    try:
        for _ in range(3):
            daemon.run_job(config.job("good"), scheduled=False)
        for _ in range(2):
            daemon.run_job(config.job("bad"), scheduled=False)
        with urllib.request.urlopen(f"{server.url}/healthz") as response:
            assert response.status == 200
        with urllib.request.urlopen(f"{server.url}/metrics") as response:
            assert response.headers["Content-Type"].startswith("text/plain")
            metrics = parse_metrics(response.read().decode())
    finally:
        daemon.stop()
        server.stop()

    assert metrics['syncengine_job_runs_total{job="good",status="ok"}'] == 3
    assert metrics['syncengine_job_runs_total{job="bad",status="failed"}'] == 2
    assert metrics['syncengine_job_failures_total{job="bad"}'] == 2
    assert 'syncengine_job_failures_total{job="good"}' not in metrics
    assert metrics['syncengine_records_pulled_total{change="created",entity="customer",system="alfa"}'] == 30
    assert metrics['syncengine_job_last_success_timestamp_seconds{job="good"}'] > time.time() - 60
    with daemon.mirror.engine.connect() as conn:  # the requests the pull runs recorded, per system
        pulls = conn.execute(sa.select(RunRow.counts).where(RunRow.kind == "pull")).scalars().all()
    requests = {s: sum(json.loads(c)["requests"].get(s, 0) for c in pulls) for s in ("alfa", "vt")}
    assert metrics['syncengine_http_requests_total{system="alfa"}'] == requests["alfa"] > 0
    assert metrics['syncengine_http_requests_total{system="vt"}'] == requests["vt"] > 0
    assert len(job_runs(daemon.mirror, "good")) == 3


def parse_metrics(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def test_sigterm_finishes_the_batch_and_exits_cleanly(two_crms, ops_config, sqlite_url, free_port,
                                                      syncengine_cmd):
    vt, _ = two_crms
    vt.faults.latency = 0.3
    path = ops_config(sqlite_url, jobs=[{"name": "slow", "every": "1s", "pull": ["vt"]}])
    port = free_port
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([*syncengine_cmd, "--config", str(path), "daemon",
                             "--metrics-port", str(port), "--log-format", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        mirror = Mirror(sqlite_url)
        deadline = time.time() + 20
        while not any(r.status == "running" for r in job_runs(mirror, "slow")):
            assert time.time() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() else "no run"
            time.sleep(0.05)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz") as response:
            assert response.status == 200
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert any("SIGTERM" in line["message"] for line in lines)
    runs = job_runs(mirror, "slow")
    assert runs and all(r.status in ("ok", "stopped") for r in runs)
    assert runs[-1].finished_at is not None
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
