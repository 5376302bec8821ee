"""Issue 14.2: ``sync`` says what happened: exit 1 and the failure in ``--json`` and in the run
history when a side could not be read or the mass-delete breaker held deletes; Ctrl-C exits 130."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from syncengine.scheduler import Daemon
from syncengine.status import collect
from syncengine.sync import run_sync

SYNCENGINE = [sys.executable, "-c", "from syncengine.cli import main; main()"]


def syncengine(pair, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SYNCENGINE, "--config", str(pair.config_path), *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "COLUMNS": "80", **env})


def stage(pair, n: int = 3) -> None:
    for i in range(n):
        pair.vt_add(lastname=f"Петров{i}", email=f"p{i}@example.com")
    assert run_sync(pair.config).ok


def test_sync_after_a_failed_pull_exits_1_and_says_so_in_json_and_history(pair):
    stage(pair)
    done = syncengine(pair, "sync", "--json", VT_ACCESS_KEY="a-wrong-key")
    assert done.returncode == 1, done.stderr
    info = json.loads(done.stdout)
    assert not info["ok"]
    [failure] = info["failed"]
    assert "mapping contacts: nothing was written, because vt:Contacts could not be read" in failure["error"]
    runs = collect(pair.config, runs=2)["runs"]
    assert [(r["kind"], r["status"]) for r in runs] == [("sync", "failed"), ("pull", "failed")]
    assert "vt:Contacts could not be read" in runs[0]["error"]


def test_sync_exits_1_when_the_mass_delete_breaker_held_deletes(pair):
    stage(pair, 6)
    pair.vt.control_hide_rows(share=0.7, listings=None)
    done = syncengine(pair, "sync", "--full")
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "more than max_delete_share" in done.stderr and "--allow-mass-delete" in done.stderr
    assert collect(pair.config, runs=1)["runs"][0]["status"] == "failed"


def test_a_daemon_job_whose_pull_failed_is_recorded_failed_and_writes_nothing(pair, monkeypatch):
    stage(pair)
    for rid in pair.alfa_customers():
        pair.alfa_edit(rid, name="Изменено")
    writes = pair.write_requests()
    monkeypatch.setenv("VT_ACCESS_KEY", "a-wrong-key")
    daemon = Daemon(pair.config)
    outcome = daemon.run_job(daemon.jobs[0], scheduled=False)
    assert outcome.status == "failed" and "login refused" in outcome.error
    assert pair.write_requests() == writes
    assert collect(pair.config)["parked"] == 0
    assert collect(pair.config)["jobs"][0]["last_run"]["status"] == "failed"


def test_ctrl_c_exits_130_and_says_how_to_continue(pair):
    stage(pair)
    pair.vt_server.faults.latency = 0.3
    before = pair.vt_server.stats_json()["total"]
    proc = subprocess.Popen([*SYNCENGINE, "--config", str(pair.config_path), "sync"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        while pair.vt_server.stats_json()["total"] == before and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "interrupted; run it again to continue"


def test_check_validates_every_mapping_and_job_against_describe(pair):
    pair.mapping_file("extra").write_text('left = "vt:Contacts"\nright = "alfa:customer"\n[fields]\n'
                                          'phone = { left = "phon", right = "phone[0]" }\n', encoding="utf-8")
    done = syncengine(pair, "check")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "extra.toml: fields.phone.left: vt:Contacts has no field 'phon'" in done.stderr

    pair.mapping_file("extra").unlink()
    text = pair.config_path.read_text(encoding="utf-8").replace('mappings = ["contacts"]', 'mappings = ["contcts"]')
    pair.config_path.write_text(text, encoding="utf-8")
    done = syncengine(pair, "check")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "sync.toml: jobs.contacts-job.mappings: no mapping 'contcts'" in done.stderr
    assert "did you mean contacts?" in done.stderr


def test_discover_an_unknown_entity_is_a_usage_error_with_the_list_and_a_guess(pair):
    done = syncengine(pair, "discover", "vt", "Contact")
    assert done.returncode == 2, (done.stdout, done.stderr)
    [line] = done.stderr.strip().splitlines()
    assert "vt has no entity 'Contact'; did you mean Contacts" in line and "Accounts" in line


def test_discover_json(pair):
    done = syncengine(pair, "discover", "vt", "--json")
    assert done.returncode == 0, done.stderr
    assert "Contacts" in json.loads(done.stdout)["entities"]
    done = syncengine(pair, "discover", "vt", "Contacts", "--json")
    info = json.loads(done.stdout)
    assert info["system"] == "vt" and info["entity"] == "Contacts"
    lastname = next(f for f in info["fields"] if f["name"] == "lastname")
    assert lastname["mandatory"] is True


def test_errors_under_json_are_json(pair):
    done = syncengine(pair, "sync", "contcts", "--json")
    assert done.returncode == 2
    info = json.loads(done.stdout)
    assert info["ok"] is False and info["exit_code"] == 2 and "'contcts' is neither a job" in info["error"]


def test_sync_prints_a_summary_and_the_plan_only_under_verbose(pair):
    for i in range(12):
        pair.vt_add(lastname=f"Иванов{i}", email=f"i{i}@example.com", phone=f"8916000000{i % 10}")
    done = syncengine(pair, "sync", "--dry-run")  # the plan, in order of the ids' numbers
    created = [line.split()[-1] for line in done.stdout.splitlines() if line.strip().startswith("+ create")]
    assert len(created) == 12 and created == sorted(created, key=lambda rid: int(rid.split("x")[1]))

    done = syncengine(pair, "sync")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) <= 4, lines
    assert "contacts (vt:Contacts ↔ alfa:customer): 12 create in alfa:customer" in lines[0]
    pair.vt_edit(next(iter(pair.vt_contacts())), lastname="Петрова")
    done = syncengine(pair, "sync", "--verbose")
    assert 'name: "Иванов' in done.stdout and '→ "Петрова"' in done.stdout


def test_error_lines_are_never_broken_at_80_columns(pair):
    stage(pair)
    done = syncengine(pair, "sync", VT_ACCESS_KEY="a-wrong-key")
    assert done.returncode == 1
    [line] = [line for line in done.stderr.splitlines() if "could not be read" in line]
    assert len(line) > 80 and line.startswith("error: ") and line.endswith(")")


def test_plan_refuses_a_broken_mapping_before_the_mirror_is_created(pair, tmp_path):
    pair.mapping_file().write_text('left = "vt:Contacts"\nright = "alfa:customer"\n[fields]\n'
                                   'payer = { right = "legal_name", template = "{lastname!z}" }\n', encoding="utf-8")
    done = syncengine(pair, "plan")
    assert done.returncode == 2 and "fields.payer.template: {lastname!z} is not a field placeholder" in done.stderr
    assert not (tmp_path / "mirror.db").exists()
