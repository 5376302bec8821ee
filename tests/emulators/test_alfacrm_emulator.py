"""The Alfa CRM emulator answers like specs/alfacrm.md §11 says the real server does."""
from __future__ import annotations

import json

import pytest
import requests

from syncengine.emulators import Faults
from syncengine.emulators.alfacrm import create_app
from syncengine.emulators.base import Request


@pytest.fixture
def alfa(emulator):
    server = emulator("alfacrm", records=120)
    token = requests.post(f"{server.url}/v2api/auth/login",
                          json={"email": "admin@example.com", "api_key": "emulator"}).json()["token"]

    def call(path, body=None, token=token, **query):
        return requests.post(f"{server.url}/v2api/{path}", json=body or {}, params=query,
                             headers={"X-ALFACRM-TOKEN": token})

    server.call = call
    return server


def test_login_and_token_errors(alfa):
    bad = requests.post(f"{alfa.url}/v2api/auth/login", json={"email": "admin@example.com", "api_key": "x"})
    assert (bad.status_code, bad.json()) == (403, {"name": "Forbidden", "message": "Not Authorized",
                                                   "code": 0, "status": 403})
    assert alfa.call("1/customer/index", token="0" * 32).json()["message"] == \
        "Not Authorized. Token is expired or undefined."
    assert alfa.call("1/customer/index", token="garbage").json()["message"] == \
        "Your request was made with invalid credentials."
    assert alfa.call("1/customer/index").status_code == 200
    alfa.app.control_expire_tokens()
    assert alfa.call("1/customer/index").status_code == 401
    assert requests.get(f"{alfa.url}/v2api/1/customer/index").status_code == 405
    assert alfa.call("1/no-such/index").status_code == 404


def test_index_pages_are_0_based_ordered_by_name_and_end_empty(alfa):
    first = alfa.call("1/customer/index").json()
    assert (first["page"], first["count"], len(first["items"])) == (0, 20, 20)
    visible = first["total"]
    assert visible == 120 - len(alfa.app.archived_ids("customer"))  # archived rows hidden by default
    names = [r["name"] for p in range(3)
             for r in alfa.call("1/customer/index", {"page": p}, **{"per-page": 50}).json()["items"]]
    assert len(names) == visible and names == sorted(names, key=str.casefold)
    past = alfa.call("1/customer/index", {"page": 9}, **{"per-page": 50}).json()
    assert (past["count"], past["items"], past["total"]) == (0, [], visible)
    assert alfa.call("1/customer/index", **{"per-page": 500}).json()["count"] == 50


def test_archive_filters_and_the_e_date_convention(alfa):
    archived = alfa.call("1/customer/index", {"removed": 2}, **{"per-page": 50}).json()["items"]
    assert archived and all(r["e_date"] != "2030-12-31" for r in archived)
    everyone = alfa.call("1/customer/index", {"removed": 1}).json()["total"]
    assert everyone == 120


def test_row_formats(alfa):
    row = alfa.call("1/customer/index", {"id": [3]}).json()["items"][0]
    assert isinstance(row["phone"], list) and isinstance(row["email"], list)
    assert row["dob"] == "" or (len(row["dob"]) == 10 and row["dob"][2] == "." and row["dob"][5] == ".")
    assert isinstance(row["balance"], str) and row["balance"].count(".") == 1
    created = alfa.call("1/customer/create", {"name": "Лидов Лид", "is_study": 0, "legal_type": 1,
                                              "branch_ids": [1]}).json()
    entry = alfa.call("1/log/index", {"entity": "Customer"}).json()["items"][0]
    assert entry["entity_id"] == created["model"]["id"] and entry["event"] == 1 and entry["fields_old"] == []


def test_validation_failure_is_http_200_success_false(alfa):
    answer = alfa.call("1/customer/create", {"name": ""})
    assert answer.status_code == 200 and answer.json()["success"] is False
    assert "Необходимо заполнить «Имя»." in answer.json()["errors"]
    missing = alfa.call("1/customer/update", {"name": "x"}, id=99999)
    assert (missing.status_code, missing.json()["message"]) == (404, "Object not found: 99999")


def test_rate_limit_answers_like_alfa(emulator):
    server = emulator("alfacrm", records=5, faults=Faults(rate_limit=1, retry_after=2))
    url = f"{server.url}/v2api/auth/login"
    requests.post(url, json={})
    limited = requests.post(url, json={})
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "2"
    assert limited.json() == {"name": "Too Many Requests", "message": "Rate limit exceeded.", "code": 0, "status": 429}


def test_toml_section_and_stats(alfa):
    section = alfa.app.toml_section("alfa", alfa.url)
    assert 'api_key = "${ALFA_API_KEY}"' in section and "# export ALFA_API_KEY=emulator" in section
    alfa.call("1/customer/index")
    assert alfa.stats_json()["requests"]["customer/index"] == 1


def test_50000_customers_seed_and_page():
    """Speed of the same work is printed by bench/emulators.py, not asserted here."""
    app = create_app(50_000)
    login = Request("POST", "/v2api/auth/login", {}, {}, {}, b'{"email": "admin@example.com", "api_key": "emulator"}')
    token = json.loads(app.handle(login).body)["token"]
    ids: set[int] = set()
    for page in range(0, 1000, 10):
        request = Request("POST", "/v2api/1/customer/index", {"per-page": "50"}, {},
                          {"x-alfacrm-token": token}, f'{{"page": {page}, "removed": 1}}'.encode())
        answer = app.handle(request)
        assert answer.status == 200
        body = json.loads(answer.body)
        assert body["total"] == 50_000 and len(body["items"]) == 50
        ids.update(item["id"] for item in body["items"])
    assert len(ids) == 100 * 50
