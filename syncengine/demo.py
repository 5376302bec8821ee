"""``syncengine demo``: a new user's first five minutes, with nothing configured.

Starts the bundled vtiger and Alfa CRM emulators (Russian sample data) in background threads,
writes a config for them into a fresh folder, pulls both into a SQLite mirror, syncs vtiger
Contacts with Alfa customers, and says what happened, where the mirror is and what to ask it.
"""
from __future__ import annotations

import shutil
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import emulators
from .config import Config, load_config
from .errors import UsageError
from .pull import PullResult, pull
from .resources import shared_path
from .sync import SyncResult, run_sync

MAPPING = shared_path("mappings") / "contacts.toml"
SHARED = 3  # contacts present in both CRMs already: the sync links them instead of copying

#: (what it shows, SQL) — run against the demo's mirror; they only use the reporting tables.
QUERIES: list[tuple[str, str]] = [
    ("vtiger contacts per city",
     "SELECT mailingcity AS city, count(*) AS contacts FROM vt_contacts "
     "WHERE NOT _deleted AND mailingcity <> '' GROUP BY mailingcity ORDER BY contacts DESC LIMIT 5;"),
    ("Alfa CRM customers with the largest balance",
     "SELECT name, balance, paid_count FROM alfa_customer WHERE NOT _deleted "
     "ORDER BY balance DESC LIMIT 5;"),
    ("each vtiger contact beside the Alfa customer it is synced with",
     "SELECT v.lastname, v.firstname, v.email, a.id AS alfa_id, a.phone FROM links l "
     "JOIN vt_contacts v ON v.id = l.left_id JOIN alfa_customer a ON a.id = l.right_id "
     "WHERE l.mapping = 'contacts' AND l.state = 'active' LIMIT 5;"),
]


@dataclass
class DemoResult:
    folder: Path
    config: Config
    mirror_path: Path
    urls: dict[str, str]
    pulled: PullResult
    synced: SyncResult | None = None
    shared: list[str] = field(default_factory=list)  # e-mails present in both CRMs at the start
    servers: list[Any] = field(default_factory=list)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        self.servers.clear()


def write_config(folder: Path, vt_url: str, alfa_url: str) -> Path:
    path = folder / "sync.toml"
    path.write_text(f'''\
# Written by `syncengine demo`. The systems are the bundled emulators, so their keys are written
# here; with real CRMs write access_key = "${{VT_ACCESS_KEY}}" and export the variable instead.
[mirror]
url = "sqlite:///mirror.db"

[systems.vt]
kind = "vtiger"
url = "{vt_url}"
username = "admin"
access_key = "emulator"
entities = ["Contacts", "Accounts"]

[systems.alfa]
kind = "alfacrm"
url = "{alfa_url}"
email = "admin@example.com"
api_key = "emulator"
branch = 1
entities = ["customer", "group", "lesson", "pay"]

[[jobs]]
name = "every-15-minutes"
every = "15m"
mappings = ["contacts"]
''', encoding="utf-8")
    (folder / "mappings").mkdir(exist_ok=True)
    if not MAPPING.is_file():
        raise UsageError(f"the sample mapping {MAPPING} is missing; run the demo from a clone "
                         "installed with `pip install -e .`")
    shutil.copy(MAPPING, folder / "mappings" / "contacts.toml")
    return path


def share_contacts(vt_app: Any, alfa_app: Any, count: int) -> list[str]:
    """Put COUNT vtiger contacts into Alfa CRM too (same e-mail), as a business that used both would."""
    shared = []
    contacts = [c for _, c in sorted(vt_app.live_records("Contacts").items()) if c.get("email")]
    for contact in contacts[:count]:
        with alfa_app.lock:
            alfa_app.control_create("customer", {
                "name": f"{contact['lastname']} {contact.get('firstname', '')}".strip(),
                "email": [contact["email"]], "phone": [contact["phone"]] if contact.get("phone") else [],
                "is_study": 1, "legal_type": 1, "branch_ids": [1]})
        shared.append(contact["email"])
    return shared


def run_demo(folder: Path | None = None, records: int = 40) -> DemoResult:
    """Everything the demo does; the caller prints it and calls ``stop()``."""
    folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="syncengine-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "mirror.db").exists():
        raise UsageError(f"{folder / 'mirror.db'} exists already; give the demo an empty --dir")
    vt = emulators.start("vtiger", records)
    alfa = emulators.start("alfacrm", records)
    result = None
    try:
        shared = share_contacts(vt.app, alfa.app, SHARED)
        config = load_config(write_config(folder, vt.url, alfa.url))
        pulled = pull(config)
        result = DemoResult(folder, config, folder / "mirror.db", {"vt": vt.url, "alfa": alfa.url}, pulled,
                            shared=shared, servers=[vt, alfa])
        result.synced = run_sync(config, ["contacts"], pull_first=False)  # both sides were just pulled
        return result
    finally:
        if result is None:
            vt.stop()
            alfa.stop()


def sample(mirror_path: Path, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one of the QUERIES: (column names, rows)."""
    with sqlite3.connect(mirror_path) as conn:
        cursor = conn.execute(sql)
        return [d[0] for d in cursor.description], cursor.fetchall()
