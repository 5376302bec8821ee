"""Nothing lost when rows come back (issue 12.6): listings that hide a tenth of the rows for a
sync, under ``on_delete = "propagate"`` and below the mass-delete breaker, delete nothing on either
side; after the rows return both CRMs hold what they held before, every pair linked."""
from __future__ import annotations

import sqlalchemy as sa

from syncengine.mirror import Mirror
from syncengine.mirror.models import LinkRow
from syncengine.sync import run_sync

RECORDS = 20


def test_a_listing_glitch_below_the_breaker_loses_nothing(small):
    for i in range(5, RECORDS):
        small.vt_add(lastname=f"Петров{i}", email=f"p{i}@example.com", title="Инженер", description="")
    run_sync(small.config)
    before = {"vt": set(small.vt_contacts()), "alfa": set(small.alfa_customers())}
    assert len(before["vt"]) == len(before["alfa"]) == RECORDS
    vt_ids, alfa_ids = sorted(before["vt"]), sorted(before["alfa"])
    # a tenth of the rows (just under the breaker), for one sync, and the re-reads by id agree
    small.vt.control_hide_rows(ids=vt_ids[:2], listings=None, by_id=True)
    small.alfa.control_hide_rows(ids=alfa_ids[-2:], listings=None, by_id=True)
    glitch = run_sync(small.config, full=True)
    for server in (small.vt_server, small.alfa_server):
        server.app.control_show_rows()
    after_glitch = {"vt": set(small.vt_contacts()), "alfa": set(small.alfa_customers())}
    for _ in range(2):
        run_sync(small.config, full=True)
    after = {"vt": set(small.vt_contacts()), "alfa": set(small.alfa_customers())}
    lost = {side: len(before[side] - after[side]) for side in before}
    print(f"glitch: lost during {({s: len(before[s] - after_glitch[s]) for s in before})}, after return {lost}")
    assert glitch.apply.writes == 0
    assert after == before
    with Mirror(small.config.mirror_url).engine.connect() as conn:
        states = list(conn.execute(sa.select(LinkRow.state)).scalars())
    assert states.count("active") == RECORDS
