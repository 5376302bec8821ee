"""The vtiger emulator over real HTTP: sessions, metadata, CRUD, VTQL, sync windows, dialects, faults."""
from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest
import requests

from syncengine.emulators import Faults

BASE_TIME = 1_795_352_497  # 2026-11-22 13:01:37 UTC, the start of the recorded §8.5 bulk


class Client:
    """A bare webservice client: GET-type ops in the query string, POST-type ops in the form."""

    def __init__(self, url: str, session: str | None = None):
        self.url = url + "/webservice.php"
        self.session = session
        self.http = requests.Session()

    def get(self, operation: str, **params: Any) -> requests.Response:
        if self.session:
            params.setdefault("sessionName", self.session)
        return self.http.get(self.url, params={"operation": operation, **params})

    def post(self, operation: str, **form: Any) -> requests.Response:
        if self.session:
            form.setdefault("sessionName", self.session)
        form = {k: json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v for k, v in form.items()}
        return self.http.post(self.url, data={"operation": operation, **form})

    def ok(self, response: requests.Response) -> Any:
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["success"] is True, body
        return body["result"]

    def error(self, response: requests.Response) -> tuple[Any, str]:
        assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
        body = response.json()
        assert body["success"] is False, body
        assert list(body["error"]) == ["message", "code"]
        return body["error"]["code"], body["error"]["message"]

    def sync(self, modified: int | str, module: str = "Contacts", **extra: Any) -> dict[str, Any]:
        return self.ok(self.get("sync", modifiedTime=str(modified), elementType=module, **extra))

    def query(self, statement: str) -> list[dict[str, Any]]:
        return self.ok(self.get("query", query=statement))


def login(server: Any, key: str = "emulator") -> Client:
    client = Client(server.url)
    challenge = client.ok(client.get("getchallenge", username="admin"))
    digest = hashlib.md5((challenge["token"] + key).encode()).hexdigest()
    client.session = client.ok(client.post("login", username="admin", accessKey=digest))["sessionName"]
    return client


def assert_fatal(response: requests.Response) -> None:
    assert response.status_code == 500
    assert response.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert response.content == b""


# -- sessions ---------------------------------------------------------------------------------

def test_login_flow_and_errors(emulator):
    server = emulator("vtiger", records=5)
    anon = Client(server.url)
    challenge = anon.ok(anon.get("getchallenge", username="admin"))
    assert re.fullmatch(r"[0-9a-f]{13}", challenge["token"])
    assert challenge["expireTime"] == challenge["serverTime"] + 300
    assert anon.error(anon.get("getchallenge")) == ("ACCESS_DENIED", "No username given")
    assert anon.error(anon.get("getchallenge", username="nobody")) == ("ACCESS_DENIED", "username does not exists")
    assert anon.error(anon.post("login", username="admin", accessKey="0" * 32))[0] == "INVALID_USER_CREDENTIALS"
    assert anon.error(anon.post("login", username="nobody", accessKey="x"))[0] == "INVALID_AUTH_TOKEN"
    # login is a POST-type op: parameters in the query string are not read
    assert anon.error(anon.get("login", username="admin", accessKey="x"))[0] == "INVALID_AUTH_TOKEN"
    old = hashlib.md5((challenge["token"] + "emulator").encode()).hexdigest()
    anon.ok(anon.get("getchallenge", username="admin"))  # replaces the token
    assert anon.error(anon.post("login", username="admin", accessKey=old))[0] == "INVALID_USER_CREDENTIALS"

    # a GET-type op reads the query string only
    assert anon.error(anon.http.post(anon.url, data={"operation": "getchallenge", "username": "admin"})) == \
        ("ACCESS_DENIED", "No username given")
    client = login(server)
    assert re.fullmatch(r"[0-9a-f]{14,21}", client.session)
    assert client.error(Client(server.url).get("listtypes")) == ("AUTHENTICATION_REQUIRED", "Authencation required")
    assert Client(server.url).error(Client(server.url).get("listtypes", sessionName="null"))[0] == \
        "AUTHENTICATION_REQUIRED"
    bogus = Client(server.url, "0123456789abcdef01234")
    assert bogus.error(bogus.get("listtypes")) == ("INVALID_SESSIONID", "Session Identifier provided is Invalid")
    assert bogus.error(bogus.get("getchallenge", username="admin"))[0] == "INVALID_SESSIONID"  # prelogin too
    assert client.error(client.get("logout")) == ("OPERATION_NOT_SUPPORTED",
                                                  "Permission to perform the operation is denied")
    assert client.ok(client.post("logout")) == {"message": "successfull"}
    assert client.error(client.get("listtypes"))[0] == "INVALID_SESSIONID"


