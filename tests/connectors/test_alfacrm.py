"""The Alfa CRM read and write path over real HTTP: emulator → connector (→ pull → mirror)."""
from __future__ import annotations

import pytest

from syncengine.config import load_config
from syncengine.connectors import connect
from syncengine.connectors.alfacrm import MODELS, _record
from syncengine.emulators import Faults
from syncengine.errors import ValidationError
from syncengine.mirror import Mirror
from syncengine.pull import pull

KEY = "alfa-emulator-key-7"


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("ALFA_API_KEY", KEY)


def start(emulator, records, *, faults=None, **options):
    return emulator("alfacrm", records=records, api_key=KEY, faults=faults, **options)


def alfa_system(server, **extra):
    return {"kind": "alfacrm", "url": server.url, "email": "admin@example.com", "api_key": "${ALFA_API_KEY}",
            "entities": ["customer"], "retries": 2, "timeout": 5, **extra}


def connector(server, write_config, sqlite_url, **extra):
    config = load_config(write_config(sqlite_url, {"alfa": alfa_system(server, **extra)}))
    return connect("alfa", config.system("alfa"))


def expected(server, model="customer"):
    """What the mirror should hold: the emulator's rows as the connector reports them."""
    return {rid: _record(MODELS[model], row) for rid, row in server.app.live_records(model).items()}


def read_all(conn, entity="customer", cursor=None):
    batches = list(conn.read_changes(entity, cursor))
    return [r for b in batches for r in b.records], batches


# -- connector -------------------------------------------------------------------------------

def test_customer_create_update_delete_round_trip(emulator, write_config, sqlite_url):
    server = start(emulator, 20)
    conn = connector(server, write_config, sqlite_url)
    created = conn.create("customer", {"name": "Соколова Анна Игоревна", "phone": ["+7(915)387-81-40"],
                                       "email": ["anna@example.ru"], "dob": "2001-05-06"})
    rid = str(created["id"])
    row = server.app.live_records("customer")[rid]
    assert row["name"] == "Соколова Анна Игоревна" and row["branch_ids"] == [1]
    assert row["dob"] == "06.05.2001" and row["e_date"] == "2030-12-31"
    assert created == _record(MODELS["customer"], row) and created["archived"] is False

    updated = conn.update("customer", rid, {"note": "перезвонить", "archived": False})
    assert updated["note"] == "перезвонить" and updated["name"] == "Соколова Анна Игоревна"
    assert conn.fetch("customer", [rid]) == [updated]
    assert conn.search("customer", {"name": "Соколова Анна Игоревна"}) == [updated]

    conn.delete("customer", rid)
    conn.delete("customer", rid)  # already gone counts as deleted
    assert rid not in server.app.live_records("customer")
    assert conn.fetch("customer", [rid]) == []


@pytest.mark.parametrize("style", ["list", "map", "422"])
def test_a_refused_write_names_the_field(emulator, write_config, sqlite_url, style):
    server = start(emulator, 5, validation_style=style)
    conn = connector(server, write_config, sqlite_url)
    with pytest.raises(ValidationError) as refused:
        conn.create("customer", {"name": "Без Почты", "email": ["not-an-address"]})
    assert refused.value.field == "email"
    assert refused.value.errors and "alfa" in str(refused.value) and "E-mail" in str(refused.value)
    with pytest.raises(ValidationError) as refused:
        conn.update("customer", "1", {"name": ""})
    assert refused.value.field == "name"


def test_token_expiry_mid_read_is_invisible(emulator, write_config, sqlite_url):
    server = start(emulator, 500)
    conn = connector(server, write_config, sqlite_url)
    server.app.on_page("customer", 3, server.app.control_expire_tokens)
    records, _ = read_all(conn)
    assert {str(r["id"]) for r in records} == set(server.app.live_records("customer"))
    assert server.stats_json()["requests"]["auth/login"] == 2


def test_token_is_renewed_before_it_expires(emulator, write_config, sqlite_url):
    server = start(emulator, 120, token_ttl=0.5)
    conn = connector(server, write_config, sqlite_url, token_refresh=0)
    records, _ = read_all(conn)
    assert len(records) == 120
    stats = server.stats_json()["requests"]
    assert stats["auth/login"] == sum(n for op, n in stats.items() if op != "auth/login")


@pytest.mark.parametrize("options", [{}, {"honour_per_page": False, "past_end": "clamp"}])
def test_paging_lists_every_row_once_across_branches(emulator, write_config, sqlite_url, options):
    server = start(emulator, 333, branches=3, **options)
    conn = connector(server, write_config, sqlite_url)
    records, batches = read_all(conn)
    ids = [str(r["id"]) for r in records]
    assert len(ids) == len(set(ids)) and set(ids) == set(server.app.live_records("customer"))
    assert any(len(r["branch_ids"]) > 1 for r in records)
    assert all(b.scan for b in batches) and batches[-1].cursor and not any(b.cursor for b in batches[:-1])


