"""Sync state that matches what each CRM holds (issue 11): per-side bases, list elements, strict
entities, compare-before-write, current conflicts, recovery that adopts only its own record,
re-applied plans, templates for records born on the template's target side."""
from __future__ import annotations

import sqlalchemy as sa
from click.testing import CliRunner

from syncengine.cli import main
from syncengine.config import load_config
from syncengine.conflicts import conflicts, resolve_conflict
from syncengine.mirror import Mirror
from syncengine.mirror.models import LinkRow, OutboxRow
from syncengine.pull import pull
from syncengine.sync import run_sync


def cli(pair, *args: str):
    return CliRunner().invoke(main, ["--config", str(pair.config_path), *args], catch_exceptions=False)


def test_a_value_the_target_stores_shorter_is_not_sent_back(small):
    """vtiger keeps 80 characters of a last name: the cut form is vtiger's base, Alfa keeps the full
    name, nothing flaps, and the loss is reported once."""
    a = next(iter(small.ids))
    full = "Константинопольская-Старорусская-Преображенская-Верхнеднепровская-Нижнеландская-Задунайская"
    assert len(full) > 80
    small.alfa_edit(small.ids[a], name=full)
    first = run_sync(small.config)
    assert first.ok and first.apply.writes == 1
    assert small.vt_contacts()[a]["lastname"] == full[:80]
    [notice] = first.apply.notices
    assert "name" in notice and full in notice and f'"{full[:80]}"' in notice
    second = run_sync(small.config)
    assert second.apply.writes == 0 and not second.apply.notices
    assert small.alfa_customers()[small.ids[a]]["name"] == full
    small.vt_edit(a, lastname="Короткая")                      # a real edit in vtiger still flows
    assert run_sync(small.config).apply.writes == 1
    assert small.alfa_customers()[small.ids[a]]["name"] == "Короткая"


def test_clearing_a_list_element_blanks_it_and_never_shifts_the_list(small):
    a = next(iter(small.ids))
    small.alfa_edit(small.ids[a], email=["s0@example.com", "second@example.com"])
    assert run_sync(small.config).apply.writes == 0
    small.vt_edit(a, email="")
    assert run_sync(small.config).ok
    assert small.alfa_customers()[small.ids[a]]["email"] == ["", "second@example.com"]
    assert run_sync(small.config).apply.writes == 0
    assert small.vt_contacts()[a]["email"] == ""


def test_a_first_address_the_list_already_holds_trades_places_and_is_never_listed_twice(small):
    """vtiger's e-mail (Alfa's email[0]) becomes the address Alfa lists second, spelled otherwise:
    the two trade places; the replaced address stays listed, the new one is not there twice."""
    a = next(iter(small.ids))
    small.alfa_edit(small.ids[a], email=["s0@example.com", "Second@Example.com"])
    assert run_sync(small.config).apply.writes == 0
    small.vt_edit(a, email="second@example.com")
    assert run_sync(small.config).ok
    assert small.alfa_customers()[small.ids[a]]["email"] == ["second@example.com", "s0@example.com"]
    assert run_sync(small.config).apply.writes == 0
    assert small.vt_contacts()[a]["email"] == "second@example.com"


def test_text_with_ampersands_arrives_byte_identical_both_ways(small):
    """Only vtiger stores entities encoded, and only strict ``&name;``/``&#N;`` forms are decoded:
    ``&currency=`` is not ``¤cy=``, and ``<b>`` that vtiger keeps as ``&lt;b&gt;`` reads back as typed."""
    a, b = list(small.ids)[:2]
    url = "https://pay.example/?amount=100&currency=RUB&region=77 (Call&notify) <b>"
    small.alfa_edit(small.ids[a], note=url)
    small.vt_edit(b, description=url)
    assert run_sync(small.config).ok
    assert Mirror(small.config.mirror_url).records("vt", "Contacts")[a]["description"] != url  # stored encoded
    assert small.alfa_customers()[small.ids[b]]["note"] == url
    assert run_sync(small.config).apply.writes == 0
    with Mirror(small.config.mirror_url).engine.connect() as conn:
        shadows = [r.shadow for r in conn.execute(sa.select(LinkRow))]
    assert sum(url in s for s in shadows) == 2


def test_an_edit_made_after_the_plan_is_not_overwritten(small, tmp_path):
    """An Alfa edit between `plan --out` and `apply`: the write is skipped, apply says so and
    exits non-zero; the next sync keeps the user's edit (the field's policy decides)."""
    a = next(iter(small.ids))
    small.vt_edit(a, title="Плановый")
    plan_file = tmp_path / "p.plan"
    assert cli(small, "plan", "--pull", "--out", str(plan_file)).exit_code == 0
    small.alfa_edit(small.ids[a], legal_name="Пользователь")
    out = cli(small, "apply", str(plan_file))
    assert out.exit_code != 0 and "changed since the plan" in out.output
    assert small.alfa_customers()[small.ids[a]]["legal_name"] == "Пользователь"


