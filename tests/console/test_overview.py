"""The overview's entity table says how each entity's changes are read, as the last pull left it."""
from __future__ import annotations

import html
import re

from syncengine.config import load_config
from syncengine.console import create_app
from syncengine.pull import pull


def _reading_column(page: str) -> dict[str, str]:
    """entity → its "how changes are read" cell, from the overview's HTML."""
    rows = re.findall(r'<a href="/record\?target=[^"]*">([^<]+)</a></td>.*?<td class="reads">([^<]*)</td>', page, re.S)
    return {html.unescape(target): html.unescape(text) for target, text in rows}


def test_the_overview_tells_how_each_entity_is_read(emulator, write_config, sqlite_url):
    vt, alfa = emulator("vtiger", records=3), emulator("alfacrm", records=3)
    ruko = emulator("rukovoditel", records=3, password="pw-123456", api_key="key-123456")
    sm = emulator("salesman", records=3, api_key="k", login="admin@example.com")
    vtiger = {"kind": "vtiger", "url": vt.url, "username": "admin", "access_key": "emulator", "retries": 1}
    config = load_config(write_config(sqlite_url, {
        "vt": {**vtiger, "entities": ["Contacts"], "change_feed": "sync"},
        "vtq": {**vtiger, "entities": ["Accounts"], "change_feed": "query"},
        "alfa": {"kind": "alfacrm", "url": alfa.url, "email": "admin@example.com", "api_key": "emulator",
                 "retries": 1, "entities": ["customer", "log"]},
        "ruko": {"kind": "rukovoditel", "url": ruko.url, "username": "admin", "password": "pw-123456",
                 "api_key": "key-123456", "entities": ["Contacts"]},
        "sm": {"kind": "salesman", "url": sm.url, "login": "admin@example.com", "api_key": "k",
               "entities": ["client", "person"]},
    }))
    client = create_app(config, password=None).test_client()
    assert "<td class=\"reads\">" not in client.get("/").text  # nothing pulled: no entity rows yet
    assert pull(config).ok
    for server in (vt, alfa, ruko, sm):  # the page reads the mirror only, never a CRM
        server.stop()
    reads = _reading_column(client.get("/").text)
    assert reads["vt:Contacts"].startswith("`sync` API (edits and deletions) since 20")
    assert reads["vtq:Accounts"].startswith("`query` on modifiedtime since 20")
    assert reads["alfa:customer"].startswith("Log after entry #") and "full `index` scan at each sweep" \
        in reads["alfa:customer"]
    assert reads["alfa:log"].startswith("Log after entry #")
    assert reads["ruko:Contacts"].startswith("`select` by date_updated and date_added since 20")
    assert reads["sm:client"].startswith("`list` by create and change date since 20")
    assert reads["sm:person"] == "full `list` every pull (no change filter)"


def test_the_reading_follows_the_settings_the_next_pull_obeys(emulator, write_config, sqlite_url, tmp_path):
    alfa = emulator("alfacrm", records=3)
    system = {"kind": "alfacrm", "url": alfa.url, "email": "admin@example.com", "api_key": "emulator",
              "retries": 1, "entities": ["customer"]}
    assert pull(load_config(write_config(sqlite_url, {"alfa": system}))).ok
    config = load_config(write_config(sqlite_url, {"alfa": {**system, "use_log": False}}))
    reads = _reading_column(create_app(config, password=None).test_client().get("/").text)
    assert reads["alfa:customer"] == "full `index` scan every pull (use_log = false)"
