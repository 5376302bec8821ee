"""Issue 16.2: a new CRM field adds a column and says so (log, pull, run record, status); a changed
type migrates the column."""
from __future__ import annotations

import logging

import sqlalchemy as sa
from click.testing import CliRunner

from syncengine.cli import main
from syncengine.config import load_config
from syncengine.mirror import Mirror
from syncengine.pull import pull
from syncengine.status import collect
from syncengine.types import EntitySchema, Field

from .helpers import catalog_types, expected


def test_a_new_field_is_a_new_column_announced_everywhere(emulator, write_config, mirror_url, caplog):
    server = emulator("rukovoditel", records=5, password="pw-123456", api_key="key-123456")
    path = write_config(mirror_url, {"ruko": {
        "kind": "rukovoditel", "url": server.url, "username": "admin", "password": "pw-123456",
        "api_key": "key-123456", "entities": ["Contacts"]}})
    config = load_config(path)
    assert pull(config).ok
    field_id = server.app.control_add_field("Contacts", "Дата договора", type="fieldtype_input_date")
    server.app.control_clock(advance=300)
    server.app.control_edit("Contacts", 3, {f"field_{field_id}": "2026-11-30"})
    with caplog.at_level(logging.INFO, logger="syncengine"):
        result = pull(config)
    announced = "ruko_contacts: +data_dogovora (date)"
    assert result.ok and result.entity("ruko", "Contacts").schema_changes == [announced]
    assert any(announced in r.getMessage() for r in caplog.records)
    assert collect(config)["runs"][0]["schema_changes"] == [announced]
    shown = CliRunner().invoke(main, ["--config", str(path), "status"], terminal_width=200)
    assert shown.exit_code == 0 and announced in shown.output
    engine = Mirror(config.mirror_url).engine
    assert catalog_types(engine, "ruko_contacts")["data_dogovora"] == expected(engine, {"x": "date"})["x"]
    assert pull(config).entity("ruko", "Contacts").schema_changes == []  # said once, not at every pull


def test_a_changed_field_type_migrates_the_column_and_keeps_the_rows(mirror_url):
    mirror = Mirror(mirror_url)
    before = EntitySchema("deal", [Field("id", "integer"), Field("score", "string"), Field("note", "string")])
    mirror.writer("crm", before).apply([{"id": i, "score": str(i * 10), "note": f"n{i}"} for i in range(1, 4)])
    after = EntitySchema("deal", [Field("id", "integer"), Field("score", "integer"), Field("note", "string")])
    writer = mirror.writer("crm", after)
    assert len(writer.announced) == 1 and writer.announced[0].startswith("crm_deal: ~score (text → bigint")
    assert catalog_types(mirror.engine, "crm_deal")["score"] == expected(mirror.engine, {"x": "bigint"})["x"]
    with mirror.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, score, note FROM crm_deal ORDER BY score DESC")).all()
    assert [tuple(r) for r in rows] == [(3, 30, "n3"), (2, 20, "n2"), (1, 10, "n1")]
