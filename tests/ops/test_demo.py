"""``syncengine demo`` on a machine with nothing configured: exits 0, quickly, with a queryable mirror."""
from __future__ import annotations

import os
import sqlite3
import subprocess

from syncengine.demo import QUERIES


def test_demo_runs_from_nothing_and_its_queries_answer(tmp_path, syncengine_cmd):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCENGINE_")}
    folder = tmp_path / "demo"
    done = subprocess.run([*syncengine_cmd, "demo", "--dir", str(folder)], capture_output=True, text=True,
                          timeout=120, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert str(folder / "mirror.db") in done.stdout.replace("\n", "")
    with sqlite3.connect(folder / "mirror.db") as conn:
        for title, sql in QUERIES:
            assert sql in done.stdout.replace("\n", " ") or sql in done.stdout
            assert conn.execute(sql).fetchall(), f"{title}: no rows"
        # both CRMs hold everyone after the sync: the 3 shared people once, the rest copied across
        linked = conn.execute("SELECT count(*) FROM links WHERE mapping = 'contacts'").fetchone()[0]
        contacts = conn.execute("SELECT count(*) FROM vt_contacts WHERE _deleted = 0").fetchone()[0]
        customers = conn.execute("SELECT count(*) FROM alfa_customer WHERE _deleted = 0").fetchone()[0]
    assert linked == contacts == customers == 80  # 40 vtiger + 43 Alfa records, 3 people in both
