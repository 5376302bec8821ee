"""SalesMan connector over real HTTP against the emulator (its defects on, as on the real CRM)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from syncengine.config import load_config
from syncengine.connectors import Capture, connect
from syncengine.connectors.salesman import SalesManConnector, php_error_message
from syncengine.errors import AuthError, NotFound, ProtocolError, ValidationError
from syncengine.mirror import Mirror
from syncengine.pull import pull
from syncengine.webhooks import WebhookServer

API_KEY = "emulator-key"


def settings(server: Any, **extra: Any) -> dict[str, Any]:
    return {"kind": "salesman", "url": server.url, "login": "admin", "api_key": API_KEY,
            "timezone": "Europe/Moscow", **extra}


def connector(server: Any, **extra: Any) -> SalesManConnector:
    return connect("sm", {"overlap": 2, "retries": 0, **settings(server, **extra)})  # type: ignore[return-value]


@pytest.fixture
def sm(emulator):
    return emulator("salesman", records=60, api_key=API_KEY)


def test_person_update_of_one_field_keeps_every_other_field_and_the_owner(sm):
    app = sm.app
    pid, before = next((p, dict(r)) for p, r in app.persons.items() if r["iduser"] == 2 and r["rol"])
    updated = connector(sm).update("person", str(pid), {"ptitle": "Финансовый директор"})

    after = app.persons[pid]
    assert after["ptitle"] == "Финансовый директор"
    for name in ("person", "tel", "mob", "mail", "rol", "clid", "iduser", "clientpath"):
        assert after[name] == before[name], name
    assert updated["iduser"] == 2 and updated["person"] == before["person"]
    # the defect is on: the same one-field update sent raw blanks the contact and drops its owner
    requests.post(f"{sm.url}/developer/v2/person", data={
        "login": "admin", "apikey": API_KEY, "action": "update", "pid": pid, "ptitle": "x"})
    assert app.persons[pid]["person"] == "" and app.persons[pid]["iduser"] is None


def test_deal_update_keeps_linked_contacts_and_margin(sm):
    app = sm.app
    did, before = next((d, dict(r)) for d, r in app.deals.items() if r["pid_list"] and r["marga"])
    updated = connector(sm).update("deal", str(did), {"content": "Поставка 12 единиц (уточнено)"})

    after = app.deals[did]
    assert after["content"] == "Поставка 12 единиц (уточнено)"
    assert after["pid_list"] == before["pid_list"] and after["marga"] == before["marga"]
    assert updated["marga"] == before["marga"]


def test_deal_stage_and_owner_go_through_their_own_calls(sm):
    did = next(d for d, r in sm.app.deals.items() if r["iduser"] == 1)
    conn = connector(sm)
    conn.update("deal", str(did), {"step": 60, "iduser": 2})
    row = sm.app.deals[did]
    assert row["idcategory"] == 5 and row["iduser"] == 2
    assert {"deal.change.step", "deal.change.user"} <= set(sm.stats_json()["requests"])


def test_client_update_is_partial_and_create_returns_the_stored_record(sm):
    conn = connector(sm)
    clid, before = next(iter(sm.app.clients.items()))
    before = dict(before)
    record = conn.update("client", str(clid), {"phone": "+7 (812) 555-99-99"})
    assert record["phone"] == "+7 (812) 555-99-99" and record["title"] == before["title"]
    created = conn.create("client", {"title": 'ООО "Альфа-Строй"', "des": 'в "кавычках"',
                                     "bankinfo": {"castInn": "7701234567"}})
    assert created["title"] == "Альфа-Строй, ООО" and created["bankinfo"]["castInn"] == "7701234567"
    with pytest.raises(ValidationError) as duplicate:
        conn.create("client", {"title": 'ООО "Альфа-Строй"'})
    assert duplicate.value.errors == {"exists": int(created["id"])}


def test_html_error_page_becomes_a_readable_error(sm):
    sm.app.control_html_error_next("Uncaught mysqli_sql_exception: Unknown column 'x' in 'ORDER BY'")
    with pytest.raises(ProtocolError) as error:
        connector(sm).fetch("deal", ["1"])
    message = str(error.value)
    assert "PHP fatal error: Uncaught mysqli_sql_exception: Unknown column 'x' in 'ORDER BY'" in message
    assert "<b>" not in message and "Stack trace" not in message and message.startswith("sm: deal.list")


def test_php_error_message_of_a_recorded_type_error_page():
    page = ("<br />\n<b>Fatal error</b>:  Uncaught TypeError: Salesman\\Client::delete(): Argument #1 "
            "($clid) must be of type int, null given, called in /var/www/developer/v2/client.php on line 677 "
            "and defined in /var/www/inc/class/Client.php:1317\nStack trace:\n#0 /var/www/developer/v2/"
            "client.php(677): Salesman\\Client-&gt;delete()\n#1 {main}\n  thrown in <b>/var/www/inc/class/"
            "Client.php</b> on line <b>1317</b><br />\n")
    assert php_error_message(page) == ("PHP fatal error: Uncaught TypeError: Salesman\\Client::delete(): "
                                       "Argument #1 ($clid) must be of type int, null given "
                                       "(client.php, line 677)")


def test_bad_credentials_are_an_auth_error(sm):
    with pytest.raises(AuthError, match="login refused"):
        connector(sm, api_key="wrong-key").check()
    assert "Руководитель организации" in connector(sm).check()


def test_paging_walks_every_row_in_id_order(emulator):
    server = emulator("salesman", records=450, api_key=API_KEY)  # default order has no tie-breaker
    batches = list(connector(server).read_changes("client", None))
    ids = [int(r["id"]) for b in batches for r in b.records]
    assert ids == sorted(server.app.clients) and len(ids) == 450
    assert all(b.scan for b in batches) and json.loads(batches[-1].cursor)["since"]
    lists = server.stats_json()["requests"]["client.list"]
    assert lists == 3 + 2  # three pages (200, 200, 50) and the two newest-change probes


def test_client_change_filters_read_new_and_edited_clients_only(sm):
    conn = connector(sm)
    assert conn.capture("client") is Capture.INCREMENTAL and conn.capture("person") is Capture.SCAN
    cursor = [b.cursor for b in conn.read_changes("client", None) if b.cursor][-1]
    sm.app.control_clock(advance=60)
    edited, quiet = list(sm.app.clients)[:2]
    conn.update("client", str(edited), {"des": "после окна"})
    sm.app.control_edit("client", quiet, {"iduser": 2}, bump_change_date=False)  # an owner change
    new = conn.create("client", {"title": "ЧейнджФильтр Новый"})["id"]

    batches = list(conn.read_changes("client", cursor))
    read = {r["id"]: max(r["date_create"], r["date_edit"] or "") for b in batches for r in b.records}
    since = json.loads(cursor)["since"]
    assert {i for i, stamp in read.items() if stamp > since} == {str(edited), new}  # the rest: overlap
    overlap = (datetime.strptime(since, "%Y-%m-%d %H:%M:%S") - timedelta(seconds=2)).strftime("%Y-%m-%d %H:%M:%S")
    assert str(quiet) not in read and all(stamp >= overlap for stamp in read.values())
    assert not any(b.scan for b in batches) and json.loads(batches[-1].cursor)["since"] > json.loads(cursor)["since"]


def test_deal_changes_by_day(sm):
    conn = connector(sm)
    cursor = [b.cursor for b in conn.read_changes("deal", None) if b.cursor][-1]
    did = next(iter(sm.app.deals))
    conn.update("deal", str(did), {"adres": "Склад №3"})
    changed = {r["id"] for b in conn.read_changes("deal", cursor) for r in b.records}
    assert str(did) in changed and len(changed) < len(sm.app.deals)


def test_fetch_leaves_out_missing_records_and_delete_is_idempotent(sm):
    conn = connector(sm)
    pid = next(iter(sm.app.persons))
    assert [r["id"] for r in conn.fetch("person", [str(pid), "99999"])] == [str(pid)]
    conn.delete("person", str(pid))
    conn.delete("person", str(pid))
    assert conn.fetch("person", [str(pid)]) == []
    with pytest.raises(NotFound):
        conn.update("person", str(pid), {"ptitle": "x"})


def test_webhook_for_an_edited_client_re_reads_that_client_only(emulator, write_config, sqlite_url):
    server = emulator("salesman", records=40, api_key=API_KEY)
    config = load_config(write_config(sqlite_url, {"sm": settings(server, entities=["client"])}))
    assert pull(config, targets=["sm"]).ok
    clid = next(iter(server.app.clients))
    with WebhookServer(config) as hooks:
        server.app.control_webhook(f"{hooks.url}/sm", "client.edit")
        # an owner/phone change the change date does not show: only the webhook tells
        server.app.control_edit("client", clid, {"phone": "+7 (342) 111-22-34"}, bump_change_date=False)
        server.app.flush_webhooks()
        assert hooks.receiver.hinted == 1
    server.reset_stats()

    result = pull(config, targets=["sm"])
    assert result.entity("sm", "client").updated == 1
    assert server.stats_json()["requests"]["client.info"] == 1
    assert Mirror(sqlite_url).records("sm", "client")[str(clid)]["phone"] == "+7 (342) 111-22-34"


def test_sweep_flags_deleted_clients_and_persons(emulator, write_config, sqlite_url):
    server = emulator("salesman", records=40, api_key=API_KEY)
    config = load_config(write_config(sqlite_url, {"sm": settings(server, entities=["client", "person"],
                                                                  sweep_every="0s")}))
    assert pull(config, targets=["sm"]).ok
    clid = next(iter(server.app.clients))
    pid = next(p for p, r in server.app.persons.items() if r["clid"] != clid)
    server.app.control_delete("client", clid)
    server.app.control_delete("person", pid)

    result = pull(config, targets=["sm"])
    assert result.entity("sm", "client").deleted == 1 and result.entity("sm", "person").deleted == 1
    mirror = Mirror(sqlite_url)
    assert mirror.deleted_ids("sm", "client") == {str(clid)}
    assert mirror.deleted_ids("sm", "person") == {str(pid)}
