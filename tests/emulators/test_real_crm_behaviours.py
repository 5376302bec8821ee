"""What the real CRMs do that the engine must cope with (issues 11-14), over HTTP: Rukovoditel keeps
minutes and 255-character inputs, listings hide rows for a while, an Alfa customer moves between
branches, SalesMan serves with four workers. (vtiger's own cases are in test_vtiger_emulator.py.)"""
from __future__ import annotations

import threading
import time
from typing import Any

import requests

# -- Rukovoditel: datetimes to the minute, inputs to 255 characters ---------------------------

def _ruk(server: Any, **form: Any) -> dict[str, Any]:
    reply = requests.post(f"{server.url}/api/rest.php", timeout=5, data={
        "key": "emulator", "username": "admin", "password": "emulator", **form})
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_rukovoditel_keeps_datetimes_to_the_minute_and_cuts_inputs(emulator):
    server = emulator("rukovoditel", records=0)
    new = _ruk(server, action="insert", entity_id="25", **{
        "items[0][field_213]": "Я" * 300, "items[0][field_219]": "2024-05-01 10:15:30"})["data"]["id"]
    stored = server.app.live_records("Contacts")[new]
    assert stored["field_213"] == "Я" * 255
    assert stored["field_219"] == str(server.app.timestamp("2024-05-01 10:15:00"))
    row = _ruk(server, action="select", entity_id="25", **{"filters[id]": new})["data"][0]
    assert (row["213"], row["219"]) == ("Я" * 255, "05/01/2024 10:15")
    _ruk(server, action="update", entity_id="25",
         **{"update_by_field[id]": new, "data[field_219]": "2024-05-01 11:59:59"})
    assert server.app.live_records("Contacts")[new]["field_219"] == str(server.app.timestamp("2024-05-01 11:59:00"))


# -- every emulator: hide rows from the next N listings; reads by id still find them -----------

def test_alfa_rukovoditel_and_salesman_hide_named_rows_for_one_listing(emulator):
    alfa = emulator("alfacrm", records=30)
    token = requests.post(f"{alfa.url}/v2api/auth/login",
                          json={"email": "admin@example.com", "api_key": "emulator"}).json()["token"]

    def index(body: dict[str, Any]) -> dict[str, Any]:
        return requests.post(f"{alfa.url}/v2api/1/customer/index", json=body, params={"per-page": 50},
                             headers={"X-ALFACRM-TOKEN": token}).json()

    listed = index({"removed": 1})
    victim = listed["items"][0]["id"]
    alfa.app.control_hide_rows(ids=[victim], entity="customer")
    assert index({"id": victim, "removed": 1})["total"] == 1   # a read by id is no listing
    glitch = index({"removed": 1})
    assert glitch["total"] == listed["total"] - 1 and victim not in {r["id"] for r in glitch["items"]}
    assert index({"removed": 1})["total"] == listed["total"]   # one listing only

    ruk = emulator("rukovoditel", records=10)
    ruk.app.control_hide_rows(ids=["3"], listings=1, entity="Contacts")
    page = _ruk(ruk, action="select", entity_id="25", rows_per_page="50")
    assert page["number_of_rows"] == 9 and "3" not in {r["id"] for r in page["data"]}
    assert _ruk(ruk, action="select", entity_id="25", rows_per_page="50")["number_of_rows"] == 10

    sm = emulator("salesman", records=10, api_key="k", login="admin@example.com")

    def persons(**params: Any) -> dict[str, Any]:
        return requests.post(f"{sm.url}/developer/v2/person", data={
            "login": "admin@example.com", "apikey": "k", "action": "list", **params}).json()

    total = persons()["count"]
    pid = persons()["data"][0]["pid"]
    sm.app.control_hide_rows(ids=[pid], listings=1)
    assert persons()["count"] == total - 1
    assert persons()["count"] == total
    requests.post(f"{sm.url}/__emulator__/hide_rows", json={"ids": [pid], "listings": None})
    assert persons()["count"] == persons()["count"] == total - 1
    assert requests.post(f"{sm.url}/__emulator__/show_rows").json()["result"] is None
    assert persons()["count"] == total


# -- Alfa CRM: a customer moves to another branch; the Log says when each change happened ------

def test_alfa_customer_moves_branch_and_the_log_dates_each_change(emulator):
    server = emulator("alfacrm", records=20, branches=2)
    token = requests.post(f"{server.url}/v2api/auth/login",
                          json={"email": "admin@example.com", "api_key": "emulator"}).json()["token"]

    def call(path: str, body: dict[str, Any] | None = None, **query: Any) -> dict[str, Any]:
        return requests.post(f"{server.url}/v2api/{path}", json=body or {}, params=query,
                             headers={"X-ALFACRM-TOKEN": token}).json()

    customer = call("1/customer/create", {"name": "Переезжающий", "is_study": 1, "legal_type": 1,
                                          "branch_ids": [1]})["model"]
    assert server.app.control_clock(now="2026-11-22 10:00:07") == "2026-11-22 10:00:07"
    moved = requests.post(f"{server.url}/__emulator__/move_branch", json={"id": customer["id"], "branch": 2})
    assert moved.json()["result"]["branch_ids"] == [2]
    assert call("1/customer/index", {"id": customer["id"]})["total"] == 0
    assert call("2/customer/index", {"id": customer["id"]})["items"][0]["name"] == "Переезжающий"
    assert str(customer["id"]) in server.app.live_records("customer")
    log = call("1/log/index", {"entity": "Customer", "entity_id": customer["id"]})["items"]
    assert (log[0]["event"], log[0]["date_time"]) == (2, "2026-11-22 10:00:07")
    assert log[0]["fields_new"] == {"branch_ids": [2]}


# -- SalesMan: four workers serve at once; a listing shifts under a slow reader ------------------

def test_salesman_serves_four_requests_at_once_and_a_paged_listing_shifts(emulator):
    server = emulator("salesman", records=150, api_key="k", login="admin@example.com")

    def person(action: str, **params: Any) -> dict[str, Any]:
        return requests.post(f"{server.url}/developer/v2/person", data={
            "login": "admin@example.com", "apikey": "k", "action": action, **params}, timeout=10).json()

    first = person("list", offset=0)
    assert first["count"] > 200 and len(first["data"]) == 200
    writers = [threading.Thread(target=person, args=("add",), kwargs={"person": f"Новый {i}"}) for i in range(8)]
    with server.app.lock:  # the writers get into the server, then wait for the CRM's state
        for w in writers:
            w.start()
        for _ in range(500):
            if server.peak_in_flight >= 4:
                break
            time.sleep(0.01)
        time.sleep(0.1)  # room for a fifth to get in, were the server not limited to four workers
        assert server.peak_in_flight == 4
    for w in writers:
        w.join()
    second = person("list", offset=1)
    assert second["count"] == first["count"] + 8
    seen = [r["pid"] for r in first["data"]]
    assert set(seen) & {r["pid"] for r in second["data"]}   # rows slid onto a page already read
