"""Three systems in step under random edits: a star vtiger#1 ↔ Alfa CRM ↔ vtiger#2 (issue 13.4),
or with ``--ring`` the star closed by vtiger#1 ↔ vtiger#2.

Seeds N people in Alfa CRM, lets the first sync copy them to both vtigers, then plays ROUNDS rounds
of random edits of random fields on all three systems — a share of them clashing: the same field
of the same person edited again a second later on another system, so the later edit must win —
with one sync of both mappings after each round. In the end it checks that all three agree, that
every field holds its newest edit, and how many more syncs it takes until a sync writes nothing.

    python bench/converge.py                      # 1,000 people, 10 rounds
    python bench/converge.py --records 200 --rounds 5 --seed 3
    python bench/converge.py --ring               # three mappings: every system linked to both others
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from syncengine import emulators  # noqa: E402
from syncengine.config import load_config  # noqa: E402
from syncengine.mapping import normalize  # noqa: E402
from syncengine.mirror import Mirror  # noqa: E402
from syncengine.sync import run_sync  # noqa: E402

MAPPING = """
left = "LEFT:Contacts"
right = "alfa:customer"
direction = "both"
match_on = ["email"]
conflict = "newest"
[fields]
name  = { left = "lastname", right = "name" }
email = { left = "email", right = "email[0]", normalize = "email" }
phone = { left = "phone", right = "phone[0]", normalize = "phone" }
"""
RING = """
left = "vt1:Contacts"
right = "vt2:Contacts"
direction = "both"
match_on = ["email"]
conflict = "newest"
[fields]
name  = { left = "lastname", right = "lastname" }
email = { left = "email", right = "email", normalize = "email" }
phone = { left = "phone", right = "phone", normalize = "phone" }
"""
MAPPINGS = ["vt1_alfa", "vt2_alfa"]
FIELDS = {"name": {"vt": "lastname", "alfa": "name"}, "phone": {"vt": "phone", "alfa": "phone"}}


class Star:
    """The three emulators, a config naming them, and edits made the way a CRM user makes them."""

    def __init__(self, records: int, ring: bool = False):
        os.environ["VT_KEY"] = os.environ["ALFA_KEY"] = "bench"
        self.vt1 = emulators.start("vtiger", 0, access_key="bench")
        self.vt2 = emulators.start("vtiger", 0, access_key="bench")
        self.alfa = emulators.start("alfacrm", 0, api_key="bench")
        folder = Path(tempfile.mkdtemp(prefix="converge-bench-"))
        (folder / "mappings").mkdir()
        self.mappings = MAPPINGS + (["vt1_vt2"] if ring else [])
        for name in MAPPINGS:
            (folder / "mappings" / f"{name}.toml").write_text(MAPPING.replace("LEFT", name.split("_")[0]),
                                                              encoding="utf-8")
        if ring:
            (folder / "mappings" / "vt1_vt2.toml").write_text(RING, encoding="utf-8")
        systems = "".join(f"""
[systems.{name}]
kind = "vtiger"
url = "{server.url}"
username = "admin"
access_key = "${{VT_KEY}}"
entities = ["Contacts"]
""" for name, server in (("vt1", self.vt1), ("vt2", self.vt2)))
        (folder / "sync.toml").write_text(f"""
