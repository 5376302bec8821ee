"""Data-corrupting cases an adversarial review found after issue 11: undo of an edited create, undo
of one list element, resolutions against later edits, recovery by prefix, plan after a failed login."""
from __future__ import annotations

from click.testing import CliRunner

from syncengine.cli import main
from syncengine.sync import run_sync


def cli(pair, *args: str):
    return CliRunner().invoke(main, ["--config", str(pair.config_path), *args], catch_exceptions=False)


def test_undo_keeps_a_created_record_the_user_edited_since(small):
    a = small.vt_add(lastname="Создан", email="c@example.com", phone="89160000009", title="T", description="")
    run_id = run_sync(small.config).apply.run_id
    [cid] = [k for k, c in small.alfa_customers().items() if c["email"] == ["c@example.com"]]
    small.alfa_edit(cid, note="Важная заметка пользователя")
    out = cli(small, "undo", str(run_id))
    assert out.exit_code == 1
    assert "not undone" in out.output and "note" in out.output
    assert small.alfa_customers()[cid]["note"] == "Важная заметка пользователя"
    assert a in small.vt_contacts()


def test_undo_of_a_list_element_keeps_the_elements_added_since(small):
    a = list(small.ids)[2]
    small.vt_edit(a, email="new2@example.com")
    run_id = run_sync(small.config).apply.run_id
    assert small.alfa_customers()[small.ids[a]]["email"] == ["new2@example.com"]
    small.alfa_edit(small.ids[a], email=["new2@example.com", "second@example.com"])
    out = cli(small, "undo", str(run_id))
    assert out.exit_code == 0, out.output
    assert small.alfa_customers()[small.ids[a]]["email"] == ["s2@example.com", "second@example.com"]
