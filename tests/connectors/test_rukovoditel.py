"""The Rukovoditel connector over real HTTP against the emulator: names, values, change capture,
paging, writes and the three error shapes."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from syncengine.config import load_config
from syncengine.connectors import connect
from syncengine.connectors.rukovoditel import RukovoditelConnector
from syncengine.emulators import Faults
from syncengine.errors import AuthError, NotFound, ProtocolError, ValidationError
from syncengine.jsonutil import loads
from syncengine.mirror import Mirror
from syncengine.pull import pull

PASSWORD, KEY = "Секрет-pass-1", "k3y-0123456789abcdefghij"


def system(server, **extra):
    return {"kind": "rukovoditel", "url": server.url, "username": "admin", "password": PASSWORD,
            "api_key": KEY, "entities": ["Contacts"], "retries": 6, "timeout": 5, **extra}


@pytest.fixture
def ruko(emulator, write_config, sqlite_url):
    """``ruko(records, settings={}, **emulator options)`` → (server, connector)."""
    made = []

    def make(records=25, settings=None, **options):
        server = emulator("rukovoditel", records=records, password=PASSWORD, api_key=KEY, **options)
        config = load_config(write_config(sqlite_url, {"ruko": system(server, **(settings or {}))}))
        connector = connect("ruko", config.systems["ruko"])
        made.append(connector)
        return server, connector

    yield make
    for connector in made:
        connector.close()


def read_all(connector, cursor=None):
    batches = list(connector.read_changes("Contacts", cursor))
    return [r for b in batches for r in b.records], batches


# -- login and errors ---------------------------------------------------------------------------

def test_check_names_the_user_and_a_wrong_password_is_login_refused(ruko):
    _, connector = ruko()
    assert isinstance(connector, RukovoditelConnector)
    assert "admin (administrator), 6 entities" in connector.check()

    _, wrong = ruko(settings={"password": "not-the-password"})
    with pytest.raises(AuthError) as refused:
        wrong.check()
    message = str(refused.value)
    assert message.startswith("ruko: login refused:") and "username and password" in message
    assert "not-the-password" not in message


def test_a_wrong_password_found_by_a_read_is_login_refused_too(ruko):
    _, wrong = ruko(settings={"password": "not-the-password"})
    with pytest.raises(AuthError, match="login refused"):
        read_all(wrong)


def test_wrong_api_key_and_legacy_php_errors_are_auth_errors(ruko):
    _, connector = ruko(settings={"api_key": "BAD-KEY-0000"})
    with pytest.raises(AuthError, match="API key refused"):
        connector.check()
    _, legacy = ruko(settings={"password": "wrong-one"}, error_mode="legacy")   # HTTP 200 + JSON error
    with pytest.raises(AuthError, match="login refused: wrong username or password"):
        legacy.check()


def test_a_user_who_is_not_an_administrator_is_told_so(ruko):
    _, connector = ruko(settings={"username": "client"})
    assert "client (access group 6)" in connector.check()
    with pytest.raises(AuthError, match="not an administrator"):
        connector.describe("Contacts")


def test_sql_error_html_with_http_200_is_a_validation_error(ruko):
    _, connector = ruko()
    with pytest.raises(ValidationError, match="Unknown column 'field_213'"):
        connector._call("select", {"entity_id": 25, "select_fields": "field_213"}, what="Contacts")


def test_empty_http_500_crashes_are_retried_for_an_administrator(ruko):
    server, connector = ruko(records=30, settings={"page_size": 10}, faults=Faults(error_rate=0.2, seed=4))
    records, _ = read_all(connector)
    assert {r["id"] for r in records} == server.app.live_ids("Contacts")
    assert server.stats_json()["requests"]["select"] > 3   # some pages were answered by a crash first


def test_secrets_travel_in_the_body_never_in_the_url(ruko):
    _, connector = ruko(records=15, settings={"page_size": 10})
    urls = []
    connector.http.session.hooks["response"].append(lambda r, *a, **k: urls.append(r.request.url))
    read_all(connector, '{"v":1,"since":null}')   # a change window from the start: 15 rows, 2 pages
    assert any("page=2" in u for u in urls)
    assert not any(secret in u for u in urls for secret in (KEY, PASSWORD, "admin"))


# -- names ---------------------------------------------------------------------------------------

def test_describe_uses_readable_names_and_field_ids_maps_them_back(ruko):
    _, connector = ruko()
    schema = connector.describe("Contacts")
    assert schema.name == "Contacts" and schema.modified_field == "date_updated"
    by_name = {f.name: f for f in schema.fields}
    assert by_name["first_name"].label == "First Name"
    assert by_name["status"].type == "picklist"
    assert by_name["status"].choices == (("68", "New"), ("69", "Active"), ("70", "Inactive"))
    assert by_name["status_label"].editable is False
    assert by_name["tags"].type == "multipicklist"
    assert by_name["owner"].type == "owner"
    assert by_name["company"].refers_to == ("Projects",)
    assert (by_name["birthday"].type, by_name["last_contacted"].type) == ("date", "datetime")
    assert connector.field_ids("Contacts")["email"] == "field_215"
    assert connector.describe("25").name == "Contacts"   # the API's id works too


def test_russian_names_are_transliterated_and_clashes_get_the_field_id(ruko):
    server, connector = ruko(language="ru")
    phone2 = server.app.control_add_field("Контакты", "Телефон")
    label = server.app.control_add_field("Контакты", "Статус label")
    assert "Kontakty" in connector.entities()
    ids = connector.field_ids("Kontakty")
    assert ids["imya"] == "field_213" and ids["telefon"] == "field_216"
    assert ids["data_rozhdeniya"] == "field_218" and ids["e_mail"] == "field_215"
    assert ids[f"telefon_{phone2}"] == f"field_{phone2}"
    assert ids[f"status_label_{label}"] == f"field_{label}"   # "status_label" is status's twin
    record = connector.fetch("Kontakty", ["1"])[0]
    assert record["status_label"] in ("Новый", "Активный", "Неактивный")


# -- values ---------------------------------------------------------------------------------------

def test_values_ids_with_label_twins_utc_timestamps_and_plain_types(ruko):
    server, connector = ruko(records=3, timezone="Asia/Yekaterinburg",
                             settings={"timezone": "Asia/Yekaterinburg"})
    rid = server.app.control_insert("Contacts", {
        "field_213": "Алёна", "field_217": "69", "field_218": "1990-02-28",
        "field_219": "2026-11-20 09:15:30", "field_220": "71,73", "field_221": "42.5",
        "field_222": "Строка 1\nLine 2 <b>bold</b>", "field_223": "1,2", "field_224": "true",
        "field_225": "1"})
    record = connector.fetch("Contacts", [str(rid)])[0]
    added = datetime.fromtimestamp(server.app.live_records("Contacts")[str(rid)]["date_added"], UTC)
    assert record == {
        "id": str(rid), "date_added": added.strftime("%Y-%m-%dT%H:%M:00Z"), "date_updated": None,
        "created_by": "1", "created_by_label": "Admin User",
        "first_name": "Алёна", "last_name": None, "email": None, "phone": None,
        "status": "69", "status_label": "Active", "birthday": "1990-02-28",
        "last_contacted": "2026-11-20T04:15:00Z",   # 09:15 in UTC+5, minute precision
        "tags": "71,73", "tags_label": "Customer, Supplier", "score": 42.5,
        "notes": "Строка 1\nLine 2 <b>bold</b>", "owner": "1,2", "owner_label": "Admin User, Mary Manager",
        "vip": True, "company": "1", "company_label": "ООО «Ромашка»"}


def test_a_wrong_datetime_format_setting_says_what_to_fix(ruko):
    _, connector = ruko(settings={"datetime_format": "d.m.Y H:i"})
    with pytest.raises(ProtocolError, match="datetime_format"):
        read_all(connector)


# -- change capture ------------------------------------------------------------------------------

def test_full_read_lists_ids_then_reads_them_in_chunks_each_with_a_cursor(ruko):
    server, connector = ruko(records=25, settings={"page_size": 10})
    server.reset_stats()
    records, batches = read_all(connector)
    assert {r["id"] for r in records} == server.app.live_ids("Contacts")
    assert all(b.scan for b in batches) and [loads(b.cursor).get("after") for b in batches] == [10, 20, 25, None]
    assert batches[-1].cursor.startswith('{"v":1,"since":"')
    assert server.stats_json()["requests"]["select"] == 1 + 3   # one id listing, three chunks by id


def test_listing_pages_until_number_of_pages(ruko):
    server, connector = ruko(records=25, settings={"page_size": 10})
    urls = []
    connector.http.session.hooks["response"].append(lambda r, *a, **k: urls.append(r.request.url))
    records, _ = read_all(connector, '{"v":1,"since":null}')   # windows from the start, pages of 10
    assert {r["id"] for r in records} == server.app.live_ids("Contacts")
    assert any(u.endswith("page=3") for u in urls) and not any(u.endswith("page=4") for u in urls)  # it repeats 3


def test_incremental_poll_finds_edits_and_never_edited_inserts_but_not_kanban_moves(ruko):
    server, connector = ruko(records=30, settings={"page_size": 10})
    _, batches = read_all(connector)
    cursor = batches[-1].cursor
    app = server.app
    app.control_clock(advance=600)
    app.control_edit("Contacts", 3, {"field_213": "Пётр"})
    new = str(app.control_insert("Contacts", {"field_213": "Новый"}))   # date_updated stays 0
    app.control_kanban_move("Contacts", 4, "field_217", "70")
    app.control_delete("Contacts", 5)

    server.reset_stats()
    records, batches = read_all(connector, cursor)
    ids = {r["id"] for r in records}
    assert {"3", new} <= ids and not ids & {"4", "5"}
    assert not any(b.scan for b in batches)
    assert server.stats_json()["requests"] == {"select": 2}   # one date_updated, one date_added window
    assert next(r for r in records if r["id"] == "3")["first_name"] == "Пётр"
    newest = batches[-1].cursor

    app.control_clock(advance=600)
    app.control_edit("Contacts", 6, {"field_214": "Сидоров"})
    records, _ = read_all(connector, newest)
    assert {"6", "3", new} == {r["id"] for r in records}   # the previous minute is re-read (overlap)

    records, _ = read_all(connector, None)   # a full read sees the kanban move
    assert next(r for r in records if r["id"] == "4")["status"] == "70"


def test_the_cursor_follows_the_server_clock_whatever_the_timezone_setting(ruko):
    server, connector = ruko(records=10, settings={"timezone": "America/New_York"})
    _, batches = read_all(connector)
    server.app.control_clock(advance=120)
    server.app.control_edit("Contacts", 2, {"field_213": "Зоя"})
    records, _ = read_all(connector, batches[-1].cursor)
    assert "2" in {r["id"] for r in records}


def test_paging_starts_again_when_rows_vanish_between_pages(ruko):
    server, connector = ruko(records=25, settings={"page_size": 10})
    seen = set()
    for n, batch in enumerate(connector.read_changes("Contacts", None)):
        seen.update(r["id"] for r in batch.records)
        if n == 0:
            server.app.control_delete("Contacts", 1)   # page 2 would now skip id 11
    assert seen - {"1"} == server.app.live_ids("Contacts")


def test_list_ids_fetch_and_search(ruko):
    server, connector = ruko(records=30)
    listed = [i for page in connector.list_ids("Contacts") for i in page]
    assert sorted(listed, key=int) == sorted(server.app.live_ids("Contacts"), key=int)
    assert [r["id"] for r in connector.fetch("Contacts", ["2", "3", "99999"])] == ["2", "3"]
    first = connector.fetch("Contacts", ["2"])[0]
    found = connector.search("Contacts", {"first_name": first["first_name"], "status": first["status_label"]})
    assert "2" in {r["id"] for r in found}
    assert all(r["status"] == first["status"] for r in found)


# -- writes -------------------------------------------------------------------------------------

def test_create_update_delete_one_record_each_with_readable_names(ruko):
    server, connector = ruko(records=5)
    created = connector.create("Contacts", {
        "first_name": "Тест", "last_name": "O'Brien", "status": "Active", "tags": ["71", "73"],
        "vip": True, "birthday": "1990-02-28", "last_contacted": "2026-11-20T09:15:30Z", "score": 4.5,
        "notes": "a\nb", "owner": "1,2"})
    stored = server.app.live_records("Contacts")[created["id"]]
    assert stored["field_220"] == "71,73" and stored["field_217"] == "69" and stored["date_updated"] == 0
    assert created["last_contacted"] == "2026-11-20T09:15:00Z" and created["tags_label"] == "Customer, Supplier"
    assert server.stats_json()["requests"]["insert"] == 1

    updated = connector.update("Contacts", created["id"], {"status": "70", "email": "t@example.ru"})
    assert (updated["status"], updated["email"], updated["first_name"]) == ("70", "t@example.ru", "Тест")
    assert updated["date_updated"] is not None

    connector.delete("Contacts", created["id"])
    connector.delete("Contacts", created["id"])   # already gone counts as deleted
    assert created["id"] not in server.app.live_ids("Contacts")
    with pytest.raises(NotFound):
        connector.update("Contacts", created["id"], {"status": "69"})


def test_write_errors_name_the_field(ruko):
    _, connector = ruko(records=3, unique_email=True)
    with pytest.raises(ValidationError) as unknown:
        connector.create("Contacts", {"nope": 1})
    assert unknown.value.field == "nope"
    with pytest.raises(ValidationError, match="display text of status") as twin:
        connector.update("Contacts", "1", {"status_label": "Active"})
    assert twin.value.field == "status_label"
    with pytest.raises(ValidationError, match="not a choice") as choice:
        connector.create("Contacts", {"status": "Потерян"})
    assert choice.value.field == "status"
    with pytest.raises(ValidationError, match="parent_item_id is required") as parent:
        connector.create("Tasks", {"name": "Без проекта"})   # the server's own message
    assert parent.value.field == "parent_item_id"
    connector.create("Contacts", {"email": "same@example.ru"})
    with pytest.raises(ValidationError, match="already exists") as unique:
        connector.create("Contacts", {"email": "same@example.ru"})
    assert unique.value.field == "email"
    assert connector.create("Tasks", {"name": "С проектом", "parent_item_id": "1"})["parent_item_id"] == "1"


# -- through the engine ---------------------------------------------------------------------------

def test_pull_then_exactly_the_changed_rows_change_and_the_sweep_catches_kanban(ruko, write_config,
                                                                                sqlite_url):
    server, _ = ruko(records=40, settings={"page_size": 15})
    path = write_config(sqlite_url, {"ruko": system(server, page_size=15, sweep_every="1h")})
    config = load_config(path)
    first = pull(config, targets=["ruko"])
    assert first.ok and first.entity("ruko", "Contacts").created == 40
    mirror = Mirror(config.mirror_url)
    assert set(mirror.records("ruko", "Contacts")) == server.app.live_ids("Contacts")

    app = server.app
    app.control_clock(advance=300)
    app.control_edit("Contacts", 7, {"field_213": "Фёдор"})
    app.control_edit("Contacts", 8, {"field_221": "99"})
    new = str(app.control_insert("Contacts", {"field_213": "Новенький", "field_217": "68"}))
    app.control_kanban_move("Contacts", 10, "field_217", "70")
    second = pull(config, targets=["ruko"]).entity("ruko", "Contacts")  # incremental: no sweep due
    assert (second.created, second.updated, second.deleted, second.swept) == (1, 2, 0, False)
    records = mirror.records("ruko", "Contacts")
    assert records["7"]["first_name"] == "Фёдор" and records["8"]["score"] == 99
    assert records[new]["date_updated"] is None and records["10"]["status"] != "70"

    app.control_delete("Contacts", 9)
    swept = pull(config, targets=["ruko"], sweep=True).entity("ruko", "Contacts")  # the sweep re-reads records
    assert (swept.created, swept.updated, swept.deleted, swept.swept) == (0, 1, 1, True)
    assert mirror.records("ruko", "Contacts")["10"]["status"] == "70"
    assert "9" in mirror.deleted_ids("ruko", "Contacts")


def test_check_command_prints_one_login_refused_line_and_exits_non_zero(emulator, write_config, sqlite_url):
    from click.testing import CliRunner

    from syncengine.cli import main

    server = emulator("rukovoditel", records=3, password=PASSWORD, api_key=KEY)
    path = write_config(sqlite_url, {"ruko": {**system(server), "password": "not-the-password"}})
    result = CliRunner().invoke(main, ["--config", str(path), "check"])
    assert result.exit_code == 1
    [line] = [line for line in result.output.splitlines() if "ruko" in line and "FAIL" in line]
    assert "login refused" in line and "[systems.ruko]" in line  # one line, markup-safe
    assert "not-the-password" not in result.output
