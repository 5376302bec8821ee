"""Deletes on evidence (issue 12): a delete waits for a second look, held deletes are listed and
decided, edit vs delete is a conflict, and only live links claim records. vtiger ↔ Alfa CRM over
HTTP, on SQLite and PostgreSQL."""
from __future__ import annotations

import sqlalchemy as sa
from click.testing import CliRunner

from syncengine import jsonutil
from syncengine.cli import main
from syncengine.deletes import approve, list_deletes, reject
from syncengine.mirror import Mirror
from syncengine.mirror.models import LinkRow
from syncengine.sync import run_sync


def mirror_of(pair) -> Mirror:
    return Mirror(pair.config.mirror_url)


def link_states(pair) -> dict[tuple[str, str], str]:
    with mirror_of(pair).engine.connect() as conn:
        return {(r.left_id, r.right_id): r.state for r in conn.execute(sa.select(LinkRow))}


def use_mapping(pair, on_delete: str = "propagate", on_delete_conflict: str | None = None) -> None:
    policy = f'\non_delete_conflict = "{on_delete_conflict}"' if on_delete_conflict else ""
    text = pair.mapping_file().read_text(encoding="utf-8")
    text = text.replace('on_delete = "propagate"', f'on_delete = "{on_delete}"{policy}')
    pair.mapping_file().write_text(text, encoding="utf-8")


def test_a_delete_waits_for_a_second_look_then_propagates(small):
    a = next(iter(small.ids))
    small.vt.control_delete(a)
    first = run_sync(small.config)
    assert first.ok and first.apply.writes == 0
    assert small.ids[a] in small.alfa_customers()          # one sighting deletes nothing
    [held] = list_deletes(mirror_of(small))
    assert (held["system"], held["remote_id"], held["state"], held["reason"]) == ("vt", a, "waiting", "feed")
    assert any("syncengine deletes" in note for note in first.notes)
    second = run_sync(small.config)                      # the second look: still gone
    assert second.apply.done[("alfa:customer", "delete")] == 1
    assert small.ids[a] not in small.alfa_customers()
    assert list_deletes(mirror_of(small)) == []
    assert run_sync(small.config).apply.writes == 0


def test_a_record_back_before_the_second_look_is_released_and_syncs(small):
    a = next(iter(small.ids))
    small.vt.control_delete(a)
    run_sync(small.config)
    small.vt.control_restore(a)
    assert run_sync(small.config).apply.writes == 0
    assert small.ids[a] in small.alfa_customers()
    assert list_deletes(mirror_of(small)) == []
    assert [d["state"] for d in list_deletes(mirror_of(small), everything=True)] == ["released"]
    assert link_states(small)[(a, small.ids[a])] == "active"
    small.vt_edit(a, title="Директор")
    assert run_sync(small.config).apply.writes == 1
    assert small.alfa_customers()[small.ids[a]]["legal_name"] == "Директор"


def test_an_edit_of_the_twin_survives_a_delete_by_default(small):
    """Edit vs delete under the default ``on_delete_conflict = "keep"``: the edit survives, the pair
    is unlinked and nothing is re-created."""
    a = next(iter(small.ids))
    small.vt.control_delete(a)
    small.alfa_edit(small.ids[a], note="позвонить в понедельник")
    run_sync(small.config)
    result = run_sync(small.config)
    assert result.apply.writes == 0
    assert small.alfa_customers()[small.ids[a]]["note"] == "позвонить в понедельник"
    assert link_states(small)[(a, small.ids[a])] == "unlinked"
    assert any("kept, and unlinked" in note for note in result.notes)
    assert run_sync(small.config).apply.writes == 0       # the survivor is not re-created in vtiger


def test_edit_vs_delete_manual_waits_for_a_decision(small):
    use_mapping(small, on_delete_conflict="manual")
    a, b = list(small.ids)[:2]
    for rid in (a, b):
        small.vt.control_delete(rid)
        small.alfa_edit(small.ids[rid], note="свежая правка")
    run_sync(small.config)
    result = run_sync(small.config)
    assert result.apply.writes == 0
    assert {i.kind for i in result.plan.issues} == {"delete"}
    held = {d["remote_id"]: d for d in list_deletes(mirror_of(small))}
    assert set(held) == {a, b} and held[a]["links"]
    assert approve(mirror_of(small), [held[a]["id"]])["approved"][0]["remote_id"] == a
    assert reject(mirror_of(small), [held[b]["id"]])["rejected"][0]["remote_id"] == b
    result = run_sync(small.config)
    assert result.apply.done[("alfa:customer", "delete")] == 1
    assert small.ids[a] not in small.alfa_customers()
    # rejected: the edited customer is kept and re-created in vtiger, linked to it
    assert result.apply.done[("vt:Contacts", "create")] == 1
    twin = next(k for k, c in small.vt_contacts().items() if c["email"] == "s1@example.com")
    assert link_states(small)[(twin, small.ids[b])] == "active"
    assert small.vt_contacts()[twin]["description"] == "свежая правка"
    assert run_sync(small.config).apply.writes == 0


def test_edit_vs_delete_policy_delete_deletes(small):
    use_mapping(small, on_delete_conflict="delete")
    a = next(iter(small.ids))
    small.vt.control_delete(a)
    small.alfa_edit(small.ids[a], note="правка")
    run_sync(small.config)
    assert run_sync(small.config).apply.done[("alfa:customer", "delete")] == 1


