"""Fixing what the sync did, in the browser and with the CLI twins: both leave the same audit trail."""
from __future__ import annotations

import urllib.request

import sqlalchemy as sa
from click.testing import CliRunner

from syncengine import jsonutil
from syncengine.audit import ACTION_RUN
from syncengine.cli import main
from syncengine.conflicts import conflicts
from syncengine.mirror import Mirror
from syncengine.mirror.models import RunRow
from syncengine.parked import parked_records
from syncengine.sync import run_sync


def actions(mirror: Mirror) -> list[dict]:
    """The audit trail: who did what, from the run history."""
    with mirror.engine.connect() as conn:
        rows = conn.execute(sa.select(RunRow).where(RunRow.kind == ACTION_RUN).order_by(RunRow.id)).all()
    return [{**jsonutil.loads(r.counts), "target": r.target, "status": r.status, "at": r.finished_at} for r in rows]


def by_email(records: dict, email: str) -> dict:
    return next(r for r in records.values() if email in (r.get("email") if isinstance(r.get("email"), list)
                                                          else [r.get("email")]))


def test_a_conflict_resolved_in_the_browser_is_written_by_the_next_sync(crm_pair, console, page):
    config = crm_pair.config
    assert run_sync(config).ok
    vt_id = next(rid for rid, r in crm_pair.vt.app.live_records("Contacts").items() if r["email"] == "p1@example.com")
    alfa_id = by_email(crm_pair.alfa.app.live_records("customer"), "p1@example.com")["id"]
    crm_pair.vt.app.control_edit(vt_id, {"description": "из vtiger"})
    crm_pair.alfa.app.control_edit("customer", int(alfa_id), {"note": "из Альфы"})
    assert run_sync(config).ok
    [conflict] = conflicts(Mirror(config.mirror_url))

    server = console(config)
    browser = page(server.url)
    browser.login()
    browser.open("/conflicts")
    assert "из vtiger" in browser.text() and "из Альфы" in browser.text()
    browser.shot("conflicts")
    # a forged form (no CSRF token) for the same action is refused and changes nothing
    browser.browser.execute_script(f"""
        const form = document.createElement('form');
        form.method = 'post'; form.action = '/conflicts/{conflict["id"]}/resolve';
        const take = document.createElement('input'); take.name = 'take'; take.value = 'left';
        form.appendChild(take); document.body.appendChild(form); form.submit();""")
    assert "The CSRF token is missing" in browser.text()
    assert conflicts(Mirror(config.mirror_url))[0]["state"] == "open"

    browser.open("/conflicts")
    browser.browser.find_element("css selector", f"#conflict-{conflict['id']} input.typed").send_keys("решено вместе")
    browser.submit(f"#conflict-{conflict['id']} button.take-value")
    assert "the next sync writes it" in browser.text()
    assert run_sync(config).ok
    assert crm_pair.vt.app.live_records("Contacts")[vt_id]["description"] == "решено вместе"
    assert by_email(crm_pair.alfa.app.live_records("customer"), "p1@example.com")["note"] == "решено вместе"
    [action] = actions(Mirror(config.mirror_url))
    assert action["who"].startswith("Анна@ui") and action["action"] == "conflict resolve"
    assert action["value"] == "решено вместе"


def test_a_parked_record_is_retried_in_the_browser_after_its_cause_is_fixed(crm_pair, console, page):
    config = crm_pair.config
    bad = crm_pair.vt.app.control_write("Contacts", {"lastname": "Плохой", "email": "нет-собачки"})
    assert not run_sync(config).ok  # Alfa CRM refuses an e-mail without @: the record is parked
    [parked] = parked_records(Mirror(config.mirror_url))
    assert (parked["side"], parked["remote_id"], parked["kind"]) == ("left", bad, "write")

    server = console(config)
    browser = page(server.url)
    browser.login()
    browser.open("/parked")
    assert "не является правильным email" in browser.text()
    browser.shot("parked")
    browser.submit(f"#parked-{parked['id']} button.retry")  # the cause is still there
    assert f"parked {parked['id']} is still parked" in browser.text()
    crm_pair.vt.app.control_edit(bad, {"email": "fixed@example.com"})  # fixed in the CRM
    [parked] = parked_records(Mirror(config.mirror_url))
    browser.open("/parked")
    browser.submit(f"#parked-{parked['id']} button.retry")
    assert "went through" in browser.text() and "nothing parked" in browser.text()
    assert by_email(crm_pair.alfa.app.live_records("customer"), "fixed@example.com")["name"] == "Плохой"
    trail = actions(Mirror(config.mirror_url))
    assert [(a["action"], a["status"]) for a in trail] == [("parked retry", "failed"), ("parked retry", "ok")]
    assert all(a["who"].startswith("Анна@ui") and a["sync_run"] for a in trail)


