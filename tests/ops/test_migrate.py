"""``syncengine migrate``: killed mid-read and mid-write and resumed, every record arrives exactly once."""
from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import sqlalchemy as sa
from kills import KillOnRequest

REPO = Path(__file__).resolve().parents[2]
CONTACTS = 80
EXISTING = 10


def outbox(db: Path) -> list[tuple[str, str]]:
    """(plan id, state) of every outbox row; nothing before the first apply made the table."""
    engine = sa.create_engine(f"sqlite:///{db}", connect_args={"timeout": 30})
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text("SELECT plan_id, state FROM outbox"))]
    except sa.exc.OperationalError:
        return []
    finally:
        engine.dispose()


def links_of(db: Path) -> list[tuple[str, str]]:
    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(
                "SELECT left_id, right_id FROM links WHERE mapping = 'contacts' AND state = 'active'"))]
    finally:
        engine.dispose()


def test_migration_killed_mid_read_and_mid_write_copies_every_record_once(emulator, write_config, tmp_path,
                                                                          syncengine_cmd):
    """Four kills, each at an exact request (no timing luck): while the first page of contacts is
    read (nothing written yet); right after the first create is carried out on Alfa CRM and before
    it is answered (a create that happened, unconfirmed); and twice after 20 more creates, mid-batch.
    Then a last run adopts the create the last kill cut off and finishes the copy."""
    vt = emulator("vtiger", records=CONTACTS)
    alfa = emulator("alfacrm", records=EXISTING)
    (tmp_path / "mappings").mkdir()
    shutil.copy(REPO / "mappings" / "contacts.toml", tmp_path / "mappings")
    db = tmp_path / "mirror.db"
    path = write_config(f"sqlite:///{db}", systems={
        "vt": {"kind": "vtiger", "url": vt.url, "username": "admin", "access_key": "emulator",
               "entities": ["Contacts"]},
        "alfa": {"kind": "alfacrm", "url": alfa.url, "email": "admin@example.com", "api_key": "emulator",
                 "branch": 1, "entities": ["customer"]}})
    command = [*syncengine_cmd, "--config", str(path), "migrate", "--from", "vt:Contacts",
               "--to", "alfa:customer", "--report", str(tmp_path / "report"), "--json"]

    created = []
    for server, operation, nth in ((vt, "query", 1), (alfa, "customer/create", 1),
                                   (alfa, "customer/create", 20), (alfa, "customer/create", 20)):
        kill = KillOnRequest(server, operation, nth)
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        kill.started(proc.pid)
        _, err = proc.communicate(timeout=120)
        kill.disarm()
        assert kill.fired and proc.returncode == -9, (operation, nth, proc.returncode, err)
        created.append(len(alfa.app.live_records("customer")) - EXISTING)
    assert created == [0, 1, 21, 41]  # each kill cut its run short where it was meant to
    assert {state for _, state in outbox(db)} >= {"done", "sent"}  # the last create killed is unconfirmed

    final = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    summary = json.loads(final.stdout)
    assert summary["mappings"][0]["in_target"] == CONTACTS
    assert summary["recovered"] == 1  # the create the last kill cut off was adopted (one write in flight on Alfa)

    contacts = vt.app.live_records("Contacts")
    customers = alfa.app.live_records("customer")
    emails = Counter(c["email"][0].lower() for c in customers.values() if c.get("email"))
    for contact in contacts.values():
        if contact["email"]:
            assert emails[contact["email"].lower()] == 1, f"{contact['email']} copied " \
                                                          f"{emails[contact['email'].lower()]} times"
    assert len(customers) == EXISTING + CONTACTS, "duplicates"
    links = dict(links_of(db))  # every contact linked to its own, existing customer
    assert set(links) == set(contacts) and len(set(links.values())) == CONTACTS
    assert set(links.values()) <= set(customers)
    plans_with_writes = {plan for plan, state in outbox(db) if state == "done"}
    assert len(plans_with_writes) >= 3, "the killed runs' confirmed and adopted writes"
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ok"] and report["mappings"][0]["failed"] == 0


ACCOUNTS = '''
left = "old:Accounts"
right = "new:Accounts"
match_on = ["name"]

[fields]
name = { left = "accountname", right = "accountname" }
city = { left = "bill_city", right = "bill_city" }
owner = { right = "assigned_user_id", const = "19x1" }
'''

CONTACTS_WITH_ACCOUNT = '''
left = "old:Contacts"
right = "new:Contacts"
match_on = ["email"]

[fields]
lastname = { left = "lastname", right = "lastname" }
email = { left = "email", right = "email", normalize = "email" }
account = { left = "account_id", right = "account_id", ref = "accounts" }
owner = { right = "assigned_user_id", const = "19x1" }
'''


def test_migration_copies_what_records_refer_to_first(emulator, write_config, tmp_path, syncengine_cmd):
    old = emulator("vtiger", records=30)
    new = emulator("vtiger", records=0, accounts=0)
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings" / "accounts.toml").write_text(ACCOUNTS, encoding="utf-8")
    (tmp_path / "mappings" / "contacts.toml").write_text(CONTACTS_WITH_ACCOUNT, encoding="utf-8")
    db = tmp_path / "mirror.db"
    path = write_config(f"sqlite:///{db}", systems={
        name: {"kind": "vtiger", "url": server.url, "username": "admin", "access_key": "emulator"}
        for name, server in (("old", old), ("new", new))})
    done = subprocess.run([*syncengine_cmd, "--config", str(path), "migrate", "--from", "old:Contacts",
                           "--to", "new:Contacts", "--json", "--report", str(tmp_path / "report")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert [m["mapping"] for m in summary["mappings"]] == ["accounts", "contacts"]
    assert [m["copied"] for m in summary["mappings"]] == [3, 30]

    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        copy_of = dict(conn.execute(sa.text("SELECT left_id, right_id FROM links WHERE mapping = 'contacts'")).all())
    engine.dispose()
    old_contacts, new_contacts = old.app.live_records("Contacts"), new.app.live_records("Contacts")
    old_accounts, new_accounts = old.app.live_records("Accounts"), new.app.live_records("Accounts")
    with_account = 0
    for rid, contact in old_contacts.items():
        copy = new_contacts[copy_of[rid]]
        if contact["account_id"]:
            with_account += 1
            assert new_accounts[copy["account_id"]]["accountname"] == old_accounts[contact["account_id"]]["accountname"]
        else:
            assert not copy["account_id"]
    assert with_account > 10
