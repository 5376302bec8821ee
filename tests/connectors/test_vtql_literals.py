"""Issue 14.9: VTQL literals reach MySQL as they came, so backslashes must be escaped as MySQL
reads them — a lookup for ``Back\\slash`` must find it, a value ending in ``\\`` must not break SQL."""
from __future__ import annotations

import pytest

from syncengine.connectors import connect

KEY = "emulator-Access-Key-42"


@pytest.mark.parametrize("lastname", ["Back\\slash", "ends in \\", "O'Brien \\' mixed", "50\\% \\_ off",
                                      "line\\nfeed"])
def test_search_finds_a_value_with_backslashes(emulator, lastname):
    server = emulator("vtiger", records=3, access_key=KEY)
    rid = server.app.control_write("Contacts", {"lastname": lastname})
    server.app.control_write("Contacts", {"lastname": lastname.replace("\\", "")})  # must not match
    conn = connect("vt", {"kind": "vtiger", "url": server.url, "username": "admin", "access_key": KEY,
                          "retries": 0, "timeout": 5})
    found = conn.search("Contacts", {"lastname": lastname})
    assert [r["id"] for r in found] == [rid]
    assert found[0]["lastname"] == lastname