def test_login_result_per_dialect_and_idle_expiry(emulator):
    v84 = emulator("vtiger", records=0)
    anon = Client(v84.url)
    token = anon.ok(anon.get("getchallenge", username="admin"))["token"]
    result = anon.ok(anon.post("login", username="admin",
                               accessKey=hashlib.md5((token + "emulator").encode()).hexdigest()))
    assert list(result)[:3] == ["username", "first_name", "last_name"]
    assert list(result)[-4:] == ["sessionName", "userId", "version", "vtigerVersion"]
    assert (result["userId"], result["version"], result["vtigerVersion"]) == ("19x1", "0.22", "8.4.0")

    sp = emulator("salesplatform", records=0, access_key="secret", session_idle=60)
    client = login(sp, key="secret")
    anon = Client(sp.url)
    token = anon.ok(anon.get("getchallenge", username="admin"))["token"]
    digest = hashlib.md5((token + "secret").encode()).hexdigest()
    short = anon.ok(anon.post("login", username="admin", accessKey=digest))
    assert list(short) == ["sessionName", "userId", "version", "vtigerVersion"]
    assert short["vtigerVersion"] == "7.2.0-202008"
    sp.app.control_clock(advance=50)
    client.ok(client.get("listtypes"))  # sliding: each request refreshes the session
    sp.app.control_clock(advance=50)
    client.ok(client.get("listtypes"))
    sp.app.control_clock(advance=61)
    assert client.error(client.get("listtypes"))[0] == "INVALID_SESSIONID"


# -- metadata ---------------------------------------------------------------------------------

def test_describe_and_listtypes_shapes(emulator):
    v84 = login(emulator("vtiger", records=0))
    types = v84.ok(v84.get("listtypes"))
    assert len(types["types"]) == 35 and types["types"][-1] == "ProductTaxes"
    assert types["information"]["Groups"] == {"isEntity": False, "label": "Groups", "singular": "Groups"}
    contacts = v84.ok(v84.get("describe", elementType="Contacts"))
    assert list(contacts) == ["label", "name", "createable", "updateable", "deleteable", "retrieveable", "fields",
                              "idPrefix", "isEntity", "allowDuplicates", "labelFields"]
    assert contacts["idPrefix"] == "12" and contacts["labelFields"] == "firstname,lastname"
    fields = contacts["fields"]
    assert len(fields) == 49 and fields[-1] == {"name": "id", "label": "contactid", "mandatory": False,
                                                "type": {"name": "autogenerated"}, "editable": False,
                                                "nullable": False, "default": ""}
    by_name = {f["name"]: f for f in fields}
    assert list(by_name["account_id"]["type"]) == ["refersTo", "name"]
    assert list(by_name["leadsource"]["type"])[-1] == "name"
    assert by_name["leadsource"]["type"]["defaultValue"] == "Cold Call"
    assert [f["name"] for f in fields if f["mandatory"]] == ["lastname", "assigned_user_id"]
    accounts = v84.ok(v84.get("describe", elementType="Accounts"))
    assert accounts["allowDuplicates"] is False and accounts["fields"][0]["isunique"] is True
    assert v84.error(v84.get("describe", elementType="contacts")) == (
        "ACCESS_DENIED", "Permission to perform the operation is denied for name : contacts")
    assert v84.error(v84.get("describe"))[1].endswith("for name : ")

    sp_server = emulator("salesplatform", records=0)
    sp = login(sp_server)
    assert len(sp.ok(sp.get("listtypes"))["types"]) == 41
    raw = sp.get("describe", elementType="Contacts")
    assert b"\\u041a\\u043e\\u043d\\u0442\\u0430\\u043a\\u0442\\u044b" in raw.content  # "Контакты", escaped
    described = raw.json()["result"]
    assert described["label"] == "Контакты" and len(described["fields"]) == 53


