"""No blind writes (issue 11, point 4), however late the edit: a CRM user's edit that lands while a
sync or an undo is writing — after the engine last read the record, before that record's own
write — is never overwritten. The emulators run the edit right after one of the engine's writes."""
from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from syncengine.cli import main
from syncengine.conflicts import conflicts
from syncengine.mirror import Mirror
from syncengine.sync import run_sync


def edit_one_not_yet_written(read: Any, edit: Any, ids: list[str], field: str, synced: str, typed: str) -> Any:
    """An action for ``after_request``: a user types TYPED into FIELD of the first record of IDS
    that does not hold SYNCED yet (one the engine has still to write). Returns the ids it edited."""
    edited: list[str] = []

    def action() -> None:
        records = read()
        rid = next(r for r in ids if records[r][field] != synced)
        edit(rid, **{field: typed})
        edited.append(rid)

    action.edited = edited  # type: ignore[attr-defined]
    return action


@pytest.mark.parametrize("target", ["alfa", "vt"])
def test_an_edit_landing_between_two_writes_is_not_overwritten(small, target):
    """Five notes cross in one run (one writer: the updates go out one after the other); after the
    first write a user edits a record still to be written. The sync does not overwrite it: the
    note is a `manual` field, so the run ends with the user's value in place and a conflict."""
    vt_ids = list(small.ids)
    if target == "alfa":
        for a in vt_ids:
            small.vt_edit(a, description="Из vtiger")
        ids = [small.ids[a] for a in vt_ids]
        action = edit_one_not_yet_written(small.alfa_customers, small.alfa_edit, ids, "note", "Из vtiger",
                                          "Пользователь")
        small.alfa_server.after_request("customer/update", action)
    else:
        for a in vt_ids:
            small.alfa_edit(small.ids[a], note="Из Альфы")
        ids = vt_ids
        action = edit_one_not_yet_written(small.vt_contacts, small.vt_edit, ids, "description", "Из Альфы",
                                          "Пользователь")
        small.vt_server.after_request("revise", action)
    result = run_sync(small.config, workers=1)
    [rid] = action.edited
    held = small.alfa_customers()[rid]["note"] if target == "alfa" else small.vt_contacts()[rid]["description"]
    assert held == "Пользователь", result.apply.as_dict()
    assert [c["field"] for c in conflicts(Mirror(small.config.mirror_url))] == ["note"]
    assert result.apply.writes == 4


def test_undo_leaves_alone_an_edit_landing_between_its_writes(small):
    """Undo re-reads each record right before putting it back: a correction made after undo's
    first write, to a record undo has still to restore, stays."""
    vt_ids = list(small.ids)
    for a in vt_ids:
        small.vt_edit(a, lastname=f"Неверно{a}")
    run_id = run_sync(small.config).apply.run_id
    ids = [small.ids[a] for a in vt_ids]
    renamed = {small.ids[a]: f"Неверно{a}" for a in vt_ids}
    edited: list[str] = []

    def correct_one_not_yet_undone() -> None:
        records = small.alfa_customers()
        rid = next(r for r in ids if records[r]["name"] == renamed[r])
        small.alfa_edit(rid, name="Исправлено")
        edited.append(rid)

    small.alfa_server.after_request("customer/update", correct_one_not_yet_undone)
    out = CliRunner().invoke(main, ["--config", str(small.config_path), "undo", str(run_id)],
                             catch_exceptions=False)
    [rid] = edited
    assert small.alfa_customers()[rid]["name"] == "Исправлено"
    assert out.exit_code != 0 and "left alone" in out.output


def test_an_edit_landing_before_a_propagated_delete_keeps_the_record(small):
    """vtiger deleted a contact; the second look confirms it and the sync deletes the Alfa twin — but
    an Alfa user edits that customer after the pull, before the delete goes out. The delete is not
    sent blind: it is re-planned as the edit-vs-delete it now is (default ``keep``), the edit stays."""
    a = next(iter(small.ids))
    small.vt.control_delete(a)
    run_sync(small.config)                                  # first sighting: held
    edited: list[bool] = []

    def edit_before_the_write() -> bool:                    # asked right before each write
        if not edited:
            edited.append(True)
            small.alfa_edit(small.ids[a], note="Важный клиент")
        return False

    result = run_sync(small.config, should_stop=edit_before_the_write)
    assert small.ids[a] in small.alfa_customers(), result.apply.as_dict()
    assert small.alfa_customers()[small.ids[a]]["note"] == "Важный клиент"
    assert result.apply.done[("alfa:customer", "delete")] == 0
