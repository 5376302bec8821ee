"""Issue 16.5: every query of docs/reporting.md runs on SQLite and PostgreSQL against pulled CRMs."""
from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa

from syncengine.config import load_config
from syncengine.mirror import Mirror
from syncengine.pull import pull

from .helpers import ALFA_KEY, alfa_system, vtiger_system

DOC = Path(__file__).resolve().parents[2] / "docs" / "reporting.md"
BLOCK = re.compile(r"^### (?P<title>.+?)$|^```sql(?: (?P<dialect>\w+))?\n(?P<sql>.*?)^```", re.M | re.S)


def doc_queries(dialect: str) -> list[tuple[str, str]]:
    """(section title, SQL) of every query block for DIALECT (untagged blocks are for both)."""
    found, title = [], ""
    for match in BLOCK.finditer(DOC.read_text(encoding="utf-8")):
        if match["title"]:
            title = match["title"]
        elif match["dialect"] in (None, dialect):
            found.append((title, match["sql"]))
    return found


def test_the_documented_queries_answer(emulator, write_config, mirror_url):
    vt = emulator("salesplatform", records=20)
    alfa = emulator("alfacrm", records=15, api_key=ALFA_KEY)
    sm = emulator("salesman", records=10, api_key="k", login="admin@example.com")
    config = load_config(write_config(mirror_url, {
        "vt": vtiger_system(vt, entities=["Accounts", "Contacts"], history=["Contacts"]),
        "alfa": alfa_system(alfa, entities=["customer", "pay"]),
        "sm": {"kind": "salesman", "url": sm.url, "login": "admin@example.com", "api_key": "k",
               "entities": ["deal"]}}))
    assert pull(config).ok
    some = sorted(vt.app.live_records("Contacts"))[0]
    vt.app.control_clock(advance=120)
    vt.app.control_edit(some, {"lastname": "Новикова"})
    assert pull(config).ok

    engine = Mirror(config.mirror_url).engine
    queries = doc_queries(engine.dialect.name)
    assert len({title for title, _ in queries}) >= 6
    answers: dict[str, list] = {}
    with engine.connect() as conn:
        for title, sql in queries:
            answers.setdefault(title, []).extend(conn.execute(sa.text(sql)).all())
    for title in ("Contacts per city", "Deals by stage and month", "Payments per customer and month (Alfa CRM)",
                  "A contact's history", "Sync health"):
        assert answers[title], f"{title}: no rows"
    assert any(row.accountname for row in answers["A contact's account name"])
    history = [row for row in answers["A contact's history"] if row.id == some and row.valid_to is not None]
    assert history  # the edited contact's earlier version, closed