# -- CRUD -------------------------------------------------------------------------------------

def test_create_retrieve_revise_update_delete(emulator):
    server = emulator("vtiger", records=3)
    c = login(server)
    created = c.ok(c.post("create", elementType="Contacts",
                          element={"firstname": "Иван", "lastname": "Петров", "assigned_user_id": "19x1",
                                   "description": 'say "hi" <b>', "id": "12x1", "nonsense": "x"}))
    assert created["account_id"] is None and created["birthday"] == "" and created["source"] == "WEBSERVICE"
    assert created["label"] == "Иван Петров" and created["modifiedby"] == "19x1"
    assert created["description"] == "say &quot;hi&quot; &lt;b&gt;" and created["contact_no"].startswith("CON")
    assert list(created)[-2:] == ["id", "label"] and created["id"] != "12x1"
    cid = created["id"]
    assert c.ok(c.get("retrieve", id=cid)) == created
    assert c.error(c.post("create", elementType="Contacts", element={"firstname": "X", "assigned_user_id": "19x1"})) \
        == ("MANDATORY_FIELDS_MISSING", "lastname does not have a value")
    assert c.error(c.post("create", elementType="Contacts",
                          element={"lastname": "X", "assigned_user_id": "19x1", "account_id": cid})) == \
        ("REFERENCE_INVALID", "Invalid reference specified for account_id")
    assert c.error(c.post("create", elementType="NoSuch", element={"lastname": "X"}))[0] == "ACCESS_DENIED"
    assert_fatal(c.post("create", elementType="Contacts"))  # PHP 8: no element at all
    assert c.error(c.post("create", elementType="Contacts", element="{bad"))[0] == "INTERNAL_SERVER_ERROR"

    server.app.control_clock(advance=2)
    revised = c.ok(c.post("revise", element={"id": cid, "title": "CTO", "modifiedtime": "2001-01-01 00:00:00"}))
    assert revised["title"] == "CTO" and revised["firstname"] == "Иван"
    assert revised["modifiedtime"] > created["modifiedtime"] and revised["createdtime"] == created["createdtime"]
    assert c.error(c.post("revise", element={"id": cid, "lastname": ""}))[0] == "MANDATORY_FIELDS_MISSING"
    assert c.error(c.post("revise", element={"title": "x"})) == ("INVALID_ID_ATTRIBUTE", "Id specified is incorrect")
    assert c.error(c.post("update", element={"id": cid, "title": "only"}))[0] == "MANDATORY_FIELDS_MISSING"
    account = next(iter(server.app.live_records("Accounts")))
    full = {**revised, "firstname": "Пётр", "account_id": account}
    del full["label"]
    updated = c.ok(c.post("update", element=full))
    assert updated["firstname"] == "Пётр" and updated["account_id"] == account and updated["label"] == "Пётр Петров"
    kept = c.ok(c.post("update", element={**full, "account_id": ""}))  # update: "" keeps a reference
    assert kept["account_id"] == account
    cleared = c.ok(c.post("revise", element={"id": cid, "account_id": ""}))  # revise: "" clears it
    assert cleared["account_id"] is None

    assert c.error(c.get("retrieve", id="11x" + cid.split("x")[1])) == ("INVALID_ID_ATTRIBUTE",
                                                                          "Id specified is incorrect")
    assert c.error(c.get("retrieve", id="abc"))[1] == "Permission to perform the operation is denied for id"
    assert c.error(c.post("retrieve", id=cid))[1].endswith("for id")  # GET-type op sent as POST
    assert c.ok(c.post("delete", id=cid)) == {"status": "successful"}
    for response in (c.post("delete", id=cid), c.get("retrieve", id=cid), c.post("revise", element={"id": cid})):
        assert c.error(response) == ("ACCESS_DENIED", "Permission to perform the operation is denied")
    assert cid in server.app.deleted_ids("Contacts") and cid not in server.app.live_records("Contacts")