def test_a_rename_between_pull_and_write_survives(small):
    """A vtiger user renames a contact while the sync writes: the planned write is skipped, the
    record re-planned with what vtiger holds now, and the rename reaches Alfa in the same run."""
    a = next(iter(small.ids))
    small.alfa_edit(small.ids[a], name="Из Альфы")

    renamed = []

    def rename_once() -> bool:  # called just before each write
        if not renamed:
            renamed.append(a)
            small.vt_edit(a, lastname="Из vtiger")
        return False

    result = run_sync(small.config, should_stop=rename_once)
    assert result.ok, result.apply.as_dict()
    vt, alfa = small.vt_contacts(), small.alfa_customers()
    assert vt[a]["lastname"] == alfa[small.ids[a]]["name"] == "Из vtiger"
    assert run_sync(small.config).apply.writes == 0


def test_undo_leaves_fields_changed_since_alone(small):
    a, b = list(small.ids)[:2]
    small.vt_edit(a, lastname="Неверно")
    small.vt_edit(b, lastname="Второй")
    run_id = run_sync(small.config).apply.run_id
    small.alfa_edit(small.ids[a], name="Исправлено")          # a user corrects the synced name
    out = cli(small, "undo", str(run_id))
    assert out.exit_code != 0 or "left alone" in out.output
    assert "left alone" in out.output and "name" in out.output
    alfa = small.alfa_customers()
    assert alfa[small.ids[a]]["name"] == "Исправлено"        # the correction stays
    assert alfa[small.ids[b]]["name"] == "Сидоров1"           # the untouched write is undone


def test_a_conflict_resolves_to_the_sides_current_value(small):
    d = list(small.ids)[3]
    small.vt_edit(d, description="A")
    small.alfa_edit(small.ids[d], note="B")
    run_sync(small.config)
    small.vt_edit(d, description="A2")                        # the user refines the left side
    pull(small.config)
    run_sync(small.config)
    [conflict] = conflicts(Mirror(small.config.mirror_url))
    assert (conflict["left"], conflict["right"]) == ("A2", "B")
    small.vt_edit(d, description="A3")                        # and again, after the last plan
    resolve_conflict(Mirror(small.config.mirror_url), conflict["id"], take="left")
    assert run_sync(small.config).ok
    assert small.vt_contacts()[d]["description"] == small.alfa_customers()[small.ids[d]]["note"] == "A3"


def test_recovery_never_adopts_another_records_create(small):
    """Two vtiger contacts share an e-mail; Alfa's first create fails, the second's answer is lost.
    No contact ever takes the other's name or phone, and nothing is created blindly twice."""
    one = small.vt_add(lastname="Первая", email="twin@example.com", phone="89160000101")
    two = small.vt_add(lastname="Вторая", email="twin@example.com", phone="89160000102")
    small.alfa_server.fail_next(1, operation="customer/create")
    small.alfa_server.fail_next(1, operation="customer/create", after=True)
    for _ in range(3):
        run_sync(small.config)
    vt = small.vt_contacts()
    assert (vt[one]["lastname"], vt[one]["phone"]) == ("Первая", "89160000101")
    assert (vt[two]["lastname"], vt[two]["phone"]) == ("Вторая", "89160000102")
    twins = [c for c in small.alfa_customers().values() if c["email"] == ["twin@example.com"]]
    assert len(twins) <= 1
    mirror = Mirror(small.config.mirror_url)
    with mirror.engine.connect() as conn:
        links = {r.left_id: r.right_id for r in conn.execute(sa.select(LinkRow))}
    for twin in twins:  # a twin is linked to the contact whose values it carries, or to none
        owner = next((vid for vid, aid in links.items() if aid == str(twin["id"])), None)
        assert owner is None or vt[owner]["lastname"] == twin["name"]


MAPPING_WITHOUT_MATCH = """
left = "vt:Contacts"
right = "alfa:customer"
[fields]
name  = { left = "lastname", right = "name" }
email = { left = "email", right = "email[0]", normalize = "email" }
is_study   = { right = "is_study", const = 1 }
legal_type = { right = "legal_type", const = 1 }
"""


