"""Provenance per field (issue 13.2): every value a sync writes keeps the system it was typed
into, that edit's time and the run that carried it — across hops — until a person edits it."""
from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from three_systems import ThreeSystems

from syncengine import jsonutil
from syncengine.cli import main
from syncengine.config import load_config
from syncengine.mirror import Mirror
from syncengine.mirror.models import ConflictRow
from syncengine.mirror.provenance import aware, origin_times
from syncengine.sync import run_sync

KEY = "provenance-key"
T0 = (time.time() // 3600 + 2) * 3600 + 10  # later than every cursor; the servers' clocks are frozen around it
T0_ISO = datetime.fromtimestamp(T0, UTC).isoformat()
STAR = """
left = "{left}:Contacts"
right = "alfa:customer"
match_on = ["email"]
conflict = "newest"

[fields]
name  = {{ left = "lastname", right = "name" }}
email = {{ left = "email", right = "email[0]", normalize = "email" }}
title = {{ left = "title", right = "legal_name" }}
"""


class Star(ThreeSystems):
    """vt1 ↔ Alfa CRM ↔ vt2: two mappings sharing Alfa's customers, one job syncing both."""

    def __init__(self, emulator: Any, write_config: Any, mirror_url: str):
        super().__init__(emulator, write_config, mirror_url,
                         {f"{left}_alfa": STAR.format(left=left) for left in ("vt1", "vt2")}, key=KEY,
                         use_log=True, jobs=[{"name": "star", "every": "15m", "mappings": ["vt1_alfa", "vt2_alfa"]}])
        self.mirror = Mirror(mirror_url)

    @property
    def config(self) -> Any:
        return load_config(self.path)

    def sync(self) -> Any:
        result = run_sync(self.config, ["vt1_alfa", "vt2_alfa"], mirror=self.mirror)
        assert result.ok, result
        return result

    def only(self, system: str) -> str:
        (rid,) = self.server(system).app.live_records("customer" if system == "alfa" else "Contacts")
        return str(rid)


@pytest.fixture
def star(emulator: Any, write_config: Any, mirror_url: str) -> Star:
    return Star(emulator, write_config, mirror_url)


def vt_time(server: Any, rid: str) -> datetime:
    """The record's modifiedtime, as the vtiger emulator (UTC server) shows it."""
    text = server.app.live_records("Contacts")[rid]["modifiedtime"]
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def test_a_value_keeps_its_origin_across_hops(star):
    """Typed into vt1, carried to Alfa by one sync and on to vt2 by the next: vt2's value still
    names vt1's record and vt1's edit time, and each hop names the run that wrote it."""
    star.vt1.app.control_clock(T0)
    v1 = star.vt1.app.control_write("Contacts", {"lastname": "Noor", "email": "noor@example.com", "title": "CTO"})
    edited = vt_time(star.vt1, v1)
    first = star.sync()
    a = star.only("alfa")
    on_alfa = origin_times(star.mirror, "alfa", "customer", [a])
    assert {path for _, path in on_alfa} == {"name", "email[0]", "legal_name"}
    origin = on_alfa[(a, "name")]
    assert (origin.system, origin.entity, origin.remote_id, origin.path) == ("vt1", "Contacts", v1, "lastname")
    assert origin.edited_at == edited and origin.run_id == first.apply.run_id and origin.value == "Noor"
    if not star.vt2.app.live_records("Contacts"):
        star.sync()  # vt2 is planned from the mirror before Alfa's new record was pulled: one more hop
    v2 = star.only("vt2")
    on_vt2 = origin_times(star.mirror, "vt2", "Contacts", [v2])
    hop = on_vt2[(v2, "lastname")]
    assert (hop.system, hop.entity, hop.remote_id, hop.path, hop.edited_at) == ("vt1", "Contacts", v1, "lastname",
                                                                                 edited)
    assert hop.mapping == "vt2_alfa" and hop.run_id is not None and hop.run_id >= first.apply.run_id


def test_an_edit_ends_the_provenance_of_that_field_only_and_for_good(star):
    """Alfa's user changes a title vt1 gave it, then types vt1's value again: from then on it is
    Alfa's own edit (X → Y → X is a new X), not vt1's old one coming back."""
    star.vt1.app.control_write("Contacts", {"lastname": "Noor", "email": "noor@example.com", "title": "CTO"})
    star.sync()
    a = star.only("alfa")
    for title in ("CEO", "CTO"):
        with star.alfa.app.lock:
            star.alfa.app.change("customer", int(a), {"legal_name": title})
        star.sync()
        held = origin_times(star.mirror, "alfa", "customer", [a])
        assert (a, "legal_name") not in held and held[(a, "name")].system == "vt1"


def explain(star: Star, *args: str) -> Any:
    result = CliRunner().invoke(main, ["--config", str(star.path), "explain", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_explain_shows_every_linked_system_and_where_each_value_came_from(star):
    """From vt2's record: its link to Alfa and Alfa's on to vt1, each field's value on every side,
    the origin (vt1's record), when it was edited there and the run that wrote it."""
    star.vt1.app.control_clock(T0)
    v1 = star.vt1.app.control_write("Contacts", {"lastname": "Noor", "email": "noor@example.com", "title": "CTO"})
    star.sync()
    star.sync()
    v2, a = star.only("vt2"), star.only("alfa")
    with star.alfa.app.lock:
        star.alfa.app.change("customer", int(a), {"legal_name": "CEO"})
    star.sync()
    found = jsonutil.loads(explain(star, "vt2:Contacts", v2, "--json"))
    assert [(link["mapping"], link["state"]) for link in found["links"]] == [("vt2_alfa", "active"),
                                                                               ("vt1_alfa", "active")]
    fields = {(link["mapping"], f["field"]): f for link in found["links"] for f in link["fields"]}
    name = fields[("vt2_alfa", "name")]
    assert name["left"]["value"] == name["right"]["value"] == "Noor"
    assert name["left"]["status"] == name["right"]["status"] == "synced"
    assert (name["left"]["origin"]["system"], name["left"]["origin"]["id"]) == ("vt1", v1)
    assert name["left"]["edited_at"] == vt_time(star.vt1, v1).isoformat()
    origin_run = name["left"]["origin"]["run"]
    assert isinstance(origin_run, int)
    vt1_name = fields[("vt1_alfa", "name")]["left"]
    assert (vt1_name["status"], vt1_name["origin"], vt1_name["value"]) == ("edited here", None, "Noor")
    title = fields[("vt1_alfa", "title")]  # edited on Alfa since: Alfa's own, carried to vt1 from there
    assert title["right"]["status"] == "edited here" and title["right"]["value"] == "CEO"
    assert title["left"]["origin"]["system"] == "alfa" and title["left"]["value"] == "CEO"

    text = explain(star, "vt2:Contacts", v2)
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert f"vt1:Contacts {v1} lastname" in text and f"run {origin_run}" in text and "edited here" in text


def test_explain_of_a_record_never_synced_and_of_one_not_in_the_mirror(star):
    """Two vt1 records share an e-mail and match nothing: parked as ambiguous, never linked."""
    v1 = star.vt1.app.control_write("Contacts", {"lastname": "Twin", "email": "twin@example.com"})
    star.vt1.app.control_write("Contacts", {"lastname": "Twin", "email": "twin@example.com"})
    assert run_sync(star.config, ["vt1_alfa"], mirror=star.mirror).plan.issues
    found = jsonutil.loads(explain(star, "vt1:Contacts", v1, "--json"))
    (link,) = found["links"]
    assert link["state"] == "not linked" and link["right"]["id"] is None
    assert {f["left"]["status"] for f in link["fields"]} == {"never synced"}
    assert "never synced" in explain(star, "vt1:Contacts", v1)
    missing = CliRunner().invoke(main, ["--config", str(star.path), "explain", "vt1:Contacts", "99x99"])
    assert missing.exit_code == 2 and "not in the mirror" in missing.output
    assert "Example" in CliRunner().invoke(main, ["explain", "--help"]).output


def test_the_console_record_page_shows_the_same_provenance(star):
    from syncengine.console import create_app

    v1 = star.vt1.app.control_write("Contacts", {"lastname": "Noor", "email": "noor@example.com", "title": "CTO"})
    first = star.sync()
    a = star.only("alfa")
    page = create_app(star.config).test_client().get(f"/record?target=alfa:customer&q={a}")  # no password: loopback
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f"vt1:Contacts {v1}</a> lastname" in html and f">{first.apply.run_id}</a>" in html
    assert "edited here" in html  # vt1's own values, on the vt1_alfa link


def alfa_clock(star: Star, epoch: float) -> None:
    star.alfa.app.control_clock(datetime.fromtimestamp(epoch, ZoneInfo("Europe/Moscow")).strftime("%Y-%m-%d %H:%M:%S"))


def test_newest_counts_a_carried_value_as_edited_when_its_origin_was(star):
    """vt1 edits at T1, vt2 at T2 > T1; a sync of vt1 ↔ Alfa alone then writes vt1's value to Alfa
    at Ts > T2. Alfa's record now looks newest, but its value is vt1's, edited at T1: vt2's later
    edit must win on all three, not be overwritten by the older one."""
    v1 = star.vt1.app.control_write("Contacts", {"lastname": "Noor", "email": "noor@example.com", "title": "Start"})
    star.sync()
    star.sync()  # every side holds every record and the links are settled
    v2, a = star.only("vt2"), star.only("alfa")
    star.vt1.app.control_clock(T0)
    star.vt1.app.control_edit(v1, {"title": "vt1 edit"})
    star.vt2.app.control_clock(T0 + 3)
    star.vt2.app.control_edit(v2, {"title": "vt2 edit"})
    alfa_clock(star, T0 + 10)  # the sync's write to Alfa is logged after both edits
    assert run_sync(star.config, ["vt1_alfa"], mirror=star.mirror).ok
    assert star.alfa.app.live_records("customer")[a]["legal_name"] == "vt1 edit"
    star.sync()
    star.sync()
    titles = (star.vt1.app.live_records("Contacts")[v1]["title"], star.vt2.app.live_records("Contacts")[v2]["title"],
              star.alfa.app.live_records("customer")[a]["legal_name"])
    assert titles == ("vt2 edit",) * 3


def test_a_value_typed_to_settle_a_conflict_has_no_origin_system(make_pair):
    from syncengine.conflicts import conflicts, resolve_conflict

    pair = make_pair(STAR.format(left="vt").replace('conflict = "newest"', 'conflict = "manual"'))
    v = pair.vt_add(lastname="Noor", email="noor@example.com", title="Start")
    assert run_sync(pair.config).ok
    a = next(iter(pair.alfa_customers()))
    pair.vt_edit(v, title="vtiger edit")
    pair.alfa_edit(a, legal_name="Alfa edit")
    run_sync(pair.config)
    mirror = Mirror(pair.config.mirror_url)
    (conflict,) = conflicts(mirror)
    resolve_conflict(mirror, conflict["id"], value="Agreed")
    with mirror.engine.connect() as conn:  # typed when the person settled it, not when a later sync wrote it
        settled = conn.execute(sa.select(ConflictRow.resolved_at).where(ConflictRow.id == conflict["id"])).scalar_one()
    assert run_sync(pair.config).ok
    for system, entity, rid, path in (("vt", "Contacts", v, "title"), ("alfa", "customer", a, "legal_name")):
        origin = origin_times(mirror, system, entity, [rid])[(rid, path)]
        assert (origin.system, origin.value, origin.edited_at) == (None, "Agreed", aware(settled))
    assert "typed to settle a conflict" in CliRunner().invoke(
        main, ["--config", str(pair.config_path), "explain", "vt:Contacts", v]).output


def test_a_value_undo_puts_back_does_not_claim_the_undone_writes_origin(make_pair):
    """Undo restores the title Alfa held before: it is not the value vtiger's edit carried there, so
    it keeps no origin of that write (it counts from its own record's edit time)."""
    from syncengine.undo import undo

    pair = make_pair(STAR.format(left="vt"))
    v = pair.vt_add(lastname="Noor", email="noor@example.com", title="Start")
    assert run_sync(pair.config).ok
    a = next(iter(pair.alfa_customers()))
    pair.vt_edit(v, title="vtiger edit")
    carried = run_sync(pair.config)
    mirror = Mirror(pair.config.mirror_url)
    assert origin_times(mirror, "alfa", "customer", [a])[(a, "legal_name")].value == "vtiger edit"
    assert not undo(pair.config, carried.apply.run_id, mirror=mirror).not_restored
    assert pair.alfa_customers()[a]["legal_name"] == "Start"
    assert (a, "legal_name") not in origin_times(mirror, "alfa", "customer", [a])


def test_a_read_that_began_before_a_write_does_not_end_that_writes_provenance(mirror_url):
    """Another job's pull read the record, then this job's push wrote it and kept the value's origin,
    then the pull stored what it had read: that older copy says nothing about the value written since."""
    from syncengine.mirror.models import utcnow
    from syncengine.mirror.provenance import record_written
    from syncengine.types import EntitySchema, Field

    schema = EntitySchema("customer", [Field("id", "integer"), Field("name", "string")])
    mirror = Mirror(mirror_url)
    mirror.writer("alfa", schema).apply([{"id": 1, "name": "Old"}])
    pull_began = utcnow()
    stale_pull = mirror.writer("alfa", schema, seen_at=pull_began)
    origin = {"system": "vt1", "entity": "Contacts", "id": "7", "path": "lastname", "edited_at": T0_ISO}
    mirror.writer("alfa", schema).apply([{"id": 1, "name": "Carried"}])  # the push's write, mirrored
    with mirror.engine.begin() as conn:
        record_written(conn, "alfa", "customer", "1", {"name": ("Carried", origin)}, mapping="vt1_alfa",
                       run_id=None, now=utcnow())
    stale_pull.apply([{"id": 1, "name": "Old"}])  # read before the write
    mirror.writer("alfa", schema).apply([{"id": 1, "name": "Carried"}])  # the next pull
    assert origin_times(mirror, "alfa", "customer", ["1"])[("1", "name")].system == "vt1"
