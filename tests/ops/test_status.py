"""A job that syncs a mapping, seen through the daemon's metrics and ``syncengine status``."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from syncengine.config import load_config
from syncengine.scheduler import Daemon

REPO = Path(__file__).resolve().parents[2]


def test_sync_job_counts_writes_and_status_shows_it_in_80_columns(ops_config, sqlite_url, tmp_path,
                                                                   syncengine_cmd):
    (tmp_path / "mappings").mkdir()
    shutil.copy(REPO / "mappings" / "contacts.toml", tmp_path / "mappings")
    path = ops_config(sqlite_url, jobs=[{"name": "contacts-sync", "every": "15m", "mappings": ["contacts"]}])
    daemon = Daemon(load_config(path))
    outcome = daemon.run_job(daemon.jobs[0], scheduled=False)
    assert outcome.status == "ok", outcome.error
    assert outcome.pulled["created"] == 60  # both sides read by the job's one pull
    assert daemon.metrics.value("syncengine_records_written_total", system="alfa", op="create") == 30
    assert daemon.metrics.value("syncengine_records_written_total", system="vt", op="create") == 30

    env = {**os.environ, "COLUMNS": "80"}
    shown = subprocess.run([*syncengine_cmd, "--config", str(path), "status"], capture_output=True,
                           text=True, env=env, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert all(len(line) <= 80 for line in shown.stdout.splitlines()), shown.stdout
    assert "contacts-sync" in shown.stdout and "every 15m" in shown.stdout

    info = json.loads(subprocess.run([*syncengine_cmd, "--config", str(path), "status", "--json"],
                                     capture_output=True, text=True, timeout=60).stdout)
    job = info["jobs"][0]
    assert job["name"] == "contacts-sync" and job["schedule"] == "every 15m" and job["next_run_at"]
    assert job["last_run"]["status"] == "ok"
    assert info["mappings"] == [{"mapping": "contacts", "links": 60, "parked": 0, "open_conflicts": 0,
                                 "failed_writes": 0}]
    assert {"entities", "runs", "mirror", "parked", "conflicts"} <= set(info)
