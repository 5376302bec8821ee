"""Issue 14.8 / 16: record ids longer than 128 characters go through links, the outbox, parked
records and held deletes, on SQLite and PostgreSQL (the sync-state tables once held VARCHAR(128))."""
from __future__ import annotations

import dataclasses
import re
from typing import Any

import sqlalchemy as sa

from syncengine.config import load_config
from syncengine.deletes import list_deletes
from syncengine.mirror import Mirror
from syncengine.mirror.models import LinkRow, OutboxRow, ParkedRow
from syncengine.sync import run_sync

MAPPING = """
left = "vt:Contacts"
right = "alfa:customer"
match_on = ["email"]

[fields]
name  = { left = "lastname", right = "name" }
email = { left = "email", right = "email[0]", normalize = "email" }
title = { left = "title", right = "legal_name" }
"""
TAIL = "-" + "0123456789abcdef" * 10  # every vtiger id the engine sees ends so: 164+ characters
VT_ID = re.compile(rb'"(\d+x\d+)"')


def long_vtiger_ids(app: Any) -> None:
    """vtiger answers with ids TAIL longer and takes them back in every request."""
    answer = app.handle

    def handle(request: Any) -> Any:
        short = dataclasses.replace(
            request, query={k: v.replace(TAIL, "") for k, v in request.query.items()},
            form={k: v.replace(TAIL, "") for k, v in request.form.items()},
            body=request.body.replace(TAIL.encode(), b""))
        response = answer(short)
        response.body = VT_ID.sub(lambda m: b'"' + m[1] + TAIL.encode() + b'"', response.body)
        return response

    app.handle = handle


def test_an_id_longer_than_128_characters_is_linked_written_parked_and_held(emulator, write_config, mirror_url):
    vt, alfa = emulator("vtiger", records=0), emulator("alfacrm", records=0)
    long_vtiger_ids(vt.app)
    path = write_config(mirror_url, {
        "vt": {"kind": "vtiger", "url": vt.url, "username": "admin", "access_key": "emulator",
               "entities": ["Contacts"]},
        "alfa": {"kind": "alfacrm", "url": alfa.url, "email": "admin@example.com", "api_key": "emulator",
                 "entities": ["customer"], "use_log": False}})
    (path.parent / "mappings").mkdir()
    (path.parent / "mappings" / "contacts.toml").write_text(MAPPING, encoding="utf-8")
    config = load_config(path)
    short = vt.app.control_write("Contacts", {"lastname": "Долгих", "email": "long@example.com", "title": "Инженер"})
    vt_id = short + TAIL
    assert len(vt_id) > 128

    assert run_sync(config).apply.writes == 1            # created in Alfa, linked to the long id
    [alfa_id] = alfa.app.live_records("customer")
    with alfa.app.lock:
        alfa.app.change("customer", int(alfa_id), {"legal_name": "Главный инженер"})
    assert run_sync(config).apply.writes == 1            # an update of the long-id record
    assert vt.app.live_records("Contacts")[short]["title"] == "Главный инженер"

    mirror = Mirror(config.mirror_url)
    with mirror.engine.connect() as conn:
        assert conn.execute(sa.select(LinkRow.left_id)).scalars().all() == [vt_id]
        sent = conn.execute(sa.select(OutboxRow.op, OutboxRow.remote_id, OutboxRow.left_id)
                            .order_by(OutboxRow.id)).all()
    assert [tuple(r) for r in sent] == [("create", alfa_id, vt_id), ("update", vt_id, vt_id)]

    second = vt.app.control_write("Contacts", {"lastname": "Плохой", "email": "нет-собачки"})  # Alfa refuses it
    assert not run_sync(config).ok
    with mirror.engine.connect() as conn:
        assert conn.execute(sa.select(ParkedRow.remote_id)).scalars().all() == [second + TAIL]
    vt.app.control_delete(short)
    run_sync(config)
    assert [d["remote_id"] for d in list_deletes(mirror)] == [vt_id]
