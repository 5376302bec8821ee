"""Three systems in step (issue 13.1): mappings that share an entity make one decision per field.

vtiger#1 and vtiger#2 around an Alfa CRM hub (a star), the star closed by vt1 ↔ vt2 (a ring), and a
chain vt1 → Alfa → vt2; each over real HTTP against the emulators. The vtiger clocks are frozen so
which edit is newer is known to the second."""
from __future__ import annotations

import time
from typing import Any

import pytest
import sqlalchemy as sa
from three_systems import ThreeSystems

from syncengine.config import load_config
from syncengine.mirror import Mirror
from syncengine.mirror.models import ConflictRow
from syncengine.sync import run_sync

KEY = "topology-key"
T0 = (time.time() // 3600 + 2) * 3600 + 10  # later than every cursor; the vtiger clocks are frozen around it
VT_ALFA = """
left = "{vt}:Contacts"
right = "alfa:customer"
direction = "{direction}"
match_on = ["email"]
conflict = "newest"
[fields]
name  = {{ left = "lastname", right = "name" }}
email = {{ left = "email", right = "email[0]", normalize = "email" }}
"""
VT_VT = """
left = "vt1:Contacts"
right = "vt2:Contacts"
match_on = ["email"]
conflict = "newest"
[fields]
name  = { left = "lastname", right = "lastname" }
email = { left = "email", right = "email", normalize = "email" }
"""


class Trio(ThreeSystems):
    """Two vtigers and an Alfa CRM, each holding the same people, and mappings between them."""

    def __init__(self, emulator: Any, write_config: Any, mirror_url: str, mappings: dict[str, str], people: int = 3):
        super().__init__(emulator, write_config, mirror_url, mappings, key=KEY)
        self.ids: dict[str, list[str]] = {"vt1": [], "vt2": [], "alfa": []}
        for i in range(people):
            email = f"p{i}@example.com"
            for system in ("vt1", "vt2"):
                self.ids[system].append(self.server(system).app.control_write(
                    "Contacts", {"lastname": f"Person{i}", "email": email}))
            with self.alfa.app.lock:
                self.ids["alfa"].append(str(self.alfa.app.insert("customer", {
                    "branch_ids": [1], "is_study": 1, "legal_type": 1, "name": f"Person{i}",
                    "email": [email]})["id"]))

    def sync(self) -> int:
        """One sync of every mapping; the writes it made."""
        result = run_sync(load_config(self.path), self.names)
        assert result.ok, result.as_dict()
        return result.apply.writes if result.apply else 0

    def edit(self, system: str, person: int, name: str, at: float) -> None:
        rid = self.ids[system][person]
        if system == "alfa":
            with self.alfa.app.lock:
                self.alfa.app.change("customer", int(rid), {"name": name})
        else:
            app = self.server(system).app
            app.control_clock(at)
            app.control_edit(rid, {"lastname": name})

    def names_of(self, person: int) -> dict[str, str]:
        out = {}
        for system in ("vt1", "vt2"):
            out[system] = self.server(system).app.live_records("Contacts")[self.ids[system][person]]["lastname"]
        out["alfa"] = self.alfa.app.live_records("customer")[self.ids["alfa"][person]]["name"]
        return out


def star(direction: str = "both") -> dict[str, str]:
    return {"vt1_alfa": VT_ALFA.format(vt="vt1", direction=direction),
            "vt2_alfa": VT_ALFA.format(vt="vt2", direction=direction)}


@pytest.fixture
def trio(emulator: Any, write_config: Any, sqlite_url: str) -> Any:
    def make(mappings: dict[str, str]) -> Trio:
        made = Trio(emulator, write_config, sqlite_url, mappings)
        assert made.sync() == 0  # the same people everywhere: matched and linked, nothing written
        return made
    return make


@pytest.mark.parametrize("last", ["vt1", "vt2"])
def test_star_the_last_edit_wins_on_all_three_after_one_sync(trio, last):
    """Each mapping alone saw its own spoke changed and the hub not: both wrote the hub, and in one
    edit order the older name ended up on all three."""
    t = trio(star())
    first = "vt2" if last == "vt1" else "vt1"
    t.edit(first, 0, "Older", at=T0)
    t.edit(last, 0, "Newer", at=T0 + 3)
    t.sync()
    assert t.names_of(0) == {"vt1": "Newer", "vt2": "Newer", "alfa": "Newer"}
    assert t.sync() == 0
    assert t.names_of(1) == {"vt1": "Person1", "vt2": "Person1", "alfa": "Person1"}


def test_ring_converges_in_two_syncs_then_writes_nothing(trio):
    """Closed by vt1 ↔ vt2, the two names went round for ever: two writes on every sync."""
    t = trio({**star(), "vt1_vt2": VT_VT})
    t.edit("vt1", 0, "Older", at=T0)
    t.edit("vt2", 0, "Newer", at=T0 + 3)
    t.sync()
    t.sync()
    assert t.names_of(0) == {"vt1": "Newer", "vt2": "Newer", "alfa": "Newer"}
    assert t.sync() == 0
    assert t.names_of(0) == {"vt1": "Newer", "vt2": "Newer", "alfa": "Newer"}


@pytest.mark.parametrize("direction", ["left-to-right", "both"])
def test_chain_one_sync_carries_a_change_from_the_first_system_to_the_last(trio, direction):
    """vt1 → Alfa → vt2: it used to take one sync per hop."""
    chain = {"vt1_alfa": VT_ALFA.format(vt="vt1", direction=direction),
             "alfa_vt2": VT_ALFA.format(vt="vt2", direction="both" if direction == "both" else "right-to-left")}
    t = trio(chain)
    t.edit("vt1", 1, "Moved", at=T0)
    dry = run_sync(load_config(t.path), t.names, dry_run=True).plan  # a plan shows the first hop
    assert [(a.system, a.op) for a in dry.writes()] == [("alfa", "update")]
    assert any("go on to further systems" in note for note in dry.notes), dry.notes
    assert t.sync() == 2
    assert t.names_of(1) == {"vt1": "Moved", "vt2": "Moved", "alfa": "Moved"}
    assert t.sync() == 0


def test_chain_one_sync_carries_a_new_person_from_the_first_system_to_the_last(trio):
    """The hub's new record was only planned for the next mapping by the next sync."""
    t = trio({"vt1_alfa": VT_ALFA.format(vt="vt1", direction="left-to-right"),
              "alfa_vt2": VT_ALFA.format(vt="vt2", direction="right-to-left")})
    t.vt1.app.control_write("Contacts", {"lastname": "Newcomer", "email": "new@example.com"})
    assert t.sync() == 2
    assert [c["lastname"] for c in t.vt2.app.live_records("Contacts").values()].count("Newcomer") == 1
    assert t.sync() == 0


def test_star_a_tie_between_the_spokes_is_for_a_person(trio):
    """Edited in the same second on both spokes: neither is newer and no one link joins them, so
    nothing is written and each link whose sides differ shows a conflict (the default tie_break)."""
    t = trio(star())
    t.edit("vt1", 0, "One", at=T0)
    t.edit("vt2", 0, "Two", at=T0)
    assert t.sync() == 0
    assert t.names_of(0) == {"vt1": "One", "vt2": "Two", "alfa": "Person0"}
    with Mirror(load_config(t.path).mirror_url).engine.connect() as conn:
        opened = conn.execute(sa.select(ConflictRow.mapping, ConflictRow.field, ConflictRow.state)).all()
    assert sorted(map(tuple, opened)) == [("vt1_alfa", "name", "open"), ("vt2_alfa", "name", "open")]
