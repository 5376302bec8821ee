"""The Rukovoditel emulator: the recorded real exchanges replay with the same status, content type
and JSON shape, and the test hooks behave as the connector tests assume."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from syncengine.config import load_config
from syncengine.emulators.rukovoditel import create_app

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "real" / "rukovoditel-3.6"
HTML = "text/html; charset=UTF-8"


def _fill(value):
    if isinstance(value, str):
        return value.replace("<API_KEY>", "emulator").replace("<PASSWORD>", "emulator")
    if isinstance(value, list):
        return [_fill(v) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v) for k, v in value.items()}
    return value


def _send(server, request):
    kwargs = {"params": _fill(request.get("query") or {}), "headers": request.get("headers") or {}}
    if "form" in request:
        kwargs["data"] = _fill(request["form"])
    elif "json" in request:
        kwargs["data"] = json.dumps(_fill(request["json"]), ensure_ascii=False).encode()
    elif "text" in request:
        kwargs["data"] = _fill(request["text"]).encode()
    return requests.request(request["method"], server.url + request["path"], timeout=5, **kwargs)


def _shape_problems(response, expected):
    problems = []
    if (response.status_code, response.headers["content-type"]) != (expected["status"], expected["content_type"]):
        problems.append(f"{response.status_code} {response.headers['content-type']}")
    if not response.content:
        kind, body = "empty", ""
    else:
        try:
            kind, body = "json", json.loads(response.content)
        except ValueError:
            kind, body = "text", response.text
    if kind != expected["body_kind"]:
        return [*problems, f"body {kind}"]
    want = expected["body"]
    if kind == "text":
        return problems + ([] if ("<app_db_error>" in body) == ("<app_db_error>" in want) else ["html"])
    if kind == "json":
        if set(body) != set(want) or body.get("error_message") != want.get("error_message"):
            problems.append(f"envelope {body}")
        for key in ("page", "number_of_rows", "number_of_pages", "error_code"):
            if key in want and type(body.get(key)) is not type(want[key]):
                problems.append(f"type of {key}")
        data, wanted = body.get("data"), want.get("data")
        if type(data) is not type(wanted):
            problems.append("data type")
        elif isinstance(data, list) and data and wanted and set(data[0]) != set(wanted[0]):
            problems.append(f"row keys {sorted(set(data[0]) ^ set(wanted[0]))}")
        elif isinstance(data, dict) and set(data) != set(wanted):
            problems.append(f"data keys {sorted(data)}")
    if "\\/" in expected.get("raw_head", "") and b'"data":[{' in response.content \
            and b"\\/" not in response.content:
        problems.append("slashes not escaped as \\/")
    return problems


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.jsonl")))
def test_recorded_exchanges_replay_with_the_same_shape(emulator, name):
    """Ids and counts depend on the data, so rows are compared by their keys, not their values."""
    server = emulator("rukovoditel", records=30, timezone="UTC")
    problems = []
    for line in (FIXTURES / name).read_text(encoding="utf-8").splitlines():
        exchange = json.loads(line)
        found = _shape_problems(_send(server, exchange["request"]), exchange["response"])
        if found:
            problems.append(f"{exchange['scenario']}#{exchange['step']}: {'; '.join(found)}")
    assert problems == []


def post(server, **form):
    return requests.post(f"{server.url}/api/rest.php", data={"key": "emulator", "username": "admin",
                                                             "password": "emulator", **form}, timeout=5)


def test_paging_quirks_and_page_only_from_the_url_with_a_json_body(emulator):
    server = emulator("rukovoditel", records=23)
    last = post(server, action="select", entity_id="25", rows_per_page="10", page="9").json()
    assert (last["page"], last["number_of_pages"], [r["id"] for r in last["data"]]) == (3, 3, ["21", "22", "23"])
    body = json.dumps({"key": "emulator", "username": "admin", "password": "emulator", "action": "select",
                       "entity_id": 25, "rows_per_page": 10, "select_fields": "0", "page": 3})
    in_json = requests.post(f"{server.url}/api/rest.php", data=body, timeout=5,
                            headers={"Content-Type": "application/json"}).json()
    in_url = requests.post(f"{server.url}/api/rest.php?page=2", data=body, timeout=5,
                           headers={"Content-Type": "text/plain"}).json()
    assert (in_json["page"], in_url["page"]) == (1, 2)
    assert post(server, action="select", entity_id="25", rows_per_page="0").json().keys() == {"status", "data"}


def test_multipart_forms_and_php_brackets(emulator):
    server = emulator("rukovoditel", records=3)
    files = {k: (None, v) for k, v in {"key": "emulator", "username": "admin", "password": "emulator",
                                        "action": "insert", "entity_id": "25", "items[0][field_213]": "Мульти",
                                        "items[0][field_220]": "71,72"}.items()}
    new = requests.post(f"{server.url}/api/rest.php", files=files, timeout=5).json()["data"]["id"]
    assert server.app.live_records("Contacts")[new]["field_220"] == "71,72"
    gone = requests.post(f"{server.url}/api/rest.php", timeout=5, data=[
        ("key", "emulator"), ("username", "admin"), ("password", "emulator"), ("action", "delete"),
        ("entity_id", "25"), ("delete_by_field[id][]", "1"), ("delete_by_field[id][]", new)]).json()
    assert gone["data"]["id"] == f"1,{new}"


def test_hooks_edit_bumps_date_updated_kanban_and_insert_do_not(emulator):
    server = emulator("rukovoditel", records=5)
    app = server.app
    app.control_clock(at="2026-11-22T10:00:00Z")
    new = app.control_insert("Contacts", {"First Name": "Новая"})
    assert app.live_records("Contacts")[str(new)]["date_updated"] == 0
    before = app.live_records("Contacts")["2"]["date_updated"]
    app.control_kanban_move("Contacts", 2, 217, "70")
    assert app.live_records("Contacts")["2"]["field_217"] == "70"
    assert app.live_records("Contacts")["2"]["date_updated"] == before
    reply = requests.post(f"{server.url}/__emulator__/edit", timeout=5,
                          json={"entity": "Contacts", "id": "2", "values": {"field_213": "Ира"}}).json()
    assert reply["result"] == 1795341600 == app.live_records("Contacts")["2"]["date_updated"]
    app.control_clock(advance=90)
    row = post(server, action="select", entity_id="25", select_fields="0", **{"filters[id]": "2"})
    assert row.json()["data"][0]["date_updated"] == "11/22/2026 13:00"   # Europe/Moscow
    assert server.stats_json()["requests"] == {"select": 1}


def test_delete_cascades_to_child_entities_and_unique_fields_are_skipped(emulator):
    server = emulator("rukovoditel", records=2, unique_email=True)
    assert server.app.live_ids("Tasks")
    post(server, action="delete", entity_id="21", **{"delete_by_field[id]": "1"})
    assert not server.app.live_ids("Tasks")
    email = server.app.live_records("Contacts")["2"]["field_215"]
    reply = post(server, action="insert", entity_id="25", **{"items[0][field_215]": email}).json()["data"]
    assert reply == {"id": "", "unique_fields_warning": [{"id": "215", "value": email}]}


def test_legacy_errors_and_displayed_warnings(emulator):
    legacy = emulator("rukovoditel", records=1, error_mode="legacy", display_errors=True)
    refused = post(legacy, action="login", password="nope")
    assert refused.status_code == 200
    assert refused.json() == {"status": "error", "error_code": "login_fail",
                              "error_message": "No match for Username and/or Password"}
    warned = post(legacy, action="select", entity_id="25", select_fields="0",
                  **{"filters[date_updated]": "2026-01-01"})
    assert warned.text.startswith("<br />\n<b>Warning</b>") and '{"status":"success"' in warned.text


def test_toml_section_is_a_ready_system(tmp_path, monkeypatch):
    app = create_app(records=1, password="p@ss", api_key="k-123", language="ru")
    section = app.toml_section("ruko-2", "http://127.0.0.1:8080")
    assert "# export RUKO_2_PASSWORD='p@ss'" in section and "# export RUKO_2_API_KEY='k-123'" in section
    assert "p@ss" not in section.split("[systems.ruko-2]")[1]
    assert 'entities = ["Kontakty"]' in section
    monkeypatch.setenv("RUKO_2_PASSWORD", "p@ss")
    monkeypatch.setenv("RUKO_2_API_KEY", "k-123")
    (tmp_path / "sync.toml").write_text(section, encoding="utf-8")
    settings = load_config(tmp_path / "sync.toml").systems["ruko-2"]
    assert (settings["password"], settings["api_key"], settings["timezone"]) == ("p@ss", "k-123", "Europe/Moscow")
