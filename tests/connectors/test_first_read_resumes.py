"""Issue 14.4: a first full read cut short resumes where its last committed batch ended, instead
of reading everything again (killing the CRM 4 s into 5,000 contacts re-read all 5,000)."""
from __future__ import annotations

import pytest

from syncengine.config import load_config
from syncengine.connectors.vtiger import _clean
from syncengine.mirror import Mirror
from syncengine.pull import pull

KEY = "emulator-Access-Key-42"
RECORDS = 1000


def crash_after(server, records):
    """A progress callback that takes the CRM down once RECORDS rows are committed."""
    def progress(system, entity, read):
        if read >= records:
            server.faults.error_rate = 1.0
    return progress


@pytest.mark.parametrize("mode", ["sync", "query"])
def test_vtiger_first_read_resumes_after_a_crash(emulator, write_config, sqlite_url, mode):
    server = emulator("vtiger", records=RECORDS, access_key=KEY, sync_broken=(mode == "query"))
    config = load_config(write_config(sqlite_url, {"vt": {
        "kind": "vtiger", "url": server.url, "username": "admin", "access_key": KEY, "change_feed": mode,
        "entities": ["Contacts"], "retries": 0, "timeout": 5}}))
    first = pull(config, progress=crash_after(server, 300))
    assert not first.ok
    committed = len(Mirror(config.mirror_url).records("vt", "Contacts"))
    assert 300 <= committed < RECORDS

    server.faults.error_rate = 0.0
    server.reset_stats()
    second = pull(config)
    assert second.ok
    expected = {rid: _clean(r) for rid, r in server.app.live_records("Contacts").items()}
    assert Mirror(config.mirror_url).records("vt", "Contacts") == expected
    pages_left = -(-(RECORDS - committed) // 100)
    assert server.stats_json()["requests"].get("query", 0) <= pages_left + 1  # + the overlap page


def test_salesman_first_read_of_clients_resumes_after_a_crash(emulator, write_config, sqlite_url):
    server = emulator("salesman", records=2000, api_key="emulator-key")
    total = len(server.app.clients)
    config = load_config(write_config(sqlite_url, {"sm": {
        "kind": "salesman", "url": server.url, "login": "admin", "api_key": "emulator-key",
        "entities": ["client"], "retries": 0, "timeout": 10}}))
    first = pull(config, progress=crash_after(server, 500))
    assert not first.ok
    committed = len(Mirror(config.mirror_url).records("sm", "client"))
    assert 500 <= committed < total

    server.faults.error_rate = 0.0
    second = pull(config).entity("sm", "client")
    assert second.status == "ok"
    assert set(Mirror(config.mirror_url).records("sm", "client")) == {str(c) for c in server.app.clients}
    assert second.created == total - committed
    # read again: the last page read before the crash, and the newest rows the change windows overlap
    assert second.unchanged <= 200 + 5
