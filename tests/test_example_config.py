"""The repository's example sync.toml and mappings/ work as they stand, against the emulators."""
from __future__ import annotations

import shutil
from pathlib import Path

from syncengine.config import load_config
from syncengine.sync import run_sync

ROOT = Path(__file__).resolve().parents[1]


def test_the_example_config_syncs_against_the_emulators(emulator, tmp_path, monkeypatch):
    monkeypatch.setenv("VT_ACCESS_KEY", "example-key")
    monkeypatch.setenv("ALFA_API_KEY", "example-key")
    vt = emulator("vtiger", records=15, access_key="example-key")
    alfa = emulator("alfacrm", records=15, api_key="example-key")
    text = (ROOT / "sync.toml").read_text(encoding="utf-8")
    text = text.replace("http://127.0.0.1:8081", vt.url).replace("http://127.0.0.1:8082", alfa.url)
    text = text.replace("rate_limit = 3 ", "rate_limit = 100 ")  # the emulator needs no courtesy
    (tmp_path / "sync.toml").write_text(text, encoding="utf-8")
    shutil.copytree(ROOT / "mappings", tmp_path / "mappings")
    config = load_config(tmp_path / "sync.toml")
    assert [job.name for job in config.jobs] == ["nightly", "contacts-often"]
    first = run_sync(config, ["contacts"])
    assert first.ok and first.apply.writes > 0
    assert run_sync(config, ["contacts"]).apply.writes == 0