def test_duplicates_ghost_owner_and_dialect_values(emulator):
    v84 = login(server := emulator("vtiger", records=0))
    v84.ok(v84.post("create", elementType="Accounts",
                    element={"accountname": "ООО Ромашка", "assigned_user_id": "19x1"}))
    dup = v84.post("create", elementType="Accounts", element={"accountname": "ооо ромашка", "assigned_user_id": "19x1"})
    assert dup.json() == {"success": False, "error": {"message": "Duplicate(s) detected!", "code": 0}}
    ghost = v84.post("create", elementType="Contacts", element={"lastname": "Ghost", "assigned_user_id": "19x999"})
    assert (ghost.status_code, ghost.headers["Content-Type"], ghost.text) == (
        200, "text/html; charset=UTF-8", "Sorry! Attempt to access restricted file.")
    assert v84.query("SELECT id, assigned_user_id FROM Contacts WHERE lastname = 'Ghost';")[0]["assigned_user_id"] \
        == "999"
    assert server.app.live_records("Contacts")

    sp = login(emulator("salesplatform", records=0))
    sp.ok(sp.post("create", elementType="Accounts", element={"accountname": "Вектор", "website": "https://v.ru",
                                                            "assigned_user_id": "19x1"}))
    raw = sp.post("create", elementType="Accounts", element={"accountname": "ВЕКТОР", "assigned_user_id": "19x1"})
    assert raw.json()["error"] == {"message": "Обнаружено дублирование!", "code": 0}
    created = sp.post("create", elementType="Contacts", element={"lastname": "Смирнов", "assigned_user_id": "19x1",
                                                                 "website": "x"})
    assert b"\\u0421\\u043c\\u0438\\u0440\\u043d\\u043e\\u0432" in created.content
    record = created.json()["result"]
    assert record["account_id"] == "" and record["label"] == " Смирнов" and record["contact_no"].startswith("КОНТАКТ_")
    assert sp.query("SELECT id, birthday, account_id FROM Contacts;")[0]["birthday"] == ""
    assert sp.error(sp.post("revise", element={"title": "x"}))[1].endswith("for id")


# -- query ------------------------------------------------------------------------------------

def test_query_cap_quoting_and_errors(emulator):
    server = emulator("vtiger", records=150)
    c = login(server)
    assert len(c.query("SELECT * FROM Contacts;")) == 100
    assert len(c.query("SELECT id, lastname FROM Contacts LIMIT 200;")) == 100
    assert len(c.query("SELECT id FROM Contacts LIMIT 140, 100;")) == 10
    rows = c.query("SELECT lastname FROM Contacts LIMIT 3;")
    assert list(rows[0]) == ["lastname", "id"]  # id is always added
    assert c.query("SELECT count(*) FROM Contacts;") == []
    c.ok(c.post("create", elementType="Contacts", element={"lastname": "O'Brien", "assigned_user_id": "19x1"}))
    assert [r["lastname"] for r in c.query("SELECT id, lastname FROM Contacts WHERE lastname = 'O''Brien';")] == \
        ["O'Brien"]
    assert len(c.query("SELECT id FROM Contacts WHERE lastname LIKE 'o''bri%';")) == 1
    assert c.error(c.get("query", query="SELECT id FROM Contacts")) == (
        "QUERY_SYNTAX_ERROR",
        "Syntax Error on line 1: token 'Contacts' Unexpected End of Input(0), expected one of: SEMICOLON")
    assert c.error(c.get("query", query="SELECT id FROM Contacts WHERE lastname = 'O\\'Brien';"))[1] == \
        "Syntax Error on line 1: token 'Brien' Unexpected COLUMNNAME(Brien), expected one of: SEMICOLON"
    for bad in ('SELECT id FROM Contacts WHERE lastname = "x";', "SELECT id FROM Contacts WHERE lastname = '';"):
        assert c.error(c.get("query", query=bad)) == ("INTERNAL_SERVER_ERROR", "Unknown Error while processing request")
    assert c.error(c.get("query", query="SELECT id FROM Contacts WHERE (lastname = 'a');"))[1].endswith(
        "Unexpected PARENOPEN((), expected one of: COLUMNNAME")
    assert c.error(c.get("query", query="SELECT id, bogus FROM Contacts;"))[1] == \
        "Permission to access '.bogus.' attribute denied."
    assert c.error(c.get("query", query="SELECT id FROM Contacts WHERE bogus = 'x';"))[1] == \
        "Permission to access bogus attribute denied."
    assert c.error(c.get("query", query="select id from contacts;"))[1].endswith("for name : contacts")
    assert c.error(c.get("query", query="SELECT id FROM Contacts ORDER BY bogus;"))[0] == "DATABASE_QUERY_ERROR"
    assert c.error(c.get("query", query="SELECT id FROM Contacts LIMIT -1;"))[0] == "DATABASE_QUERY_ERROR"
    assert c.error(c.get("query", query="SELECT id FROM Contacts WHERE account_id = '5';"))[0] == "INVALID_ID_ATTRIBUTE"
    assert c.error(c.get("query", query="SELECT id FROM Contacts WHERE id = 5;"))[0] == "DATABASE_QUERY_ERROR"
    assert c.error(c.post("query", query="SELECT id FROM Contacts;"))[1].endswith("denied for query")
    # AND binds tighter than OR, as in MySQL
    mixed = c.query("SELECT id FROM Contacts WHERE lastname = 'O''Brien' OR lastname = 'nobody' AND id = '12x1';")
    assert len(mixed) == 1
    first = c.query("SELECT id, account_id, birthday FROM Contacts ORDER BY id LIMIT 1;")[0]
    victim = first["id"]
    assert c.ok(c.post("delete", id=victim))
    assert c.query(f"SELECT id FROM Contacts WHERE id = '{victim}';") == []


