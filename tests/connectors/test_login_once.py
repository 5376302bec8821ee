"""Issue 14.1/14.7: a refused login is tried once per system per run, and a host that does not
resolve fails at the first request — a real CRM locks an account after repeated failed logins."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from syncengine.connectors import connect
from syncengine.errors import AuthError, ConnectorError
from syncengine.http import HttpClient

WRITES = 20


def hammer(connector: Any, entity: str, values: dict[str, Any]) -> list[BaseException]:
    """What a push does with a side whose login is refused: many writes from several threads."""
    def write(_: int) -> BaseException | None:
        try:
            connector.create(entity, values)
        except BaseException as exc:  # collected for the assertions
            return exc
        return None

    with ThreadPoolExecutor(4) as pool:
        return [e for e in pool.map(write, range(WRITES)) if e is not None]


def logins(server: Any, *ops: str) -> dict[str, int]:
    counts = server.stats_json()["requests"]
    return {op: counts.get(op, 0) for op in ops}


def test_vtiger_wrong_access_key_makes_one_challenge_and_one_login(emulator):
    server = emulator("vtiger", records=5, access_key="the-right-key-1")
    conn = connect("vt", {"kind": "vtiger", "url": server.url, "username": "admin",
                          "access_key": "a-wrong-key-2", "retries": 2, "timeout": 5})
    with pytest.raises(AuthError):
        conn.check()
    errors = hammer(conn, "Contacts", {"lastname": "Never"})
    assert len(errors) == WRITES and all(isinstance(e, AuthError) for e in errors)
    assert logins(server, "getchallenge", "login") == {"getchallenge": 1, "login": 1}


@pytest.mark.parametrize("kind, user, entity, values", [
    ("alfacrm", {"email": "admin@example.com"}, "customer", {"name": "Never"}),
    ("salesman", {"login": "admin"}, "client", {"title": "Never"}),
])
def test_a_wrong_api_key_is_sent_once(emulator, kind, user, entity, values):
    server = emulator(kind, records=5, api_key="the-right-key-1")
    conn = connect("crm", {"kind": kind, "url": server.url, **user, "api_key": "a-wrong-key-2",
                           "retries": 2, "timeout": 5})
    with pytest.raises(AuthError):
        conn.check()
    errors = hammer(conn, entity, values)
    assert len(errors) == WRITES and all(isinstance(e, AuthError) for e in errors)
    assert server.stats_json()["total"] == 1


def test_rukovoditel_wrong_password_is_probed_once_per_run(emulator):
    server = emulator("rukovoditel", records=5, password="the-right-pass-1", api_key="k3y-0123456789")
    conn = connect("ruko", {"kind": "rukovoditel", "url": server.url, "username": "admin",
                            "password": "a-wrong-pass-2", "api_key": "k3y-0123456789",
                            "entities": ["Contacts"], "retries": 2, "timeout": 5})
    with pytest.raises(AuthError):
        conn.check()
    probes = server.stats_json()["total"]
    errors = hammer(conn, "Contacts", {"name": "Never"})
    assert len(errors) == WRITES and all(isinstance(e, AuthError) for e in errors)
    assert server.stats_json()["total"] == probes


def test_a_host_that_does_not_resolve_fails_at_the_first_request():
    client = HttpClient("vt", retries=5, backoff=0.01)
    for _ in range(3):
        with pytest.raises(ConnectorError) as failed:
            client.request("GET", "http://no-such-host.invalid/webservice.php", op="getchallenge",
                           parse=lambda response: response)
        assert "no-such-host.invalid" in str(failed.value) and "url" in str(failed.value)
    assert client.total_requests == 1
