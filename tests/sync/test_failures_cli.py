"""Issue 14.2: ``sync`` says what happened: exit 1 and the failure in ``--json`` and in the run
history when a side could not be read or the mass-delete breaker held deletes; Ctrl-C exits 130."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from syncengine.cli import main
from syncengine.cli.base import err_console
from syncengine.config import load_config
from syncengine.errors import ConfigError
from syncengine.mapping import SideRef
from syncengine.scheduler import Daemon
from syncengine.status import collect
from syncengine.sync import run_sync
from syncengine.transfer import migrate

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


BROKEN_AT_DESCRIBE = ('left = "vt:Contacts"\nright = "alfa:customer"\nmatch_on = ["email"]\n[fields]\n'
                      'email = { left = "email", right = "email[0]" }\n'
                      'nick = { left = "nickname_vt_lacks", right = "name" }\n')


@pytest.mark.parametrize("command", [
    ["sync"], ["sync", "--dry-run"], ["sync", "contacts"], ["plan"], ["plan", "--pull"], ["check"],
    ["migrate", "--from", "vt:Contacts", "--to", "alfa:customer", "--mapping", "MAPPING"],
    ["migrate", "--from", "vt:Contacts", "--to", "alfa:customer", "--mapping", "MAPPING", "--dry-run"]])
def test_a_mapping_only_describe_refuses_leaves_no_mirror_behind(make_pair, tmp_path, command):
    """Issue 14.6: a mapping refused because a CRM lacks a field it names creates no mirror."""
    pair = make_pair(BROKEN_AT_DESCRIBE)
    command = [str(pair.mapping_file()) if arg == "MAPPING" else arg for arg in command]
    done = syncengine(pair, *command)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "nickname_vt_lacks" in done.stderr
    assert not (tmp_path / "mirror.db").exists()


def test_a_daemon_refuses_a_mapping_only_describe_refuses_and_leaves_no_mirror(make_pair, tmp_path):
    pair = make_pair(BROKEN_AT_DESCRIBE)
    with pytest.raises(ConfigError, match="nickname_vt_lacks"):
        Daemon(pair.config)
    assert not (tmp_path / "mirror.db").exists()


def test_on_postgresql_a_refused_mapping_creates_nothing_in_a_fresh_schema(emulator, write_config, postgres_url):
    vt, alfa = emulator("vtiger", records=0, access_key="vk"), emulator("alfacrm", records=0, api_key="ak")
    path = write_config(postgres_url, {
        "vt": {"kind": "vtiger", "url": vt.url, "username": "admin", "access_key": "vk", "entities": ["Contacts"]},
        "alfa": {"kind": "alfacrm", "url": alfa.url, "email": "admin@example.com", "api_key": "ak",
                 "entities": ["customer"]}})
    (path.parent / "mappings").mkdir(exist_ok=True)
    (path.parent / "mappings" / "contacts.toml").write_text(BROKEN_AT_DESCRIBE, encoding="utf-8")
    config = load_config(path)
    for attempt in (lambda: run_sync(config), lambda: run_sync(config, dry_run=True),
                    lambda: migrate(config, SideRef("vt", "Contacts"), SideRef("alfa", "customer"))):
        with pytest.raises(ConfigError, match="nickname_vt_lacks"):
            attempt()
    engine = sa.create_engine(postgres_url)
    try:
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_a_refused_config_leaves_no_mirror_behind(pair, tmp_path):
    text = pair.config_path.read_text(encoding="utf-8")
    pair.config_path.write_text(text.replace("[systems.vt]", "[systems.vt]\ntimeout = 0", 1), encoding="utf-8")
    for command in (["sync"], ["pull"], ["plan"], ["check"], ["status"]):
        done = syncengine(pair, *command)
        assert done.returncode == 2 and "timeout" in done.stderr, (command, done.stderr)
    assert not (tmp_path / "mirror.db").exists()


def test_sync_and_apply_report_their_writes_as_they_go(pair):
    """Issue 14.12: the push reports (target, writes finished, writes planned) after each write."""
    for i in range(5):
        pair.vt_add(lastname=f"Сидоров{i}", email=f"s{i}@example.com")
    calls: list[tuple[str, int, int]] = []
    assert run_sync(pair.config, write_progress=lambda *call: calls.append(call)).ok
    assert calls == [("alfa:customer", n, 5) for n in range(1, 6)]


def test_sync_shows_progress_while_writing_on_a_terminal_only(pair, monkeypatch):
    for i in range(3):
        pair.vt_add(lastname=f"Кузнецов{i}", email=f"k{i}@example.com")
    runner = CliRunner()
    done = runner.invoke(main, ["--config", str(pair.config_path), "sync", "--dry-run"])
    assert done.exit_code == 0 and "writing" not in done.stderr and "reading" not in done.stderr  # not a TTY
    monkeypatch.setattr(err_console, "_force_terminal", True)
    monkeypatch.setattr(err_console, "is_interactive", True)
    done = runner.invoke(main, ["--config", str(pair.config_path), "sync", "--json"])
    assert done.exit_code == 0 and "writing" not in done.stderr  # --json: silent
    assert json.loads(done.stdout)["ok"]
    pair.vt_add(lastname="Новиков", email="n@example.com")
    done = runner.invoke(main, ["--config", str(pair.config_path), "sync"])
    assert done.exit_code == 0, done.output
    assert "reading vt:Contacts" in done.stderr and "writing alfa:customer" in done.stderr and "1/1" in done.stderr


def test_a_pull_that_failed_exits_1_and_is_recorded_failed(pair):
    stage(pair)
    done = syncengine(pair, "pull", "--json", VT_ACCESS_KEY="a-wrong-key")
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "login refused" in done.stdout + done.stderr
    run = collect(pair.config, runs=1)["runs"][0]
    assert (run["kind"], run["status"]) == ("pull", "failed")
