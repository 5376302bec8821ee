"""Issue 16.6: after a large first read into PostgreSQL the planner knows the table, so looking up a
batch's ids is not an index range over the whole entity filtered row by row (quadratic over a
pull) — read from the plan, not from a clock."""
from __future__ import annotations

import re

import sqlalchemy as sa

from syncengine.config import load_config
from syncengine.mirror import Mirror
from syncengine.pull import pull

from .helpers import ALFA_KEY, alfa_system


def test_known_ids_are_found_through_the_index_after_a_large_first_read(emulator, write_config, postgres_url):
    server = emulator("alfacrm", records=2500, api_key=ALFA_KEY)
    config = load_config(write_config(postgres_url, {"alfa": alfa_system(server)}))
    assert pull(config).ok
    engine = Mirror(config.mirror_url).engine
    with engine.connect() as conn:
        ids = list(conn.execute(sa.text("SELECT remote_id FROM records LIMIT 500")).scalars())
        plan = "\n".join(conn.exec_driver_sql(
            "EXPLAIN SELECT remote_id, id, hash, deleted_at FROM records WHERE system = %s AND entity = %s "
            f"AND remote_id IN ({', '.join(['%s'] * len(ids))})", ("alfa", "customer", *ids)).scalars())
    estimate = int(re.search(r"rows=(\d+)", plan)[1])
    assert estimate >= 100 and "Filter: (remote_id" not in plan, plan  # unanalyzed: rows=1 and that filter