def test_query_keyset_paging_matches_live_records(emulator):
    server = emulator("vtiger", records=450)
    c = login(server)
    seen: dict[str, dict[str, Any]] = {}
    last_time, last_id = "0000-00-00 00:00:00", "12x0"
    while True:
        page = c.query(f"SELECT * FROM Contacts WHERE modifiedtime > '{last_time}' OR modifiedtime = '{last_time}' "
                       f"AND id > '{last_id}' ORDER BY modifiedtime, id LIMIT 100;")
        seen.update((r["id"], r) for r in page)
        if len(page) < 100:
            break
        last_time, last_id = page[-1]["modifiedtime"], page[-1]["id"]
    live = server.app.live_records("Contacts")
    assert seen.keys() == live.keys()
    for some in list(live)[:20]:  # query rows carry null empty dates on 8.4, retrieve-shaped records ""
        assert seen[some] == {k: None if v == "" and k in ("birthday", "support_start_date", "support_end_date")
                              else v for k, v in live[some].items()}


def test_sp72_count_tags_fatal_and_time_zone(emulator):
    server = emulator("salesplatform", records=20)
    c = login(server)
    assert c.query("SELECT count(*) FROM Contacts;") == [{"count": "20"}]
    assert_fatal(c.get("query", query="SELECT * FROM Contacts;"))
    assert_fatal(c.get("query", query="SELECT id, tags FROM Contacts;"))
    assert len(c.query("SELECT id, lastname FROM Contacts;")) == 20
    patched = login(emulator("salesplatform", records=5, tags_fatal=False))
    assert len(patched.query("SELECT * FROM Contacts;")) == 5

    later = BASE_TIME + 86_400 * 30  # after the seeded records
    server.app.control_clock(now=later)
    cid = server.app.control_write("Contacts", {"lastname": "Москва"})
    c = login(server)  # a month of idleness expired the session
    record = c.ok(c.get("retrieve", id=cid))
    assert record["modifiedtime"] == "2026-12-22 16:01:37"  # Europe/Moscow strings …
    assert c.sync(later - 1)["lastModifiedTime"] == later  # … true epochs


# -- sync -------------------------------------------------------------------------------------

def bulk(app: Any, per_second: list[int], start: int = BASE_TIME) -> list[str]:
    ids = []
    for second, count in enumerate(per_second):
        for _ in range(count):
            ids.append(app.control_write("Contacts", {"firstname": "Page", "lastname": f"Bulk{len(ids) + 1:03d}"},
                                         modifiedtime=start + second))
    return ids


