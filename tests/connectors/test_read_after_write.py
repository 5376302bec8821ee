"""Issue 14.3: a written record is read back by its id, never through a listing that must hold
still — our own writer threads grow the listing meanwhile, and a listing may skip rows."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from syncengine.connectors import connect

API_KEY = "emulator-key"


def salesman(server):
    return connect("sm", {"kind": "salesman", "url": server.url, "login": "admin", "api_key": API_KEY,
                          "retries": 0, "timeout": 10, "overlap": 2})


def test_salesman_reads_back_creates_and_updates_by_id_while_listings_skip_rows(emulator):
    server = emulator("salesman", records=40, api_key=API_KEY)
    conn = salesman(server)
    conn.create("person", {"person": "Разогрев"})  # the user list is looked up once
    server.app.control_hide_rows(share=1.0, listings=None, entity=["person", "deal"])
    server.reset_stats()

    def create(n):
        return conn.create("person", {"person": f"Контакт {n}", "tel": f"+7 900 000-00-{n:02d}"})

    with ThreadPoolExecutor(4) as pool:
        created = list(pool.map(create, range(12)))
    assert sorted(r["person"] for r in created) == sorted(f"Контакт {n}" for n in range(12))
    assert server.stats_json()["total"] <= 3 * len(created)  # add, info, one filtered list each

    updated = conn.update("person", created[0]["id"], {"ptitle": "Директор"})
    assert updated["ptitle"] == "Директор" and updated["person"] == "Контакт 0"
    did = str(next(iter(server.app.deals)))
    assert conn.fetch("deal", [did])[0]["id"] == did