[mirror]
url = "sqlite:///{folder / 'mirror.db'}"
{systems}
[systems.alfa]
kind = "alfacrm"
url = "{self.alfa.url}"
email = "admin@example.com"
api_key = "${{ALFA_KEY}}"
entities = ["customer"]
""", encoding="utf-8")
        self.config = load_config(folder / "sync.toml")
        self.mirror = Mirror(self.config.mirror_url)
        self.emails = [f"star{i}@example.com" for i in range(records)]
        with self.alfa.app.lock:
            for i, email in enumerate(self.emails):
                self.alfa.app.insert("customer", {"branch_ids": [1], "is_study": 1, "legal_type": 1,
                                                  "name": f"Person{i}", "email": [email],
                                                  "phone": [f"+7916{i:07d}"]})
        self.ids: dict[str, dict[str, str]] = {}

    def systems(self) -> dict[str, Any]:
        return {"vt1": self.vt1, "vt2": self.vt2, "alfa": self.alfa}

    def read(self, system: str) -> dict[str, dict[str, Any]]:
        """{e-mail: {field: value}} as the system holds it now (only the bench's people)."""
        server = self.systems()[system]
        out: dict[str, dict[str, Any]] = {}
        if system == "alfa":
            for rid, r in server.app.live_records("customer").items():
                email = normalize("email", r["email"][0] if r.get("email") else "")
                phone = normalize("phone", (r.get("phone") or [""])[0])
                out[email] = {"id": str(rid), "name": r["name"], "phone": phone}
        else:
            for rid, r in server.app.live_records("Contacts").items():
                email = normalize("email", r.get("email") or "")
                out[email] = {"id": str(rid), "name": r["lastname"], "phone": normalize("phone", r.get("phone") or "")}
        return {e: v for e, v in out.items() if e in set(self.emails)}

    def remember_ids(self) -> None:
        self.ids = {system: {e: v["id"] for e, v in self.read(system).items()} for system in self.systems()}

    def edit(self, system: str, email: str, fieldname: str, value: str) -> None:
        rid = self.ids[system][email]
        if system == "alfa":
            key = FIELDS[fieldname]["alfa"]
            with self.alfa.app.lock:
                self.alfa.app.change("customer", int(rid), {key: [value] if key == "phone" else value})
        else:
            self.systems()[system].app.control_edit(rid, {FIELDS[fieldname]["vt"]: value})

    def stop(self) -> None:
        for server in self.systems().values():
            server.stop()


def writes(result: Any) -> int:
    return sum(n for ops in result.written.values() for n in ops.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--edits", type=float, default=0.05, help="share of people edited per round")
    parser.add_argument("--clashes", type=float, default=0.3, help="share of those edited again elsewhere")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ring", action="store_true", help="add vt1 ↔ vt2: a ring of three mappings")
    args = parser.parse_args()
    rnd = random.Random(args.seed)
    star = Star(args.records, ring=args.ring)
    try:
        started = time.perf_counter()
        first = run_sync(star.config, star.mappings, mirror=star.mirror)
        print(f"first sync: {writes(first)} writes in {time.perf_counter() - started:.1f} s (ok={first.ok})")
        star.remember_ids()
        expected = {e: {"name": v["name"], "phone": v["phone"]} for e, v in star.read("alfa").items()}
        systems = list(star.systems())
        total_conflicts = 0
        for round_no in range(1, args.rounds + 1):
            edited = rnd.sample(star.emails, max(1, int(len(star.emails) * args.edits)))
            later: list[tuple[str, str, str]] = []
            for n, email in enumerate(edited):
                fieldname, system = rnd.choice(list(FIELDS)), rnd.choice(systems)
                value = f"R{round_no}-{system}-{n}" if fieldname == "name" else f"+7925{rnd.randrange(10**7):07d}"
                star.edit(system, email, fieldname, value)
                expected[email][fieldname] = value
                if rnd.random() < args.clashes:
                    later.append((email, fieldname, rnd.choice([s for s in systems if s != system])))
            if later:
                time.sleep(1.1)  # the clashing edits are a second newer: they must win everywhere
                for n, (email, fieldname, system) in enumerate(later):
                    value = (f"R{round_no}-{system}-late{n}" if fieldname == "name"
                             else f"+7926{rnd.randrange(10**7):07d}")
                    star.edit(system, email, fieldname, value)
                    expected[email][fieldname] = value
            result = run_sync(star.config, star.mappings, mirror=star.mirror)
            conflicts = sum(1 for a in result.plan.actions if a.op == "conflict")
            total_conflicts += conflicts
            print(f"round {round_no:2}: {len(edited)} edits, {len(later)} clashing; sync wrote {writes(result)}, "
                  f"conflicts {conflicts}, ok={result.ok}")
        extra = 1
        while writes(run_sync(star.config, star.mappings, mirror=star.mirror)) and extra < 6:
            extra += 1
        held = {system: star.read(system) for system in systems}
        disagree = sum(1 for e in star.emails if len({(held[s][e]["name"], held[s][e]["phone"]) for s in systems}) > 1)
        stale = sum(1 for e in star.emails for s in systems for f in FIELDS if held[s][e][f] != expected[e][f])
        print(f"after {args.rounds} rounds: {total_conflicts} conflicts; {extra} more sync(s) until one wrote nothing; "
              f"{disagree} of {len(star.emails)} people differ between the systems; "
              f"{stale} field values are not the newest edit")
    finally:
        star.stop()


if __name__ == "__main__":
    main()