def test_sync_pages_like_the_recorded_install(emulator):
    server = emulator("vtiger", records=0)
    server.app.control_clock(now=BASE_TIME + 60)
    bulk(server.app, [12, 13, 11, 12, 12, 13, 11, 12, 15, 13, 14, 12])  # 150 rows, 10–15 a second
    c = login(server)
    first = c.sync(BASE_TIME - 1)
    assert list(first) == ["updated", "deleted", "more", "lastModifiedTime"]
    assert (len(first["updated"]), first["deleted"], first["more"], first["lastModifiedTime"]) == \
        (111, [], True, BASE_TIME + 8)  # the 100th change falls in a second of 15 rows
    assert "label" not in first["updated"][0] and len(first["updated"][0]) == 49
    assert first["updated"][0]["birthday"] is None and first["updated"][0]["account_id"] is None
    second = c.sync(first["lastModifiedTime"])
    assert (len(second["updated"]), second["more"], second["lastModifiedTime"]) == (39, False, BASE_TIME + 11)
    assert c.sync(second["lastModifiedTime"]) == {"updated": [], "deleted": [], "more": False,
                                                  "lastModifiedTime": BASE_TIME + 11}
    assert c.sync(9_999_999_999)["lastModifiedTime"] == 9_999_999_999

    # more than 100 rows in one second come in one page
    server.app.control_clock(now=BASE_TIME + 100)
    bulk(server.app, [130], start=BASE_TIME + 90)
    page = c.sync(BASE_TIME + 11)
    assert (len(page["updated"]), page["more"]) == (130, False)


def test_sync_deletes_restore_purge_owner_and_leads(emulator):
    server = emulator("vtiger", records=0)
    app = server.app
    app.control_clock(now=BASE_TIME)
    a, b, d, e = bulk(app, [4])
    lead = app.control_write("Leads", {"lastname": "Лидов", "company": "ООО Лид"})
    c = login(server)
    app.control_clock(advance=5)
    app.control_delete(a)
    app.control_purge(b)
    app.control_reassign(d, "19x5")
    app.control_edit(e, {"title": "edited in the UI"}, by="19x5")
    page = c.sync(BASE_TIME)
    assert page["deleted"] == [a] and [r["id"] for r in page["updated"]] == [e]
    assert page["updated"][0]["modifiedby"] == "19x5" and page["updated"][0]["title"] == "edited in the UI"
    assert c.sync(1)["deleted"] == [a]  # reported for ever; purged and reassigned rows never
    everyone = c.sync(BASE_TIME, syncType="application")
    assert sorted(r["id"] for r in everyone["updated"]) == sorted([d, e])
    app.control_clock(advance=5)
    app.control_restore(a)
    assert [r["id"] for r in c.sync(BASE_TIME + 5)["updated"]] == [a]
    created = app.control_convert_lead(lead)
    assert set(created) == {"Accounts", "Contacts"}
    assert c.sync(BASE_TIME + 5, "Leads")["deleted"] == [lead]
    assert lead in app.deleted_ids("Leads") and c.query("SELECT id FROM Leads;") == []
    assert c.ok(c.get("sync", modifiedTime="5", elementType="Users")) == {
        "updated": [], "deleted": [], "lastModifiedTime": "5", "more": False}
    assert c.error(c.get("sync", modifiedTime="5", elementType="NoSuchModule"))[0] == "ACCESS_DENIED"
    for params in ({"modifiedTime": "0", "elementType": "Contacts"}, {"elementType": "Contacts"},
                   {"modifiedTime": "5"}, {"modifiedTime": "2026-11-22 13:51:02", "elementType": "Contacts"}):
        assert_fatal(c.get("sync", **params))


def test_same_second_race_is_missed_by_a_naive_client(emulator):
    server = emulator("vtiger", records=0)
    app = server.app
    app.control_clock(now=BASE_TIME)
    c = login(server)
    first = app.control_write("Contacts", {"lastname": "RaceA"})
    page = c.sync(BASE_TIME - 1)
    assert [r["id"] for r in page["updated"]] == [first] and page["lastModifiedTime"] == BASE_TIME
    second = app.control_write("Contacts", {"lastname": "RaceB"}, modifiedtime=BASE_TIME)  # same second, later
    assert c.sync(page["lastModifiedTime"])["updated"] == []  # strict > : B is never delivered
    overlap = c.sync(page["lastModifiedTime"] - 1)
    assert sorted(r["id"] for r in overlap["updated"]) == sorted([first, second])


