"""``newest`` is decided by when each side was edited, never by the order systems are pulled in:
Alfa CRM's edit times come from its Log, clocks are compared at the coarser precision, and a tie
goes to the mapping's ``tie_break``."""
from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from syncengine.config import load_config
from syncengine.mirror import Mirror
from syncengine.mirror.models import ConflictRow
from syncengine.sync import run_sync

SECRET = "edit-times-secret"

T0 = (time.time() // 3600 + 2) * 3600 + 10  # later than every cursor; the servers' clocks are frozen around it
MAPPING = """
left = "vt:Contacts"
right = "alfa:customer"
match_on = ["email"]
conflict = "newest"

[fields]
name  = { left = "lastname", right = "name", conflict = "left" }
email = { left = "email", right = "email[0]", normalize = "email" }
title = { left = "title", right = "legal_name" }
"""


def alfa_clock(pair: Any, epoch: float) -> None:
    pair.alfa.control_clock(datetime.fromtimestamp(epoch, ZoneInfo("Europe/Moscow")).strftime("%Y-%m-%d %H:%M:%S"))


def linked_pair(make_pair, **alfa_settings) -> tuple[Any, str, str]:
    pair = make_pair(MAPPING, **alfa_settings)
    v = pair.vt_add(lastname="Noor", email="noor@example.com", title="Start")
    assert run_sync(pair.config).ok
    return pair, v, next(iter(pair.alfa_customers()))


@pytest.mark.parametrize("alfa_last", [True, False], ids=["alfa-edits-last", "vtiger-edits-last"])
def test_the_edit_made_last_wins_by_the_alfa_log_time(make_pair, alfa_last):
    """vtiger is pulled after Alfa, so before Alfa's Log times were read vtiger won both orders."""
    pair, v, a = linked_pair(make_pair, use_log=True)
    first, second = (0, 3) if alfa_last else (3, 0)
    pair.vt.control_clock(T0 + first)
    pair.vt_edit(v, title="vtiger edit")
    alfa_clock(pair, T0 + second)
    pair.alfa_edit(a, legal_name="Alfa edit")
    assert run_sync(pair.config).ok
    expected = "Alfa edit" if alfa_last else "vtiger edit"
    assert pair.vt_contacts()[v]["title"] == pair.alfa_customers()[a]["legal_name"] == expected


@pytest.mark.parametrize("tie_break", ["left", "right"])
def test_without_edit_times_a_clash_seen_in_one_pull_goes_to_the_tie_break(make_pair, tie_break):
    """Without the Log both changes are seen by the same pull: neither is newer, whatever the pull order."""
    pair, v, a = linked_pair(make_pair, use_log=False)
    path = pair.mapping_file()
    path.write_text(MAPPING.replace('conflict = "newest"', f'conflict = "newest"\ntie_break = "{tie_break}"'),
                    encoding="utf-8")
    pair.alfa_edit(a, legal_name="Alfa edit")
    pair.vt_edit(v, title="vtiger edit")
    assert run_sync(pair.config).ok
    expected = "vtiger edit" if tie_break == "left" else "Alfa edit"
    assert pair.vt_contacts()[v]["title"] == pair.alfa_customers()[a]["legal_name"] == expected


RUKO_MAPPING = """
left = "vt:Contacts"
right = "ruko:Contacts"
match_on = ["email"]
conflict = "newest"
{tie_break}

[fields]
lastname = { left = "lastname", right = "last_name" }
email    = { left = "email", right = "email", normalize = "email" }
"""


@pytest.mark.parametrize("tie_break", ["", 'tie_break = "right"'], ids=["default-manual", "right"])
def test_a_minute_precision_tie_goes_to_the_tie_break(emulator, write_config, sqlite_url, tmp_path, tie_break):
    """Rukovoditel shows date_updated to the minute: an edit 3 s after vtiger's in the same minute
    is no older, so it is a tie (it used to lose silently to the left side)."""
    vt = emulator("vtiger", records=0, access_key=SECRET)
    ruko = emulator("rukovoditel", records=0, password=SECRET, api_key=SECRET)
    path = write_config(sqlite_url, {
        "vt": {"kind": "vtiger", "url": vt.url, "username": "admin", "access_key": SECRET, "entities": ["Contacts"]},
        "ruko": {"kind": "rukovoditel", "url": ruko.url, "username": "admin", "password": SECRET,
                 "api_key": SECRET, "entities": ["Contacts"]}})
    (tmp_path / "mappings").mkdir(exist_ok=True)
    (path.parent / "mappings" / "contacts.toml").write_text(RUKO_MAPPING.replace("{tie_break}", tie_break),
                                                              encoding="utf-8")
    v = vt.app.control_write("Contacts", {"lastname": "Start", "email": "tie@example.com"})
    assert run_sync(load_config(path)).ok
    (r,) = ruko.app.live_ids("Contacts")
    vt.app.control_clock(T0)
    vt.app.control_edit(v, {"lastname": "vtiger edit"})
    ruko.app.control_clock(T0 + 3)
    ruko.app.control_edit("Contacts", r, {"Last Name": "Rukovoditel edit"})
    assert run_sync(load_config(path)).ok
    vt_name = vt.app.live_records("Contacts")[v]["lastname"]
    if tie_break:
        assert vt_name == "Rukovoditel edit"
    else:  # manual: nothing is overwritten, a conflict waits for a person
        assert vt_name == "vtiger edit"
        with Mirror(load_config(path).mirror_url).engine.connect() as conn:
            (conflict,) = conn.execute(sa.select(ConflictRow.field, ConflictRow.state)).all()
        assert tuple(conflict) == ("lastname", "open")
