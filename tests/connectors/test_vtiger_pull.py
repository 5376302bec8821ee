"""The vtiger read path end to end: emulator over HTTP → connector → pull → mirror."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from syncengine.cli import main
from syncengine.config import load_config
from syncengine.connectors.vtiger import _clean
from syncengine.emulators import Faults
from syncengine.mirror import Mirror
from syncengine.pull import pull

KEY = "emulator-Access-Key-42"


@pytest.fixture(autouse=True)
def access_key(monkeypatch):
    monkeypatch.setenv("VT_ACCESS_KEY", KEY)


def vt_system(server, **extra):
    return {"kind": "vtiger", "url": server.url, "username": "admin", "access_key": "${VT_ACCESS_KEY}",
            "entities": ["Contacts", "Accounts"], "retries": 6, "timeout": 5, **extra}


def expected(server, module="Contacts"):
    return {rid: _clean(r) for rid, r in server.app.live_records(module).items()}


def mirror_of(config, module="Contacts"):
    return Mirror(config.mirror_url).records("vt", module)


def start(emulator, records, **options):
    return emulator("vtiger", records=records, access_key=KEY, **options)


def test_pull_10000_contacts_then_a_quiet_pull_makes_one_request(emulator, write_config, sqlite_url):
    server = start(emulator, 10_000)
    config = load_config(write_config(sqlite_url, {"vt": vt_system(server, entities=["Contacts"])}))
    first = pull(config)
    assert first.ok
    assert first.entity("vt", "Contacts").created == 10_000
    assert mirror_of(config) == expected(server)

    server.reset_stats()
    second = pull(config)
    result = second.entity("vt", "Contacts")
    assert (result.created, result.updated, result.deleted) == (0, 0, 0)
    assert server.stats_json()["requests"] == {"getchallenge": 1, "login": 1, "sync": 1}
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as db:
        assert db.execute("SELECT count(*) FROM vt_contacts WHERE NOT _deleted").fetchone()[0] == 10_000


@pytest.mark.parametrize("mode", ["sync", "query"])
def test_edits_deletes_and_restores_arrive_exactly_once(emulator, write_config, mirror_url, mode):
    server = start(emulator, 300, sync_broken=(mode == "query"))
    config = load_config(write_config(mirror_url, {"vt": vt_system(server, sweep_every="0s")}))
    assert pull(config).ok
    ids = sorted(expected(server))
    app = server.app
    app.control_edit(ids[0], {"lastname": "Изменённая"})
    app.control_edit(ids[1], {"email": "new.address@example.ru"})
    app.control_delete(ids[2])
    app.control_delete(ids[3])
    app.control_restore(ids[3])
    result = pull(config).entity("vt", "Contacts")
    assert (result.updated, result.deleted, result.created) == (3, 1, 0)  # a restore bumps modifiedtime
    mirror = Mirror(config.mirror_url)
    assert mirror.records("vt", "Contacts") == expected(server)
    assert ids[2] in mirror.deleted_ids("vt", "Contacts")

    app.control_restore(ids[2])
    again = pull(config).entity("vt", "Contacts")
    assert (again.updated, again.deleted, again.created) == (1, 0, 0)
    quiet = pull(config).entity("vt", "Contacts")
    assert (quiet.updated, quiet.deleted, quiet.created) == (0, 0, 0)
    assert mirror.records("vt", "Contacts") == expected(server)

    with mirror.engine.connect() as conn:  # the reporting table follows the records
        rows = dict(conn.execute(sa.text("SELECT id, lastname FROM vt_contacts WHERE NOT _deleted")).all())
    assert rows[ids[0]] == "Изменённая" and len(rows) == len(expected(server))


@pytest.mark.parametrize("mode", ["sync", "query"])
def test_a_record_saved_in_the_boundary_second_is_not_lost(emulator, write_config, sqlite_url, mode):
    server = start(emulator, 120, sync_broken=(mode == "query"))
    config = load_config(write_config(sqlite_url, {"vt": vt_system(server, entities=["Contacts"])}))
    assert pull(config).ok
    first, second = sorted(expected(server), key=lambda rid: int(rid.split("x")[1]))[:2]
    server.app.control_edit(second, {"title": "Прочитан"})
    assert pull(config).entity("vt", "Contacts").updated == 1  # the cursor now ends in this second
    boundary = server.app.live_records("Contacts")[second]["modifiedtime"]
    # Another record committed in that same second, after the read (spec §8.4): a lower id, so
    # neither `sync` (strict >) nor the (modifiedtime, id) keyset would reach it without overlap.
    server.app.control_write("Contacts", {"id": first, "lastname": "Опоздавший"}, modifiedtime=boundary)
    assert pull(config).entity("vt", "Contacts").updated == 1
    assert mirror_of(config)[first]["lastname"] == "Опоздавший"
    assert mirror_of(config) == expected(server)


def test_fallback_mode_gives_the_same_mirror_as_sync_mode(emulator, write_config, tmp_path):
    server = start(emulator, 500)
    mirrors = {}
    for mode in ("sync", "query"):
        url = f"sqlite:///{tmp_path / mode}.db"
        config = load_config(write_config(url, {"vt": vt_system(server, change_feed=mode)}, name=f"{mode}.toml"))
        assert pull(config).ok
        mirrors[mode] = {m: Mirror(url).records("vt", m) for m in ("Contacts", "Accounts")}
    assert mirrors["sync"] == mirrors["query"]
    assert mirrors["sync"]["Contacts"] == expected(server)


def test_stock_install_whose_sync_fails_is_probed_once_and_polled_by_query(emulator, write_config, sqlite_url):
    server = start(emulator, 250, sync_broken=True)
    config = load_config(write_config(sqlite_url, {"vt": vt_system(server, entities=["Contacts"])}))
    assert pull(config).ok
    assert mirror_of(config) == expected(server)
    server.reset_stats()
    assert pull(config).ok
    requests = server.stats_json()["requests"]
    assert "sync" not in requests and requests["query"] == 1  # the cursor remembers the mode


def test_ten_percent_faults_end_in_the_same_mirror(emulator, write_config, tmp_path):
    # the fault dice are seeded when the server starts: seeded here, the faults are the same every run
    server = start(emulator, 3000, sync_broken=True, faults=Faults(seed=7))
    results, requests = {}, {}
    for name in ("clean", "faulty"):
        if name == "faulty":  # 10 % of requests fail one way or another
            server.faults.update({"error_rate": 0.04, "broken_json_rate": 0.02, "expire_rate": 0.02,
                                  "timeout_rate": 0.02, "hang_seconds": 1.5, "seed": 7})
        server.reset_stats()
        url = f"sqlite:///{tmp_path / name}.db"
        config = load_config(write_config(url, {"vt": vt_system(server, timeout=1, retries=8)}, name=f"{name}.toml"))
        assert pull(config).ok
        requests[name] = server.stats_json()["total"]
        results[name] = {m: Mirror(url).records("vt", m) for m in ("Contacts", "Accounts")}
    assert requests["faulty"] > requests["clean"]  # faults really happened, and were retried
    assert results["faulty"] == results["clean"]
    assert results["clean"]["Contacts"] == expected(server)


def test_a_sweep_that_would_delete_40_percent_deletes_nothing_and_says_why(emulator, write_config, sqlite_url):
    server = start(emulator, 200, sync_broken=True)
    path = write_config(sqlite_url, {"vt": vt_system(server, entities=["Contacts"])})
    runner = CliRunner()
    assert runner.invoke(main, ["--config", str(path), "pull"]).exit_code == 0
    ids = sorted(expected(server))
    for rid in ids[:80]:
        server.app.control_delete(rid)
    result = runner.invoke(main, ["--config", str(path), "pull", "--sweep"])
    assert result.exit_code == 1
    assert "80 of 200" in result.output and "nothing was deleted" in result.output
    assert "--allow-mass-delete" in result.output
    mirror = Mirror(load_config(path).mirror_url)
    assert len(mirror.live_ids("vt", "Contacts")) == 200

    forced = runner.invoke(main, ["--config", str(path), "pull", "--sweep", "--allow-mass-delete"])
    assert forced.exit_code == 0
    assert mirror.live_ids("vt", "Contacts") == set(ids[80:])


def test_a_listing_cut_short_deletes_nothing(emulator, write_config, sqlite_url):
    server = start(emulator, 400, sync_broken=True)
    config = load_config(write_config(sqlite_url, {"vt": vt_system(server, entities=["Contacts"], retries=1)}))
    assert pull(config).ok
    server.app.control_delete(sorted(expected(server))[0])
    server.fail_next(50, operation="query")  # the sweep's id listing fails for good
    result = pull(config, sweep=True).entity("vt", "Contacts")
    assert result.status == "failed" and "HTTP 500" in result.message
    assert len(Mirror(config.mirror_url).live_ids("vt", "Contacts")) == 400


def test_kill_9_midway_then_pull_again_equals_the_emulator(emulator, write_config, sqlite_url):
    server = start(emulator, 3000, faults=Faults(latency=0.01))
    path = write_config(sqlite_url, {"vt": vt_system(server, entities=["Contacts"])})
    proc = subprocess.Popen([sys.executable, "-m", "syncengine.cli", "--config", str(path), "pull"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = sqlite_url.removeprefix("sqlite:///")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until some batches, but not all, are committed
        time.sleep(0.05)
        try:
            with sqlite3.connect(db) as conn:
                done = conn.execute("SELECT count(*) FROM records").fetchone()[0]
        except sqlite3.OperationalError:
            continue
        if done >= 500:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 0 < done < 3000
    server.faults.latency = 0
    config = load_config(path)
    assert pull(config).ok
    assert mirror_of(config) == expected(server)


def test_secrets_never_appear_in_logs_errors_or_the_mirror(emulator, write_config, sqlite_url, monkeypatch):
    server = start(emulator, 50)
    path = write_config(sqlite_url, {"vt": vt_system(server)})
    runner = CliRunner()
    ok = runner.invoke(main, ["--config", str(path), "-vv", "pull"])
    assert ok.exit_code == 0
    monkeypatch.setenv("VT_ACCESS_KEY", "Wrong-Key-Secret-99")
    bad = runner.invoke(main, ["--config", str(path), "-vv", "check"])
    assert bad.exit_code == 1 and "login refused" in bad.output
    for output in (ok.output, bad.output):
        assert KEY not in output and "Wrong-Key-Secret-99" not in output
    db_file = sqlite_url.removeprefix("sqlite:///")
    for suffix in ("", "-wal"):
        if os.path.exists(db_file + suffix):
            with open(db_file + suffix, "rb") as stored:
                assert KEY.encode() not in stored.read()


def test_check_and_status_and_discover(emulator, write_config, sqlite_url):
    server = start(emulator, 20)
    path = write_config(sqlite_url, {"vt": vt_system(server)})
    runner = CliRunner()
    check = runner.invoke(main, ["--config", str(path), "check"])
    assert check.exit_code == 0 and "vt" in check.output
    discover = runner.invoke(main, ["--config", str(path), "discover", "vt", "Contacts"])
    assert discover.exit_code == 0 and "lastname" in discover.output and "vt_contacts" in discover.output
    assert runner.invoke(main, ["--config", str(path), "pull"]).exit_code == 0
    status = runner.invoke(main, ["--config", str(path), "status"])
    assert status.exit_code == 0 and "vt:Contacts" in status.output


def test_an_unknown_entity_is_named_with_the_known_ones(emulator, write_config, sqlite_url):
    server = start(emulator, 5)
    path = write_config(sqlite_url, {"vt": vt_system(server)})
    result = CliRunner().invoke(main, ["--config", str(path), "pull", "vt:Contactz"])
    assert result.exit_code == 1
    assert "no entity 'Contactz'" in result.output and "Contacts" in result.output
