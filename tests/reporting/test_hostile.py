"""Issue 14.8: reporting tables survive real-world field names and values, on SQLite and PostgreSQL."""
from __future__ import annotations

import sqlalchemy as sa

from syncengine import emulators
from syncengine.config import load_config
from syncengine.emulators import EmulatorServer
from syncengine.jsonutil import dumpb, loads
from syncengine.mirror import Mirror
from syncengine.mirror.reporting import MAX_COLUMNS
from syncengine.pull import pull
from syncengine.types import EntitySchema, Field

from .helpers import catalog_types, vtiger_system

LONG_NAME = "Ответственный сотрудник по сопровождению ключевого клиента компании"


def rows(mirror: Mirror, sql: str) -> list:
    with mirror.engine.connect() as conn:
        return list(conn.execute(sa.text(sql)))


def test_a_field_name_longer_than_63_bytes_survives_every_later_pull(emulator, write_config, mirror_url):
    server = emulator("rukovoditel", records=5, password="pw-123456", api_key="key-123456")
    config = load_config(write_config(mirror_url, {"ruko": {
        "kind": "rukovoditel", "url": server.url, "username": "admin", "password": "pw-123456",
        "api_key": "key-123456", "entities": ["Contacts"]}}))
    field_id = server.app.control_add_field("Contacts", LONG_NAME)
    server.app.control_edit("Contacts", 2, {f"field_{field_id}": "Иванов"})
    assert pull(config).ok
    for _ in range(2):  # PostgreSQL cut the name at 63 bytes and every later pull re-added it
        server.app.control_clock(advance=60)
        server.app.control_edit("Contacts", 3, {f"field_{field_id}": "Петров"})
        assert pull(config).ok
    mirror = Mirror(config.mirror_url)
    (column,) = [c for c in catalog_types(mirror.engine, "ruko_contacts") if c.startswith("otvetstvennyy")]
    assert len(column.encode()) <= 63
    values = dict(rows(mirror, f'SELECT id, "{column}" FROM ruko_contacts WHERE "{column}" IS NOT NULL'))
    assert values == {"2": "Иванов", "3": "Петров"}


def test_names_with_placeholders_or_differing_only_by_case_get_their_own_columns(mirror_url):
    schema = EntitySchema("deal", [Field("id", "integer"), Field("price?", "number"), Field("50%", "string"),
                                   Field("Email", "string"), Field("email", "string")])
    mirror = Mirror(mirror_url)
    mirror.writer("crm", schema).apply([{"id": 1, "price?": "10.5", "50%": "half", "Email": "A@x", "email": "b@x"}])
    columns = [c for c in catalog_types(mirror.engine, "crm_deal") if not c.startswith("_") and c != "id"]
    assert len(columns) == 4 and columns[:3] == ["price?", "50%", "Email"]
    (row,) = rows(mirror, "SELECT * FROM crm_deal")
    assert (float(row[1]), row[2], row[3], row[4]) == (10.5, "half", "A@x", "b@x")


def test_a_nul_character_loses_only_itself_not_the_batch(mirror_url):
    schema = EntitySchema("note", [Field("id", "integer"), Field("text", "text"), Field("tags", "json")])
    mirror = Mirror(mirror_url)
    counts = mirror.writer("crm", schema).apply([{"id": 1, "text": "a\x00b", "tags": ["x\x00y"]},
                                                 {"id": 2, "text": "fine", "tags": []}])
    assert counts.created == 2
    assert [tuple(r[:2]) for r in rows(mirror, "SELECT id, text FROM crm_note ORDER BY id")] == [(1, "ab"), (2, "fine")]
    (tags,) = rows(mirror, "SELECT tags FROM crm_note WHERE id = 1")[0]
    assert (tags if isinstance(tags, list) else loads(tags)) == ["xy"]
    assert mirror.records("crm", "note")["1"]["text"] == "a\x00b"  # the raw record keeps what the CRM sent


