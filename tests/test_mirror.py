"""The mirror's reporting tables, on SQLite and PostgreSQL: typed columns, UTC times, new fields."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from datetime import UTC, datetime, timedelta

import requests
import sqlalchemy as sa

from syncengine.config import load_config
from syncengine.connectors.vtiger import _clean
from syncengine.mirror import Mirror, table_name
from syncengine.pull import pull


def test_table_names_are_guessable():
    assert table_name("vt", "Contacts") == "vt_contacts"
    assert table_name("alfa", "lead status") == "alfa_lead_status"
    assert table_name("sm-1", "client") == "sm_1_client"


def test_reporting_columns_are_typed_and_times_are_utc(emulator, write_config, mirror_url, monkeypatch):
    monkeypatch.setenv("SP_KEY", "emulator")
    server = emulator("salesplatform", records=30)  # server time zone Europe/Moscow
    config = load_config(write_config(mirror_url, {"sp": {
        "kind": "salesplatform", "url": server.url, "username": "admin", "access_key": "${SP_KEY}",
        "entities": ["Contacts"]}}))
    assert pull(config).ok
    mirror = Mirror(config.mirror_url)
    columns = {c["name"]: c["type"] for c in sa.inspect(mirror.engine).get_columns("sp_contacts")}
    assert isinstance(columns["modifiedtime"], sa.DateTime) and isinstance(columns["birthday"], sa.Date)
    assert isinstance(columns["donotcall"], sa.Boolean) and isinstance(columns["lastname"], sa.Text)
    assert {"id", "_deleted", "_synced_at"} <= set(columns)
    records = {rid: _clean(r) for rid, r in server.app.live_records("Contacts").items()}
    with mirror.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(sa.text("SELECT id, modifiedtime, lastname FROM sp_contacts"))}
    assert set(rows) == set(records)
    some_id, record = next(iter(records.items()))
    local = datetime.strptime(record["modifiedtime"], "%Y-%m-%d %H:%M:%S")
    stored = rows[some_id].modifiedtime
    stored = stored if isinstance(stored, datetime) else datetime.fromisoformat(stored)
    stored = stored.astimezone(UTC).replace(tzinfo=None) if stored.tzinfo else stored
    assert stored == local - timedelta(hours=3)  # Moscow → UTC
    assert rows[some_id].lastname == record["lastname"]


def test_a_field_added_in_the_crm_adds_a_column_without_losing_rows(emulator, write_config, mirror_url):
    server = emulator("rukovoditel", records=20, password="pw-123456", api_key="key-123456")
    config = load_config(write_config(mirror_url, {"ruko": {
        "kind": "rukovoditel", "url": server.url, "username": "admin", "password": "pw-123456",
        "api_key": "key-123456", "entities": ["Contacts"]}}))
    assert pull(config).ok
    field_id = server.app.control_add_field("Contacts", "Рейтинг")
    server.app.control_clock(advance=300)
    server.app.control_edit("Contacts", 3, {f"field_{field_id}": "высокий"})
    result = pull(config).entity("ruko", "Contacts")
    assert result.status == "ok" and result.created == 0 and result.updated >= 1
    mirror = Mirror(config.mirror_url)
    with mirror.engine.connect() as conn:
        rows = dict(conn.execute(sa.text("SELECT id, reyting FROM ruko_contacts")).all())
    assert len(rows) == 20 and rows["3"] == "высокий"
    assert sum(1 for v in rows.values() if v is None) == 19


def test_emulate_command_serves_and_prints_a_ready_toml_section():
    proc = subprocess.Popen([sys.executable, "-m", "syncengine.cli", "emulate", "vtiger", "--port", "0",
                             "--records", "15", "--name", "crm"], stdout=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        url = next(w for w in lines[0].split() if w.startswith("http://"))
        section = []
        while (line := proc.stdout.readline()).strip():
            section.append(line)
        parsed = tomllib.loads("".join(section))["systems"]["crm"]
        assert parsed["kind"] == "vtiger" and parsed["url"] == url and parsed["username"] == "admin"
        assert "emulator" not in parsed["access_key"]  # a ${VAR} reference, never the key itself
        stats = requests.get(f"{url}/__emulator__/stats", timeout=5).json()
        assert stats == {"requests": {}, "total": 0}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_emulate_refuses_unknown_kinds_and_options():
    from click.testing import CliRunner

    from syncengine.cli import main

    runner = CliRunner()
    unknown = runner.invoke(main, ["emulate", "sugarcrm"])
    assert unknown.exit_code == 2 and "vtiger" in unknown.output
    bad = runner.invoke(main, ["emulate", "vtiger", "--colour", "red"])
    assert bad.exit_code == 2 and "--access-key" in bad.output
