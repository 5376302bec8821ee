"""Issue 16.1: reporting columns carry the types a BI tool expects, read from the catalog."""
from __future__ import annotations

import sqlalchemy as sa

from syncengine.config import load_config
from syncengine.mirror import Mirror, db
from syncengine.pull import pull
from syncengine.types import EntitySchema, Field

from .helpers import ALFA_KEY, alfa_system, catalog_types, expected, vtiger_system


def test_alfa_ids_counts_money_lists_and_flags_have_bi_types(emulator, write_config, mirror_url):
    server = emulator("alfacrm", records=30, api_key=ALFA_KEY)
    config = load_config(write_config(mirror_url, {"alfa": alfa_system(server)}))
    assert pull(config).ok
    engine = Mirror(config.mirror_url).engine
    types = catalog_types(engine, "alfa_customer")
    assert {k: types[k] for k in ("id", "paid_count", "balance", "branch_ids", "dob", "b_date", "archived",
                                   "name", "_deleted", "_synced_at")} == expected(engine, {
        "id": "bigint", "paid_count": "bigint", "balance": "numeric", "branch_ids": "json", "dob": "date",
        "b_date": "timestamptz", "archived": "boolean", "name": "text", "_deleted": "boolean",
        "_synced_at": "timestamptz"})
    with engine.connect() as conn:
        ids = list(conn.execute(sa.text("SELECT id FROM alfa_customer ORDER BY id")).scalars())
        lists = conn.execute(sa.text(
            "SELECT count(*) FROM alfa_customer WHERE NOT _deleted AND "
            + ("jsonb_array_length(branch_ids)" if engine.dialect.name == "postgresql"
               else "json_array_length(branch_ids)") + " >= 1")).scalar()
    assert ids == sorted(int(i) for i in ids) and len(ids) == len(server.app.tables["customer"])
    assert lists >= 1


def test_vtiger_times_are_timestamptz_and_flags_boolean(emulator, write_config, mirror_url):
    server = emulator("salesplatform", records=10)
    config = load_config(write_config(mirror_url, {"sp": vtiger_system(server)}))
    assert pull(config).ok
    engine = Mirror(config.mirror_url).engine
    types = catalog_types(engine, "sp_contacts")
    assert {k: types[k] for k in ("id", "modifiedtime", "birthday", "donotcall", "lastname")} == expected(engine, {
        "id": "text", "modifiedtime": "timestamptz", "birthday": "date", "donotcall": "boolean", "lastname": "text"})


def test_a_coded_picklist_gets_its_label_twin(mirror_url):
    schema = EntitySchema("deal", [Field("id", "integer"), Field("stage", "picklist", choices=(
        ("1", "Новая"), ("2", "Выиграна"))), Field("amount", "number")])
    mirror = Mirror(mirror_url)
    mirror.writer("crm", schema).apply([{"id": 7, "stage": "2", "amount": "1500.50"}])
    with mirror.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT id, stage, stage_label, amount FROM crm_deal")).one()
    assert (row.id, row.stage, row.stage_label, float(row.amount)) == (7, "2", "Выиграна", 1500.5)
    assert catalog_types(mirror.engine, "crm_deal")["stage_label"] == expected(mirror.engine, {"x": "text"})["x"]


def test_an_old_untyped_mirror_is_migrated_without_losing_rows(emulator, write_config, mirror_url):
    server = emulator("alfacrm", records=25, api_key=ALFA_KEY)
    config = load_config(write_config(mirror_url, {"alfa": alfa_system(server)}))
    assert pull(config).ok
    engine = Mirror(config.mirror_url).engine
    pg = engine.dialect.name == "postgresql"
    with engine.begin() as conn:  # the table as revision 0002's code left it
        ids = list(conn.execute(sa.text("SELECT id FROM alfa_customer")).scalars())
        conn.execute(sa.text("DROP TABLE alfa_customer"))
        conn.execute(sa.text(
            "CREATE TABLE alfa_customer (id VARCHAR(128) PRIMARY KEY, name TEXT, balance "
            + ("DOUBLE PRECISION" if pg else "FLOAT") + ", _deleted SMALLINT NOT NULL, _synced_at TIMESTAMP NOT NULL)"))
        conn.execute(sa.text("INSERT INTO alfa_customer VALUES (:id, 'x', 1.5, 0, '2026-01-01 00:00:00')"),
                     [{"id": str(i)} for i in ids])
        if pg:
            conn.execute(sa.text("ALTER TABLE records ALTER COLUMN remote_id TYPE VARCHAR(128)"))
            conn.execute(sa.text("ALTER TABLE links ALTER COLUMN left_id TYPE VARCHAR(128)"))  # before 0007
            conn.execute(sa.text("ALTER TABLE outbox ALTER COLUMN key TYPE VARCHAR(400)"))
        conn.execute(sa.text("DROP TABLE held_deletes"))  # revision 0005's
        conn.execute(sa.text("DROP TABLE provenance"))  # revision 0006's (outbox.origins stays: 0006 keeps it)
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0002'"))
    before, head = db.upgrade(engine)
    assert before == "0002" and head != before
    types = catalog_types(engine, "alfa_customer")
    assert {k: types[k] for k in ("id", "balance", "_deleted")} == expected(
        engine, {"id": "bigint", "balance": "numeric", "_deleted": "boolean"})
    with engine.connect() as conn:
        assert sorted(conn.execute(sa.text("SELECT id FROM alfa_customer")).scalars()) == sorted(int(i) for i in ids)
    if pg:
        assert catalog_types(engine, "records")["remote_id"] == "text"
        assert catalog_types(engine, "links")["left_id"] == catalog_types(engine, "outbox")["key"] == "text"