def test_sync_broken_and_php7_profile(emulator):
    broken = login(emulator("vtiger", records=5, sync_broken=True))
    assert_fatal(broken.get("sync", modifiedTime="1", elementType="Contacts"))
    assert len(broken.query("SELECT id FROM Contacts;")) == 5  # query still works

    simply = emulator("simplycrm", records=5)
    c = login(simply)
    body = c.get("sync", modifiedTime="0", elementType="Contacts").json()
    assert body == {"success": True, "result": {"updated": [], "deleted": [], "more": False, "lastModifiedTime": 0}}
    untyped = c.ok(c.get("sync", modifiedTime="1"))
    assert {r["id"][:3] for r in untyped["updated"]} == {"11x", "12x"}
    error = c.get("retrieve", id="abc").json()["error"]
    assert error == {"errorCode": "ACCESS_DENIED",
                     "errorMessage": "Permission to perform the operation is denied for id"}


# -- transport, faults, hooks, seed ------------------------------------------------------------

def test_transport_faults_stats_and_hooks(emulator):
    server = emulator("vtiger", records=10)
    c = login(server)
    assert_fatal(c.get("nosuchop"))
    assert_fatal(c.http.get(c.url, params={"sessionName": c.session}))
    assert c.ok(c.get("LISTTYPES"))["types"]
    xml = c.get("listtypes", format="xml")
    assert (xml.status_code, xml.content) == (500, b"")
    assert c.error(c.get("create", elementType="Contacts", element='{"lastname": "x"}'))[0] == "ACCESS_DENIED"
    stats = requests.get(server.url + "/__emulator__/stats").json()
    assert stats["requests"]["listtypes"] == 2 and stats["requests"]["login"] == 1

    cid = next(iter(server.app.live_records("Contacts")))
    edited = requests.post(server.url + "/__emulator__/edit", json={"id": cid, "values": {"title": "Босс"}}).json()
    assert edited["ok"] and edited["result"]["title"] == "Босс"
    requests.post(server.url + "/__emulator__/delete", json={"id": cid})
    assert cid in server.app.deleted_ids("Contacts")
    assert requests.post(server.url + "/__emulator__/expire_sessions", json={}).json()["result"] >= 1
    assert c.error(c.get("listtypes"))[0] == "INVALID_SESSIONID"

    c = login(server)
    server.faults.update({"expire_rate": 1.0})
    assert c.error(c.get("listtypes"))[0] == "INVALID_SESSIONID"
    server.faults.update({"expire_rate": 0.0})
    c = login(server)
    server.faults.update({"broken_json_rate": 1.0})
    with pytest.raises(ValueError):
        c.get("listtypes").json()
    server.faults.update({"broken_json_rate": 0.0, "error_rate": 1.0})
    assert_fatal(c.get("listtypes"))
    server.faults.update({"error_rate": 0.0, "rate_limit": 2, "retry_after": 3})
    statuses = [c.get("listtypes") for _ in range(4)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited and limited[0].headers["Retry-After"] == "3"


def test_seed_is_russian_dense_and_deterministic(emulator):
    server = emulator("vtiger", records=150, faults=Faults())
    contacts = server.app.live_records("Contacts")
    accounts = server.app.live_records("Accounts")
    assert len(contacts) == 150 and len(accounts) == 15
    assert all(re.search("[а-яё]", r["lastname"]) for r in contacts.values())
    emails = [r["email"] for r in contacts.values() if r["email"]]
    assert all(re.fullmatch(r"[a-z]+\.[a-z]+\d+@example\.ru", e) for e in emails)
    assert any(r["account_id"] for r in contacts.values())
    seconds = [r["modifiedtime"] for r in contacts.values()]
    assert len(set(seconds)) < len(seconds)  # several records share a second
    assert server.app.toml_section("crm", server.url).splitlines()[1:4] == [
        'kind = "vtiger"', f'url = "{server.url}"', 'username = "admin"']
    assert "emulator" not in server.app.toml_section("crm", server.url).split("#")[0]
    again = emulator("vtiger", records=150).app.live_records("Contacts")
    assert [r["lastname"] for r in again.values()] == [r["lastname"] for r in contacts.values()]


LONG_NAME = "Александра-Виктория " * 5  # 100 characters, Cyrillic


# -- vtiger: text is cut to the column's length, and every read answers the cut value ----------

@pytest.mark.parametrize("kind", ["vtiger", "salesplatform"])
def test_vtiger_cuts_text_to_the_column_length_in_characters(emulator, kind):
    server = emulator(kind, records=0)
    client = login(server)
    created = client.ok(client.post("create", elementType="Contacts", element={
        "lastname": LONG_NAME, "firstname": "Б" * 45, "email": "a@example.com", "assigned_user_id": "19x1"}))
    assert created["lastname"] == LONG_NAME[:80] and len(LONG_NAME) == 100
    assert created["firstname"] == "Б" * 40
    assert client.ok(client.get("retrieve", id=created["id"]))["lastname"] == LONG_NAME[:80]
    rows = client.query(f"SELECT lastname FROM Contacts WHERE id = '{created['id']}';")
    assert rows[0]["lastname"] == LONG_NAME[:80]
    updated = client.ok(client.post("revise", element={"id": created["id"], "department": "Отдел " * 10}))
    assert updated["department"] == ("Отдел " * 10)[:30]
    assert server.app.live_records("Contacts")[created["id"]]["department"] == ("Отдел " * 10)[:30]
    described = client.ok(client.get("describe", elementType="Contacts"))
    assert all("length" not in f for f in described["fields"])  # the real describe does not say so


# -- vtiger VTQL literals: MySQL reads the pasted text with backslash escapes -------------------

def test_vtql_literals_follow_mysql_backslash_rules(emulator):
    server = emulator("vtiger", records=0)
    client = login(server)
    for name in ("Back\\slash", "Ends\\", "O'Brien"):
        client.ok(client.post("create", elementType="Contacts",
                              element={"lastname": name, "assigned_user_id": "19x1"}))

    def names(literal: str) -> list[str]:
        return [r["lastname"] for r in client.query(f"SELECT lastname FROM Contacts WHERE lastname = {literal};")]

    assert names("'Back\\\\slash'") == ["Back\\slash"]   # \\ is one backslash
    assert names("'Back\\slash'") == []                   # \s is just s
    assert names("'Ends\\\\'") == ["Ends\\"]
    assert names("'O''Brien'") == ["O'Brien"]
    for broken in ("'Ends\\'", "'O\\''Brien'"):  # the escaped quote leaves MySQL with broken SQL
        reply = client.get("query", query=f"SELECT lastname FROM Contacts WHERE lastname = {broken};")
        assert client.error(reply)[0] == "DATABASE_QUERY_ERROR"


# -- vtiger: an install whose login error repeats the request -----------------------------------

@pytest.mark.parametrize("echo", [False, True])
def test_login_error_can_echo_the_request_with_its_hash(emulator, echo):
    server = emulator("vtiger", records=0, echo_login_request=echo)
    client = Client(server.url)
    token = client.ok(client.get("getchallenge", username="admin"))["token"]
    digest = hashlib.md5((token + "wrong-key").encode()).hexdigest()
    code, message = client.error(client.post("login", username="admin", accessKey=digest))
    assert code == "INVALID_USER_CREDENTIALS"
    assert (digest in message) is echo


# -- vtiger: hide rows from listings (issue 12) ----------------------------------------

def test_vtiger_hides_rows_from_listings_not_from_reads_by_id(emulator):
    server = emulator("vtiger", records=40)
    client = login(server)
    everyone = [r["id"] for r in client.query("SELECT id FROM Contacts ORDER BY id LIMIT 100;")]
    assert len(everyone) == 40
    reply = requests.post(f"{server.url}/__emulator__/hide_rows", json={"share": 0.25, "listings": 2, "seed": 3})
    assert reply.json()["result"]["listings"] == 2
    hidden = {i for i in everyone if server.app.hides(i)}
    assert 0 < len(hidden) < 40
    by_id = client.query(f"SELECT id FROM Contacts WHERE id IN ({', '.join(repr(i) for i in sorted(hidden))});")
    assert {r["id"] for r in by_id} == hidden
    assert client.ok(client.get("retrieve", id=sorted(hidden)[0]))["id"] == sorted(hidden)[0]
    first = [r["id"] for r in client.query("SELECT id FROM Contacts ORDER BY id LIMIT 0, 20;")]
    second = [r["id"] for r in client.query("SELECT id FROM Contacts ORDER BY id LIMIT 20, 20;")]
    assert first + second == [i for i in everyone if i not in hidden]  # the offsets shift, nothing repeats
    assert [r["id"] for r in client.query("SELECT id FROM Contacts ORDER BY id LIMIT 100;")] == everyone
