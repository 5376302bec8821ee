"""``syncengine migrate``: killed at random points and resumed, every record arrives exactly once."""
from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

from syncengine.emulators import Faults

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


def test_migration_killed_at_random_points_copies_every_record_once(emulator, write_config, tmp_path,
                                                                     syncengine_cmd):
    vt = emulator("vtiger", records=CONTACTS)
    alfa = emulator("alfacrm", records=EXISTING, faults=Faults(latency=0.05))  # writes take ~1-2 s
    (tmp_path / "mappings").mkdir()
    shutil.copy(REPO / "mappings" / "contacts.toml", tmp_path / "mappings")
    db = tmp_path / "mirror.db"
    path = write_config(f"sqlite:///{db}", systems={
        "vt": {"kind": "vtiger", "url": vt.url, "username": "admin", "access_key": "emulator",
               "entities": ["Contacts"]},
        "alfa": {"kind": "alfacrm", "url": alfa.url, "email": "admin@example.com", "api_key": "emulator",
                 "branch": 1, "entities": ["customer"]}})
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    command = [*syncengine_cmd, "--config", str(path), "migrate", "--from", "vt:Contacts",
               "--to", "alfa:customer", "--report", str(tmp_path / "report"), "--json"]

    # the first kill lands anywhere (start-up, pull, planning); the others after a random number
    # of confirmed writes, plus a random few milliseconds: in the middle of the writes
    kills = 0
    for attempt in range(4):
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if attempt == 0:
            time.sleep(rng.uniform(0.2, 2.0))
        else:
            threshold = sum(1 for _, state in outbox(db) if state == "done") + rng.randint(1, 15)
            deadline = time.time() + 30
            while proc.poll() is None and time.time() < deadline and \
                    sum(1 for _, state in outbox(db) if state == "done") < threshold:
                time.sleep(0.02)
            time.sleep(rng.uniform(0, 0.1))
        if proc.poll() is None:
            proc.kill()
            kills += 1
        proc.communicate()

    final = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, f"seed {seed}: {final.stderr}"
    summary = json.loads(final.stdout)
    assert summary["mappings"][0]["in_target"] == CONTACTS, f"seed {seed}"

    contacts = vt.app.live_records("Contacts")
    customers = alfa.app.live_records("customer")
    emails = Counter(c["email"][0].lower() for c in customers.values() if c.get("email"))
    for contact in contacts.values():
        if contact["email"]:
            assert emails[contact["email"].lower()] == 1, f"seed {seed}: {contact['email']} copied " \
                                                          f"{emails[contact['email'].lower()]} times"
    assert len(customers) == EXISTING + CONTACTS, f"seed {seed}: duplicates"
    links = dict(links_of(db))  # every contact linked to its own, existing customer
    assert set(links) == set(contacts) and len(set(links.values())) == CONTACTS, f"seed {seed}"
    assert set(links.values()) <= set(customers), f"seed {seed}"
    assert kills >= 3, f"seed {seed}: the migration ended before it could be interrupted"
    plans_with_writes = {plan for plan, state in outbox(db) if state == "done"}
    assert len(plans_with_writes) >= 2, f"seed {seed}: no kill landed between two writes"
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