def test_archived_customers_are_live_records_flagged_archived(emulator, write_config, sqlite_url):
    server = start(emulator, 400)
    conn = connector(server, write_config, sqlite_url)
    records, batches = read_all(conn)
    archived = {str(r["id"]) for r in records if r["archived"]}
    assert archived and archived == server.app.archived_ids("customer")
    target = next(r for r in records if not r["archived"])
    server.app.control_archive("customer", target["id"])
    changed, _ = read_all(conn, cursor=batches[-1].cursor)  # via the Log, not a scan
    assert [(r["id"], r["archived"]) for r in changed] == [(target["id"], True)]


def test_rate_limit_with_retry_after_is_survived(emulator, write_config, sqlite_url):
    server = start(emulator, 600, faults=Faults(rate_limit=8, retry_after=1))
    conn = connector(server, write_config, sqlite_url, retries=5)
    records, _ = read_all(conn)
    assert len(records) == 600
    assert conn.http.errors["RateLimited"] >= 1


# -- pull into the mirror --------------------------------------------------------------------

def pull_config(server, write_config, sqlite_url, **extra):
    return load_config(write_config(sqlite_url, {"alfa": alfa_system(server, **extra)}))


def test_pull_20000_while_500_are_renamed_mid_scan(emulator, write_config, sqlite_url):
    server = start(emulator, 20_000)
    config = pull_config(server, write_config, sqlite_url)
    renamed: list[int] = []
    server.app.on_page("customer", 150, lambda: renamed.extend(server.app.control_rename(count=500, seed=3)))
    first = pull(config)
    assert first.ok and len(renamed) == 500
    mirror = Mirror(config.mirror_url)
    assert mirror.deleted_ids("alfa", "customer") == set()
    assert mirror.records("alfa", "customer") == expected(server)  # already exact after this pull
    second = pull(config)
    assert second.ok and mirror.records("alfa", "customer") == expected(server)


def test_deleted_customers_are_flagged_deleted(emulator, write_config, sqlite_url):
    server = start(emulator, 300)
    config = pull_config(server, write_config, sqlite_url)
    assert pull(config).ok
    gone = ["5", "17", "123"]
    for rid in gone:
        server.app.control_delete("customer", int(rid))
    server.reset_stats()
    hinted = pull(config).entity("alfa", "customer")   # the Log names them
    assert hinted.deleted == 3 and "customer/index" in server.stats_json()["requests"]
    mirror = Mirror(config.mirror_url)
    assert mirror.deleted_ids("alfa", "customer") == set(gone)
    swept = pull(config, full=True).entity("alfa", "customer")  # a full scan agrees
    assert swept.swept and swept.deleted == 0 and mirror.deleted_ids("alfa", "customer") == set(gone)
    assert mirror.records("alfa", "customer") == expected(server)


@pytest.mark.parametrize("mode", ["error", "empty"])
def test_a_broken_page_mid_sweep_deletes_nothing(emulator, write_config, sqlite_url, mode):
    server = start(emulator, 400)
    config = pull_config(server, write_config, sqlite_url)
    assert pull(config).ok
    server.app.control_delete("customer", 9)
    server.app.control_break_page("customer", 3, mode=mode, times=1)   # once: a retry heals it
    healed = pull(config, full=True).entity("alfa", "customer")
    assert healed.status == "ok" and healed.deleted == 1
    server.app.control_break_page("customer", 3, mode=mode, times=100)  # for good: the scan fails
    broken = pull(config, full=True).entity("alfa", "customer")
    assert broken.status == "failed" and broken.deleted == 0
    assert Mirror(config.mirror_url).deleted_ids("alfa", "customer") == {"9"}
    assert Mirror(config.mirror_url).records("alfa", "customer") == expected(server)


def test_between_scans_only_logged_changes_are_read(emulator, write_config, sqlite_url):
    server = start(emulator, 2_000)
    config = pull_config(server, write_config, sqlite_url)
    assert pull(config).ok
    server.app.control_edit("customer", 11, {"name": "Аардварк Первый"})
    created = server.app.control_create("customer", {"name": "Новиков Новый", "is_study": 1, "legal_type": 1,
                                                     "branch_ids": [1]})
    server.reset_stats()
    result = pull(config).entity("alfa", "customer")
    assert (result.created, result.updated, result.deleted) == (1, 1, 0)
    assert server.stats_json()["requests"] == {"auth/login": 1, "branch/index": 1, "log/index": 1,
                                               "customer/index": 1}
    assert Mirror(config.mirror_url).records("alfa", "customer")[str(created["id"])]["name"] == "Новиков Новый"


def test_a_due_sweep_rereads_rows_the_log_missed(emulator, write_config, sqlite_url):
    server = start(emulator, 200)
    config = pull_config(server, write_config, sqlite_url)
    assert pull(config).ok
    server.app.control_edit("customer", 8, {"note": "импорт"}, logged=False)
    assert pull(config).entity("alfa", "customer").updated == 0  # the Log is silent
    swept = pull(pull_config(server, write_config, sqlite_url, sweep_every="0s")).entity("alfa", "customer")
    assert swept.swept and swept.updated == 1
    assert Mirror(config.mirror_url).records("alfa", "customer") == expected(server)