def test_a_restored_record_syncs_again_after_propagate(small):
    a = next(iter(small.ids))
    small.vt.control_delete(a)
    run_sync(small.config)
    run_sync(small.config)
    assert small.ids[a] not in small.alfa_customers()
    small.vt.control_restore(a)                           # from the recycle bin
    result = run_sync(small.config)
    assert result.apply.done[("alfa:customer", "create")] == 1
    twin = next(k for k, c in small.alfa_customers().items() if c["email"] == ["s0@example.com"])
    assert link_states(small)[(a, twin)] == "active"
    small.vt_edit(a, title="Снова с нами")
    run_sync(small.config)
    assert small.alfa_customers()[twin]["legal_name"] == "Снова с нами"


def test_restored_and_reentered_records_link_again_after_unlink(small):
    use_mapping(small, on_delete="unlink")
    a, b = list(small.ids)[:2]
    small.vt.control_delete(a)
    with small.alfa.lock:
        small.alfa.remove("customer", int(small.ids[b]))
    run_sync(small.config)
    run_sync(small.config)
    states = link_states(small)
    assert states[(a, small.ids[a])] == states[(b, small.ids[b])] == "unlinked"
    small.vt.control_restore(a)
    again = small.alfa_add(name="Сидоров1", email=["s1@example.com"], phone=["89160000001"])
    result = run_sync(small.config)
    assert result.plan.issues == []                       # no "ambiguous" against the ended links
    assert not [op for (_, op) in result.apply.done if op == "create"]  # matched, nothing created
    states = link_states(small)
    assert states[(a, small.ids[a])] == "active"
    assert states[(b, again)] == "active"
    small.vt_edit(b, title="Вернулся")
    run_sync(small.config)
    assert small.alfa_customers()[again]["legal_name"] == "Вернулся"


def cli(pair, *args: str):
    return CliRunner().invoke(main, ["--config", str(pair.config_path), *args], catch_exceptions=False)


def test_the_breaker_holds_deletes_for_a_decision(small):
    ids = list(small.ids)
    for rid in ids[:3]:
        small.vt.control_purge(rid)                       # gone without a delete feed entry
    result = run_sync(small.config, full=True)
    refused = result.pull.entity("vt", "Contacts")
    assert refused.status == "refused" and "syncengine deletes" in refused.message
    listed = cli(small, "deletes", "--json")
    assert listed.exit_code == 0
    held = jsonutil.loads(listed.output)
    assert {d["remote_id"] for d in held} == set(ids[:3]) and {d["state"] for d in held} == {"held"}
    assert len(small.alfa_customers()) == 5
    assert cli(small, "deletes", "reject", str(held[0]["id"])).exit_code == 0
    assert cli(small, "deletes", "approve").exit_code == 2  # neither ids nor --all
    assert cli(small, "deletes", "approve", "--all").exit_code == 0
    assert "no held deletes" in cli(small, "deletes").output
    result = run_sync(small.config)
    assert result.apply.done[("alfa:customer", "delete")] == 2
    assert small.ids[held[0]["remote_id"]] in small.alfa_customers()


def test_a_customer_moved_out_of_the_branches_read_is_not_deleted(small):
    """Out of read scope is not a delete: ``branches = [1]``, a customer moved to branch 2."""
    with small.alfa.lock:
        small.alfa.insert("branch", {"name": "Филиал 2", "is_active": 1, "subject_ids": [], "weight": 2})
    small.config_path.write_text(small.config_path.read_text(encoding="utf-8").replace(
        "[systems.alfa]\n", "[systems.alfa]\nbranches = [1]\n"), encoding="utf-8")
    a = next(iter(small.ids))
    with small.alfa.lock:
        small.alfa.control_move_branch(int(small.ids[a]), 2)
    for _ in range(3):
        assert run_sync(small.config, full=True).apply.writes == 0
    assert a in small.vt_contacts()
    [held] = list_deletes(mirror_of(small))
    assert (held["remote_id"], held["state"]) == (small.ids[a], "scope")
    with small.alfa.lock:
        small.alfa.control_move_branch(int(small.ids[a]), 1)
    small.alfa_edit(small.ids[a], legal_name="Вернулся в филиал")
    assert run_sync(small.config, full=True).apply.writes == 1
    assert small.vt_contacts()[a]["title"] == "Вернулся в филиал"
    assert list_deletes(mirror_of(small)) == []


def test_match_on_a_list_matches_any_element(small):
    """Alfa lists [home, work], vtiger has work: one pair, no duplicate on either side."""
    vt = small.vt_add(lastname="Кузнецова", email="work@example.com")
    alfa = small.alfa_add(name="Кузнецова", email=["home@example.com", "work@example.com"])
    result = run_sync(small.config)
    assert not [op for (_, op) in result.apply.done if op == "create"]
    assert link_states(small)[(vt, alfa)] == "active"
    assert len(small.vt_contacts()) == len(small.alfa_customers()) == 6


def test_several_list_candidates_are_ambiguous_and_named(small):
    one = small.vt_add(lastname="Орлов", email="a@example.com")
    two = small.vt_add(lastname="Орлов", email="b@example.com")
    alfa = small.alfa_add(name="Орлов", email=["a@example.com", "b@example.com"])
    result = run_sync(small.config)
    assert result.apply.writes == 0
    [issue] = [i for i in result.plan.issues if i.side == "right"]
    assert issue.remote_id == alfa and issue.kind == "ambiguous"
    assert one in issue.error and two in issue.error


def test_a_list_paired_with_a_single_value_is_refused(small):
    text = small.mapping_file().read_text(encoding="utf-8")
    small.mapping_file().write_text(text.replace('right = "email[0]"', 'right = "email"'), encoding="utf-8")
    result = cli(small, "sync")
    assert result.exit_code == 2
    assert "contacts.toml: fields.email.right" in result.output and "email[0]" in result.output
    assert len(small.alfa_customers()) == 5
