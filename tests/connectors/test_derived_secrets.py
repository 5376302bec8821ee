"""Issue 14.10: nothing derived from a secret (login hash, session id, token) reaches output,
logs or the mirror — here a vtiger whose login error echoes the request, md5 access hash included."""
from __future__ import annotations

import re
import sqlite3

from click.testing import CliRunner

from syncengine.cli import main
from syncengine.redact import DERIVED_KEPT, Secrets

RIGHT_KEY, WRONG_KEY = "the-right-key-1", "a-wrong-key-2"
HEX32 = re.compile(r"[0-9a-f]{32}")


def test_an_echoed_login_hash_never_reaches_check_pull_status_logs_or_runs(emulator, write_config, sqlite_url,
                                                                           monkeypatch):
    server = emulator("vtiger", records=3, access_key=RIGHT_KEY, echo_login_request=True)
    monkeypatch.setenv("VT_KEY", WRONG_KEY)
    path = write_config(sqlite_url, {"vt": {"kind": "vtiger", "url": server.url, "username": "admin",
                                            "access_key": "${VT_KEY}", "entities": ["Contacts"],
                                            "retries": 0, "timeout": 5}})
    runner = CliRunner()
    outputs = {}
    for name, args in {"check": ["check"], "pull --json": ["pull", "--json"],
                       "-vv pull": ["-vv", "pull"], "status --json": ["status", "--json"]}.items():
        result = runner.invoke(main, ["--config", str(path), *args])
        outputs[name] = result.output + (result.stderr if result.stderr_bytes is not None else "")
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as db:
        outputs["runs"] = repr(db.execute("SELECT * FROM runs").fetchall())

    assert "accessKey=" in outputs["check"]  # the CRM did echo the request
    for name, text in outputs.items():
        assert WRONG_KEY not in text, name
        assert not HEX32.findall(text), (name, text)


def test_derived_values_are_kept_to_the_newest_few_so_a_daemon_does_not_grow_without_end():
    secrets = Secrets()
    secrets.add("config-secret-1")
    for n in range(DERIVED_KEPT + 10):
        secrets.add_derived(f"session-{n:04d}")
    newest = f"session-{DERIVED_KEPT + 9:04d}"
    assert secrets.redact(f"session-0000 {newest} config-secret-1") == "session-0000 *** ***"