def test_parked_cli_lists_ignores_and_retries_with_the_same_audit_trail(crm_pair):
    config = crm_pair.config
    bad = crm_pair.vt.app.control_write("Contacts", {"lastname": "Плохой", "email": "нет-собачки"})
    first = run_sync(config)
    assert len(first.apply.failed) == 1
    cli = CliRunner()
    listed = cli.invoke(main, ["--config", str(crm_pair.path), "parked", "--json"])
    assert listed.exit_code == 0, listed.output
    [row] = jsonutil.loads(listed.output)
    assert (row["remote_id"], row["kind"], row["attempts"]) == (bad, "write", 1)

    ignored = cli.invoke(main, ["--config", str(crm_pair.path), "parked", "ignore", str(row["id"])])
    assert ignored.exit_code == 0 and "ignored" in ignored.output
    writes = crm_pair.alfa.stats_json()["total"]
    again = run_sync(config)
    assert again.ok and again.apply.writes == 0  # nothing is sent for an ignored record
    assert crm_pair.alfa.stats_json()["total"] - writes > 0  # (the pull still reads Alfa)
    [row] = parked_records(Mirror(config.mirror_url))
    assert row["kind"] == "ignored" and row["attempts"] == 1

    refused = cli.invoke(main, ["--config", str(crm_pair.path), "parked", "retry", str(row["id"])])
    assert refused.exit_code == 1 and "still parked" in refused.output
    [row] = parked_records(Mirror(config.mirror_url))
    assert row["kind"] == "write"  # retried: no longer ignored
    missing = cli.invoke(main, ["--config", str(crm_pair.path), "parked", "retry", "999"])
    assert missing.exit_code == 2 and "no parked record 999" in missing.output
    trail = actions(Mirror(config.mirror_url))
    assert [(a["action"], a["status"]) for a in trail] == [("parked ignore", "ok"), ("parked retry", "failed")]
    assert all(a["who"].endswith("@cli") for a in trail)


def test_plan_now_then_apply_exactly_that_plan_and_find_the_record(crm_pair, console, page):
    config = crm_pair.config
    server = console(config)
    browser = page(server.url)
    browser.login()
    browser.open("/mappings")
    assert "vt:Contacts ↔ alfa:customer" in browser.text() and "description" in browser.text()
    browser.shot("mappings")
    browser.submit("#mapping-contacts button.plan-now")
    assert browser.path().startswith("/plans/")
    assert browser.text().count("+ create alfa:customer") == 3
    browser.shot("plan")
    crm_pair.vt.app.control_write("Contacts", {"lastname": "Поздний", "email": "late@example.com"})  # after the plan
    browser.submit("button.apply")
    assert browser.path().startswith("/runs/") and "plan applied by run" in browser.text()
    names = {r["name"] for r in crm_pair.alfa.app.live_records("customer").values()}
    assert names == {"Петров0", "Петров1", "Петров2"}  # exactly the plan shown: not the later contact
    [action] = actions(Mirror(config.mirror_url))
    assert action["action"] == "plan apply" and action["who"].startswith("Анна@ui") and action["writes"] == 3

    browser.open("/record?target=vt:Contacts&q=P1@example.com")
    text = browser.text()
    assert "Петров1" in text and "alfa:customer" in text and "no writes by the sync" in text
    browser.click("section.record a[href*='alfa']")  # the linked record on the other side
    text = browser.text()
    assert "Петров1" in text and "vt:Contacts" in text and "contacts create done" in text
    vt_id = next(rid for rid, r in crm_pair.vt.app.live_records("Contacts").items() if r["email"] == "p1@example.com")
    assert f"vt:Contacts {vt_id} lastname" in text  # the name's provenance: typed into vtiger
    browser.shot("record")


def test_a_held_mass_delete_is_approved_in_the_browser_and_carried_out(crm_pair, console, page):
    config = crm_pair.config
    assert run_sync(config).ok
    assert len(crm_pair.alfa.app.live_records("customer")) == 3
    gone = sorted(crm_pair.vt.app.live_records("Contacts"))[:2]
    for rid in gone:
        crm_pair.vt.app.control_purge(rid)  # gone without a delete feed entry: the sweep finds them
    result = run_sync(config, full=True)
    assert result.pull.entity("vt", "Contacts").status == "refused"  # 2 of 3: the breaker holds them
    assert len(crm_pair.alfa.app.live_records("customer")) == 3

    server = console(config)
    browser = page(server.url)
    browser.login()
    browser.open("/")
    assert "2\nheld deletes" in browser.text()
    with urllib.request.urlopen(f"{server.url}/metrics") as answer:
        assert 'syncengine_held_deletes{entity="Contacts",system="vt"} 2.0' in answer.read().decode()
    browser.open("/deletes")
    rows = browser.browser.find_elements("css selector", "tr[id^=delete-]")
    cells = [[cell.text for cell in row.find_elements("tag name", "td")] for row in rows]
    assert [row[4:6] for row in cells] == [["breaker", "held"]] * 2  # reason, state (after id, record, name)
    browser.shot("deletes")
    browser.click("input.all")
    browser.submit("button.approve")
    assert "2 delete(s) approved" in browser.text() and "no held deletes" in browser.text()
    assert run_sync(config).ok
    [left] = crm_pair.alfa.app.live_records("customer").values()  # the two deletes were carried out
    assert left["email"] == [crm_pair.vt.app.live_records("Contacts").popitem()[1]["email"]]
    [action] = actions(Mirror(config.mirror_url))
    assert action["action"] == "deletes approve" and action["who"].startswith("Анна@ui")
