"""Issue 16.3: ``fields`` / ``exclude_fields`` choose what lands; an excluded field never reaches
the mirror, its raw JSON included."""
from __future__ import annotations

import shutil
from pathlib import Path

import sqlalchemy as sa

from syncengine.config import load_config
from syncengine.jsonutil import loads
from syncengine.mirror import Mirror
from syncengine.pull import pull
from syncengine.sync import run_sync

from .helpers import ALFA_KEY, alfa_system, catalog_types, vtiger_system

ROOT = Path(__file__).resolve().parents[2]


def stored(config) -> tuple[set[str], set[str]]:
    """(reporting columns, keys of every raw record) of sp_contacts."""
    engine = Mirror(config.mirror_url).engine
    with engine.connect() as conn:
        data = conn.execute(sa.text("SELECT data FROM records WHERE entity = 'Contacts'")).scalars().all()
    return set(catalog_types(engine, "sp_contacts")), {k for d in data for k in loads(d)}


def test_excluded_fields_never_reach_the_mirror(emulator, write_config, mirror_url):
    server = emulator("salesplatform", records=10)
    config = load_config(write_config(mirror_url, {"sp": vtiger_system(
        server, exclude_fields=["birthday", "Contacts.email", "Accounts.lastname"])}))
    assert pull(config).ok
    columns, keys = stored(config)
    assert not {"birthday", "email"} & (columns | keys)
    assert {"lastname", "mobile"} <= columns & keys  # an exclusion for another entity does not apply


def test_a_field_list_keeps_only_those_fields(emulator, write_config, mirror_url):
    server = emulator("salesplatform", records=10)
    config = load_config(write_config(mirror_url, {"sp": vtiger_system(
        server, fields=["Contacts.lastname", "Contacts.mailingcity"])}))
    assert pull(config).ok
    columns, keys = stored(config)
    assert keys == {"id", "lastname", "mailingcity"}
    assert columns == {"id", "lastname", "mailingcity", "_deleted", "_synced_at"}


def test_excluding_a_field_later_removes_what_the_mirror_held(emulator, write_config, mirror_url):
    server = emulator("salesplatform", records=10)
    path = write_config(mirror_url, {"sp": vtiger_system(server)})
    assert pull(load_config(path)).ok
    assert "email" in stored(load_config(path))[0]
    config = load_config(write_config(mirror_url, {"sp": vtiger_system(server, exclude_fields=["email"])}))
    result = pull(config).entity("sp", "Contacts")
    assert result.status == "ok" and result.created == 0
    assert result.schema_changes == ["sp_contacts: -email (excluded; removed from the table and the raw records)"]
    columns, keys = stored(config)
    assert "email" not in columns | keys and "lastname" in columns & keys
    assert pull(config).entity("sp", "Contacts").updated == 0  # the purged records hash as read


def test_a_record_a_sync_writes_is_mirrored_without_its_excluded_fields(emulator, write_config, sqlite_url):
    vt = emulator("vtiger", records=0, access_key="emulator")
    alfa = emulator("alfacrm", records=0, api_key=ALFA_KEY)
    path = write_config(sqlite_url, {
        "vt": {"kind": "vtiger", "url": vt.url, "username": "admin", "access_key": "${VT_KEY}",
               "entities": ["Contacts"]},
        "alfa": alfa_system(alfa, use_log=False, exclude_fields=["customer.barcode", "customer.color"])})
    (path.parent / "mappings").mkdir()
    shutil.copy(ROOT / "mappings" / "contacts.toml", path.parent / "mappings" / "contacts.toml")
    vt.app.control_write("Contacts", {"lastname": "Орлова", "email": "orlova@example.com"})
    config = load_config(path)
    assert run_sync(config).apply.writes == 1  # the Alfa customer is created and its answer mirrored
    with Mirror(config.mirror_url).engine.connect() as conn:
        (data,) = conn.execute(sa.text("SELECT data FROM records WHERE system = 'alfa'")).scalars().all()
    assert loads(data)["name"] == "Орлова" and not {"barcode", "color"} & set(loads(data))
