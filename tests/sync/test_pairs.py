"""Every example mapping in docs/mappings/ validates and converges against the emulators: the sync
engine works for every connector, not only vtiger ↔ Alfa CRM."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from syncengine.config import load_config
from syncengine.sync import run_sync

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "mappings"
SECRET = "pair-secret-1"


def systems(emulator) -> dict[str, dict]:
    vt = emulator("vtiger", records=6, access_key=SECRET)
    alfa = emulator("alfacrm", records=6, api_key=SECRET)
    ruko = emulator("rukovoditel", records=6, password=SECRET, api_key=SECRET)
    sm = emulator("salesman", records=6, api_key=SECRET)
    return {
        "vt": {"kind": "vtiger", "url": vt.url, "username": "admin", "access_key": SECRET,
               "entities": ["Contacts"]},
        "alfa": {"kind": "alfacrm", "url": alfa.url, "email": "admin@example.com", "api_key": SECRET,
                 "entities": ["customer"]},
        "ruko": {"kind": "rukovoditel", "url": ruko.url, "username": "admin", "password": SECRET,
                 "api_key": SECRET, "entities": ["Contacts"]},
        "sm": {"kind": "salesman", "url": sm.url, "login": "admin", "api_key": SECRET, "entities": ["person"]},
    }


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.toml")))
def test_example_mapping_syncs_and_converges(example, emulator, write_config, sqlite_url, tmp_path):
    path = write_config(sqlite_url, systems(emulator))
    (tmp_path / "mappings").mkdir()
    shutil.copy(EXAMPLES / example, tmp_path / "mappings" / example)
    config = load_config(path)
    first = run_sync(config)
    assert first.ok, first.apply.failed
    assert first.apply.writes > 0
    second = run_sync(config)
    assert second.ok and second.apply.writes == 0