def test_an_id_longer_than_128_characters_is_kept(mirror_url):
    schema = EntitySchema("doc", [Field("id", "string"), Field("title", "string")])
    long_id = "doc-" + "x" * 300
    mirror = Mirror(mirror_url)
    mirror.writer("crm", schema).apply([{"id": long_id, "title": "long"}])
    assert set(mirror.records("crm", "doc")) == {long_id}
    assert rows(mirror, "SELECT id, title FROM crm_doc") == [(long_id, "long")]


def test_fields_past_the_column_limit_spill_to_a_json_column(mirror_url):
    fields = [Field("id", "integer")] + [Field(f"f{i}", "string") for i in range(2100)]
    record = {"id": 1, **{f"f{i}": f"v{i}" for i in range(2100)}}
    mirror = Mirror(mirror_url)
    mirror.writer("crm", EntitySchema("wide", fields)).apply([record])
    columns = catalog_types(mirror.engine, "crm_wide")
    assert f"f{MAX_COLUMNS - 1}" in columns and f"f{MAX_COLUMNS}" not in columns and "_extra" in columns
    (row,) = rows(mirror, f"SELECT f0, f{MAX_COLUMNS - 1}, _extra FROM crm_wide")
    extra = row[2] if isinstance(row[2], dict) else loads(row[2])
    assert row[:2] == ("v0", f"v{MAX_COLUMNS - 1}") and len(extra) == 2100 - MAX_COLUMNS
    assert extra["f2099"] == "v2099"


def test_a_non_numeric_vtiger_id_at_the_end_of_a_page_is_kept_and_paging_goes_on(write_config, mirror_url):
    """A hostile answer: the first ``query`` page ends with a row whose id has no number."""
    app = emulators.create_app("salesplatform", 130)  # two pages of 100
    answer = app.handle

    def odd_first_page(request):
        response = answer(request)
        body = loads(response.body)
        if request.query.get("operation") == "query" and not odd and body.get("result"):
            odd.append(body["result"][-1]["id"])
            body["result"].append({**body["result"][-1], "id": "12xabc"})
            response.body = dumpb(body)
        return response

    odd: list[str] = []
    app.handle = odd_first_page  # type: ignore[method-assign]
    with EmulatorServer(app).start() as server:
        config = load_config(write_config(mirror_url, {"sp": vtiger_system(server)}))
        assert pull(config).ok
        ids = set(app.live_records("Contacts"))
    mirror = Mirror(config.mirror_url)
    assert {r[0] for r in rows(mirror, "SELECT id FROM sp_contacts")} == ids | {"12xabc"}


def test_an_id_that_is_no_bigint_in_an_integer_id_table_is_left_out_of_it_not_the_batch(mirror_url):
    schema = EntitySchema("lead", [Field("id", "integer"), Field("name", "string")])
    mirror = Mirror(mirror_url)
    writer, huge = mirror.writer("crm", schema), "9" * 30
    counts = writer.apply([{"id": "abc", "name": "letters"}, {"id": huge, "name": "huge"},
                           {"id": "²", "name": "a digit to str.isdigit, not to int"}, {"id": 7, "name": "fine"}])
    assert counts.created == 4
    assert set(mirror.records("crm", "lead")) == {"abc", huge, "²", "7"}  # the raw records keep every one
    assert rows(mirror, "SELECT id, name FROM crm_lead") == [(7, "fine")]
    assert writer.apply([], ["abc", huge, "²"]).deleted == 3
    assert set(mirror.records("crm", "lead")) == {"7"}


def test_a_time_past_what_the_os_reads_becomes_null_not_a_failed_batch(mirror_url):
    schema = EntitySchema("task", [Field("id", "integer"), Field("due", "datetime"), Field("note", "text")])
    mirror = Mirror(mirror_url)
    counts = mirror.writer("crm", schema).apply([{"id": 1, "due": 2 ** 62, "note": "far"},  # fromtimestamp: OSError
                                                 {"id": 2, "due": 0, "note": "epoch"}])
    assert counts.created == 2
    assert [tuple(r) for r in rows(mirror, "SELECT id, due IS NULL, note FROM crm_task ORDER BY id")] == [
        (1, True, "far"), (2, False, "epoch")]
    assert mirror.records("crm", "task")["1"]["due"] == 2 ** 62
