"""Issue 16.4: ``history`` keeps ``<table>_history``, one row per observed version (SCD type 2)."""
from __future__ import annotations

import sqlalchemy as sa

from syncengine.config import load_config
from syncengine.mirror import Mirror
from syncengine.pull import pull

from .helpers import catalog_types, expected, vtiger_system


def versions(mirror: Mirror, remote_id: str) -> list:
    with mirror.engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT lastname, valid_from, valid_to, deleted FROM sp_contacts_history WHERE id = :id "
            "ORDER BY valid_from"), {"id": remote_id}).all()


def test_history_keeps_every_version_edits_and_deletions(emulator, write_config, mirror_url):
    server = emulator("salesplatform", records=6)
    config = load_config(write_config(mirror_url, {"sp": vtiger_system(server, history=["Contacts"])}))
    assert pull(config).ok
    mirror = Mirror(config.mirror_url)
    edited, gone, *_ = sorted(server.app.live_records("Contacts"))
    first = versions(mirror, edited)[0].lastname
    server.app.control_clock(advance=120)
    server.app.control_edit(edited, {"lastname": "Второва"})
    server.app.control_delete(gone)
    assert pull(config).ok
    server.app.control_clock(advance=120)
    server.app.control_edit(edited, {"lastname": "Третьякова"})
    assert pull(config).ok

    rows = versions(mirror, edited)
    assert [r.lastname for r in rows] == [first, "Второва", "Третьякова"]
    assert [bool(r.deleted) for r in rows] == [False, False, False]
    assert rows[0].valid_to == rows[1].valid_from and rows[1].valid_to == rows[2].valid_from
    assert rows[2].valid_to is None
    deleted = versions(mirror, gone)
    assert [bool(r.deleted) for r in deleted] == [False, True] and deleted[1].valid_to is None
    with mirror.engine.connect() as conn:  # one current version per record, as many as the table has rows
        current = conn.execute(sa.text("SELECT count(*) FROM sp_contacts_history WHERE valid_to IS NULL")).scalar()
        total = conn.execute(sa.text("SELECT count(*) FROM sp_contacts")).scalar()
        as_of = conn.execute(sa.text(  # what the record looked like when its second version was current
            "SELECT lastname FROM sp_contacts_history WHERE id = :id AND valid_from <= :t "
            "AND (valid_to IS NULL OR valid_to > :t)"), {"id": edited, "t": rows[1].valid_from}).scalar()
    assert current == total == 6 and as_of == "Второва"
    types = catalog_types(mirror.engine, "sp_contacts_history")
    assert {k: types[k] for k in ("valid_from", "valid_to", "deleted")} == expected(
        mirror.engine, {"valid_from": "timestamptz", "valid_to": "timestamptz", "deleted": "boolean"})


def test_without_history_there_is_no_history_table(emulator, write_config, mirror_url):
    server = emulator("salesplatform", records=3)
    config = load_config(write_config(mirror_url, {"sp": vtiger_system(server, history=False)}))
    assert pull(config).ok
    assert not sa.inspect(Mirror(config.mirror_url).engine).has_table("sp_contacts_history")
