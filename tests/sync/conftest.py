"""A vtiger and an Alfa CRM emulator over HTTP, a sync.toml naming them ``vt`` and ``alfa``, and
the ``contacts`` mapping; helpers that stage records the way a CRM user would."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from syncengine.config import Config, load_config
from syncengine.sync import run_sync

ROOT = Path(__file__).resolve().parents[2]
VT_KEY = "vt-sync-key"
ALFA_KEY = "alfa-sync-key"


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VT_ACCESS_KEY", VT_KEY)
    monkeypatch.setenv("ALFA_API_KEY", ALFA_KEY)


class Pair:
    """Both emulators, the config and staging helpers."""

    def __init__(self, vt: Any, alfa: Any, config_path: Path):
        self.vt_server, self.alfa_server = vt, alfa
        self.vt, self.alfa = vt.app, alfa.app
        self.config_path = config_path

    @property
    def config(self) -> Config:
        return load_config(self.config_path)

    def mapping_file(self, name: str = "contacts") -> Path:
        return self.config_path.parent / "mappings" / f"{name}.toml"

    # -- staging, as a CRM user would --------------------------------------------------------
    def vt_add(self, **values: Any) -> str:
        return self.vt.control_write("Contacts", values)

    def vt_edit(self, rid: str, **values: Any) -> None:
        self.vt.control_edit(rid, values)

    def alfa_add(self, **values: Any) -> str:
        with self.alfa.lock:
            return str(self.alfa.insert("customer", {"branch_ids": [1], "is_study": 1, "legal_type": 1,
                                                     **values})["id"])

    def alfa_edit(self, rid: str, **values: Any) -> None:
        with self.alfa.lock:
            self.alfa.change("customer", int(rid), values)

    def vt_contacts(self) -> dict[str, dict[str, Any]]:
        return self.vt.live_records("Contacts")

    def alfa_customers(self) -> dict[str, dict[str, Any]]:
        return self.alfa.live_records("customer")

    def requests(self) -> int:
        return self.vt_server.stats_json()["total"] + self.alfa_server.stats_json()["total"]

    def write_requests(self) -> int:
        vt = self.vt_server.stats_json()["requests"]
        alfa = self.alfa_server.stats_json()["requests"]
        return (sum(vt.get(op, 0) for op in ("create", "revise", "update", "delete"))
                + sum(n for op, n in alfa.items() if op.rsplit("/", 1)[-1] in ("create", "update", "delete")))


def write_pair_config(write_config: Any, mirror_url: str, vt: Any, alfa: Any, *, mapping: str | None = None,
                      alfa_settings: dict[str, Any] | None = None, **settings: Any) -> Path:
    path = write_config(mirror_url, {
        "vt": {"kind": "vtiger", "url": vt.url, "username": "admin", "access_key": "${VT_ACCESS_KEY}",
               "entities": ["Contacts"], **settings},
        "alfa": {"kind": "alfacrm", "url": alfa.url, "email": "admin@example.com", "api_key": "${ALFA_API_KEY}",
                 "entities": ["customer"], "use_log": False, **settings, **(alfa_settings or {})},
    }, jobs=[{"name": "contacts-job", "every": "15m", "mappings": ["contacts"]}])
    folder = path.parent / "mappings"
    folder.mkdir(exist_ok=True)
    if mapping is None:
        shutil.copy(ROOT / "mappings" / "contacts.toml", folder / "contacts.toml")
    else:
        (folder / "contacts.toml").write_text(mapping, encoding="utf-8")
    return path


@pytest.fixture
def pair(emulator: Any, write_config: Any, sqlite_url: str) -> Pair:
    vt = emulator("vtiger", records=0, access_key=VT_KEY)
    alfa = emulator("alfacrm", records=0, api_key=ALFA_KEY)
    return Pair(vt, alfa, write_pair_config(write_config, sqlite_url, vt, alfa))


@pytest.fixture
def make_pair(emulator: Any, write_config: Any, sqlite_url: str) -> Any:
    """``make_pair(mapping_text, **alfa_settings)``: both emulators, empty, and a sync.toml with that mapping."""
    def make(mapping: str, **alfa_settings: Any) -> Pair:
        vt = emulator("vtiger", records=0, access_key=VT_KEY)
        alfa = emulator("alfacrm", records=0, api_key=ALFA_KEY)
        return Pair(vt, alfa, write_pair_config(write_config, sqlite_url, vt, alfa, mapping=mapping,
                                                alfa_settings=alfa_settings))
    return make


MAPPING = """
left = "vt:Contacts"
right = "alfa:customer"
match_on = ["email"]
conflict = "newest"
on_delete = "propagate"

[fields]
name  = { left = "lastname", right = "name", conflict = "left" }
email = { left = "email", right = "email[0]", normalize = "email" }
phone = { left = "phone", right = "phone[0]", normalize = "phone", conflict = "right" }
title = { left = "title", right = "legal_name" }
note  = { left = "description", right = "note", conflict = "manual" }
"""


@pytest.fixture
def small(emulator: Any, write_config: Any, mirror_url: str) -> Pair:
    """Five linked contacts, on a SQLite and on a PostgreSQL mirror."""
    vt = emulator("vtiger", records=0, access_key=VT_KEY)
    alfa = emulator("alfacrm", records=0, api_key=ALFA_KEY)
    pair = Pair(vt, alfa, write_pair_config(write_config, mirror_url, vt, alfa, mapping=MAPPING))
    ids = [pair.vt_add(lastname=f"Сидоров{i}", email=f"s{i}@example.com", phone=f"8916000000{i}",
                       title="Инженер", description="") for i in range(5)]
    assert run_sync(pair.config).apply.writes == 5
    pair.ids = {v: next(k for k, c in pair.alfa_customers().items() if c["email"] == [f"s{i}@example.com"])
                for i, v in enumerate(ids)}
    return pair