def test_reapplying_a_plan_after_a_lost_answer_does_not_duplicate(make_pair, tmp_path):
    pair = make_pair(MAPPING_WITHOUT_MATCH)
    pair.vt_add(lastname="Единственный", email="only@example.com")
    plan_file = tmp_path / "p.plan"
    assert cli(pair, "plan", "--pull", "--out", str(plan_file)).exit_code == 0
    pair.alfa_server.fail_next(1, operation="customer/create", after=True)
    assert cli(pair, "apply", str(plan_file)).exit_code != 0
    again = cli(pair, "apply", str(plan_file))
    assert len([c for c in pair.alfa_customers().values() if c["name"] == "Единственный"]) == 1, again.output
    assert run_sync(pair.config).apply.writes == 0
    assert len(pair.alfa_customers()) == 1
    mirror = Mirror(pair.config.mirror_url)
    with mirror.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(LinkRow)).scalar_one() == 1
        assert not conn.execute(sa.select(OutboxRow).where(OutboxRow.state == "sent")).all()


def test_a_template_reaches_records_born_on_its_target_side(pair):
    """payer (Alfa legal_name) renders from vtiger's first and last name; an Alfa-born customer
    gets it too, in the run that creates its vtiger contact."""
    rid = pair.alfa_add(name="Иванова", email=["ivanova@example.com"], legal_name="")
    assert run_sync(pair.config).ok
    assert pair.alfa_customers()[rid]["legal_name"] == "Иванова"
    assert run_sync(pair.config).apply.writes == 0


ALFA_RUKO = """
left = "alfa:customer"
right = "ruko:Contacts"
match_on = ["email"]
[fields]
name  = { left = "name", right = "last_name" }
email = { left = "email[0]", right = "email", normalize = "email" }
paid  = { left = "paid_till", right = "last_contacted", type = "datetime" }
"""


def test_a_datetime_kept_to_the_minute_never_overwrites_the_seconds(emulator, write_config, sqlite_url, tmp_path):
    """Rukovoditel keeps 10:15 of Alfa's 10:15:30: Alfa keeps its seconds, nothing flaps."""
    alfa = emulator("alfacrm", records=0, api_key="pair-secret")
    ruko = emulator("rukovoditel", records=0, password="pair-secret", api_key="pair-secret")
    path = write_config(sqlite_url, {
        "alfa": {"kind": "alfacrm", "url": alfa.url, "email": "admin@example.com", "api_key": "pair-secret",
                 "entities": ["customer"], "use_log": False},
        "ruko": {"kind": "rukovoditel", "url": ruko.url, "username": "admin", "password": "pair-secret",
                 "api_key": "pair-secret", "entities": ["Contacts"]}})
    (tmp_path / "mappings").mkdir(exist_ok=True)
    (path.parent / "mappings" / "paid.toml").write_text(ALFA_RUKO, encoding="utf-8")
    with alfa.app.lock:
        rid = str(alfa.app.insert("customer", {"branch_ids": [1], "is_study": 1, "legal_type": 1, "name": "Секундова",
                                               "email": ["sec@example.com"], "paid_till": "2026-03-01 10:15:30"})["id"])
    config = load_config(path)
    first = run_sync(config)
    assert first.ok, first.apply.as_dict()
    assert any("paid" in n for n in first.apply.notices)
    for _ in range(2):
        again = run_sync(config)
        assert again.ok and again.apply.writes == 0 and not again.apply.notices
    assert alfa.app.live_records("customer")[rid]["paid_till"] == "2026-03-01 10:15:30"


STAMPED = MAPPING_WITHOUT_MATCH.replace('left = "vt:Contacts"', 'external_id = "department"\nleft = "vt:Contacts"')


def test_an_external_id_tells_same_key_creates_apart(make_pair):
    """Two Alfa customers share an e-mail; vtiger's first create fails, the second's answer is lost.
    Each create stamps vtiger's `department` with its source, recovery looks that up: each customer
    ends linked to its own contact, none duplicated, none adopted by the other."""
    pair = make_pair(STAMPED.replace("[fields]", 'match_on = ["email"]\n[fields]'))
    one = pair.alfa_add(name="Первая", email=["twin@example.com"])
    two = pair.alfa_add(name="Вторая", email=["twin@example.com"])
    pair.vt_server.fail_next(1, operation="create")
    pair.vt_server.fail_next(1, operation="create", after=True)
    for _ in range(3):
        run_sync(pair.config)
    vt = pair.vt_contacts()
    assert sorted(c["lastname"] for c in vt.values()) == ["Вторая", "Первая"]
    assert {c["department"] for c in vt.values()} == {f"alfa:customer:{one}", f"alfa:customer:{two}"}
    mirror = Mirror(pair.config.mirror_url)
    with mirror.engine.connect() as conn:
        links = {r.right_id: r.left_id for r in conn.execute(sa.select(LinkRow))}
    assert vt[links[one]]["lastname"] == "Первая" and vt[links[two]]["lastname"] == "Вторая"
    assert run_sync(pair.config).apply.writes == 0
