"""Held deletes show the record's name as the CRM shows it (vtiger's labelFields), in the console
and in ``syncengine deletes``, from the mirror alone."""
from __future__ import annotations

from click.testing import CliRunner

from syncengine import jsonutil
from syncengine.cli import main
from syncengine.config import load_config
from syncengine.console import create_app
from syncengine.deletes import list_deletes
from syncengine.mirror import Mirror
from syncengine.pull import pull


def test_a_held_vtiger_delete_is_listed_by_the_records_name(emulator, write_config, mirror_url):
    vt = emulator("vtiger", records=0)
    contact = vt.app.control_write("Contacts", {"firstname": "Иван", "lastname": "O'Brien & Сыновья"})
    account = vt.app.control_write("Accounts", {"accountname": "ООО «Ромашка»"})
    path = write_config(mirror_url, {"vt": {"kind": "vtiger", "url": vt.url, "username": "admin",
                                            "access_key": "emulator", "entities": ["Contacts", "Accounts"]}})
    config = load_config(path)
    assert pull(config).ok
    vt.app.control_delete(contact)
    vt.app.control_delete(account)
    assert pull(config).ok
    names = {d["remote_id"]: d["label"] for d in list_deletes(Mirror(config.mirror_url))}
    assert names == {contact: "Иван O'Brien & Сыновья", account: "ООО «Ромашка»"}  # HTML entities decoded

    page = create_app(config, password=None).test_client().get("/deletes").text
    assert "Иван O&#39;Brien &amp; Сыновья" in page and "ООО «Ромашка»" in page
    shown = CliRunner().invoke(main, ["--config", str(path), "deletes", "--json"])
    assert shown.exit_code == 0 and {d["label"] for d in jsonutil.loads(shown.output)} == set(names.values())
