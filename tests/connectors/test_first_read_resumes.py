"""Issue 14.4: a first full read cut short resumes where its last committed batch ended, instead
of reading everything again (killing the CRM 4 s into 5,000 contacts re-read all 5,000)."""
from __future__ import annotations

import pytest

from syncengine.config import load_config
from syncengine.connectors import connect
from syncengine.connectors.vtiger import _clean
from syncengine.mirror import Mirror
from syncengine.pull import pull

KEY = "emulator-Access-Key-42"
RECORDS = 1000


def pull_cut_short(config, server, system, entity, after, *, after_requests=None):
    """A first pull during which the CRM goes down once AFTER rows are committed (or, where the
    reader runs ahead of the writer, after the AFTER_REQUESTS = (operation, n)th request); it comes
    back up after it. Returns how many rows that pull committed."""
    def progress(_system, _entity, read):
        if read >= after:
            server.faults.error_rate = 1.0

    if after_requests is not None:
        operation, nth = after_requests
        server.after_request(operation, lambda: setattr(server.faults, "error_rate", 1.0), nth=nth)
    assert not pull(config, progress=None if after_requests else progress).ok
    server.faults.error_rate = 0.0
    committed = len(Mirror(config.mirror_url).records(system, entity))
    assert after <= committed
    return committed


@pytest.mark.parametrize("mode", ["sync", "query"])
def test_vtiger_first_read_resumes_after_a_crash(emulator, write_config, sqlite_url, mode):
    server = emulator("vtiger", records=RECORDS, access_key=KEY, sync_broken=(mode == "query"))
    config = load_config(write_config(sqlite_url, {"vt": {
        "kind": "vtiger", "url": server.url, "username": "admin", "access_key": KEY, "change_feed": mode,
        "entities": ["Contacts"], "retries": 0, "timeout": 5}}))
    committed = pull_cut_short(config, server, "vt", "Contacts", after=300)
    assert committed < RECORDS

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
    committed = pull_cut_short(config, server, "sm", "client", after=500)
    assert committed < total

    second = pull(config).entity("sm", "client")
    assert second.status == "ok"
    assert set(Mirror(config.mirror_url).records("sm", "client")) == {str(c) for c in server.app.clients}
    assert second.created == total - committed
    # read again: the last page read before the crash, and the newest rows the change windows overlap
    assert second.unchanged <= 200 + 5


def read_everything(config, system, entity):
    """Every record as a fresh full read through the connector sees it."""
    connector = connect(system, config.systems[system])
    try:
        return {r["id"]: r for batch in connector.read_changes(entity, None) for r in batch.records}
    finally:
        connector.close()


def test_rukovoditel_first_read_resumes_after_a_crash(emulator, write_config, sqlite_url):
    """Rukovoditel's select has no order: the first read lists the ids (cheap rows) and reads them
    by id in ascending chunks, each committed with the last id; a resumed read lists the ids again
    and goes on after it, then reads what changed since the read began."""
    server = emulator("rukovoditel", records=RECORDS, password="pw", api_key="key")
    config = load_config(write_config(sqlite_url, {"ru": {
        "kind": "rukovoditel", "url": server.url, "username": "admin", "password": "pw", "api_key": "key",
        "entities": ["Contacts"], "retries": 0, "timeout": 5}}))
    # the id listing and two chunks of 200 are read, then the CRM goes down (a cut by committed
    # rows came too late on a quiet machine: the reader had already read all 1,000)
    committed = pull_cut_short(config, server, "ru", "Contacts", after=300, after_requests=("select", 3))
    assert committed < RECORDS
    app = server.app
    app.control_clock(advance=600)   # while it was down: a record already read is edited, one is added
    first_id = min(Mirror(config.mirror_url).records("ru", "Contacts"), key=int)
    app.control_edit("Contacts", first_id, {"field_213": "Изменён"})
    added = str(app.control_insert("Contacts", {"field_213": "Новый"}))

    server.reset_stats()
    second = pull(config).entity("ru", "Contacts")
    assert second.status == "ok"
    assert (second.created, second.updated) == (RECORDS + 1 - committed, 1)
    assert second.unchanged <= 5   # read again: only what the change windows overlap (all 599 before)
    listing_pages = -(-(RECORDS + 1) // 1000)
    chunks_left = -(-(RECORDS + 1 - committed) // 200)
    assert server.stats_json()["requests"]["select"] <= listing_pages + chunks_left + 2  # + two change windows
    mirrored = Mirror(config.mirror_url).records("ru", "Contacts")
    assert mirrored == read_everything(config, "ru", "Contacts")
    assert mirrored[first_id]["first_name"] == "Изменён" and added in mirrored


def test_alfacrm_first_read_resumes_after_a_crash(emulator, write_config, sqlite_url, monkeypatch):
    """Alfa lists customers by name with no keyset: a scan commits a cursor every few pages while
    the Log shows the listing unchanged; a read cut short goes on a page early for every page-size
    of rows the Log names as changed since, then re-reads those rows by id."""
    server = emulator("alfacrm", records=RECORDS, api_key="key")
    config = load_config(write_config(sqlite_url, {"alfa": {
        "kind": "alfacrm", "url": server.url, "email": "admin@example.com", "api_key": "key",
        "entities": ["customer"], "retries": 0, "timeout": 5}}))
    total = len(server.app.live_records("customer"))
    committed = pull_cut_short(config, server, "alfa", "customer", after=300)
    assert committed < total
    app = server.app
    read = sorted(int(i) for i in Mirror(config.mirror_url).records("alfa", "customer"))
    app.control_rename("customer", ids=[read[0]], seed=5)   # moves in the name order
    added = app.control_create("customer", {"name": "Aaron Added", "is_study": 1, "legal_type": 1,
                                            "branch_ids": [1]})

    server.reset_stats()
    second = pull(config).entity("alfa", "customer")
    assert second.status == "ok"
    assert second.unchanged <= 50 + 5   # read again: the page before the cut (everything before)
    requests = server.stats_json()["requests"]
    mirrored = Mirror(config.mirror_url).records("alfa", "customer")
    assert set(mirrored) == set(app.live_records("customer"))
    assert mirrored[str(read[0])]["name"] == app.live_records("customer")[str(read[0])]["name"]
    assert str(added["id"]) in mirrored
    pages_left = -(-(total + 1 - committed) // 50)
    assert requests.get("customer/index", 0) <= pages_left + 1 + 2 + 1  # + one page back, 2 by id, a total


def test_alfacrm_resumed_read_misses_no_row_that_renames_moved(emulator, write_config, sqlite_url):
    """Renames of rows already read move unread rows back by up to one place each: the resumed read
    starts that many rows earlier, so none is skipped."""
    server = emulator("alfacrm", records=RECORDS, api_key="key")
    config = load_config(write_config(sqlite_url, {"alfa": {
        "kind": "alfacrm", "url": server.url, "email": "admin@example.com", "api_key": "key",
        "entities": ["customer"], "retries": 0, "timeout": 5}}))
    pull_cut_short(config, server, "alfa", "customer", after=300)
    read = sorted(int(i) for i in Mirror(config.mirror_url).records("alfa", "customer"))
    server.app.control_rename("customer", ids=read[:120], seed=7)   # more than two pages of moves

    assert pull(config).ok
    live = {rid: row["name"] for rid, row in server.app.live_records("customer").items()}
    assert {rid: r["name"] for rid, r in Mirror(config.mirror_url).records("alfa", "customer").items()} == live
