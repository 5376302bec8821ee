"""Login hardening: guessing is slowed per address; the session key survives restarts and is shared
by every console of one config, yet lives outside the mirror's tables."""
from __future__ import annotations

import re
import stat

from syncengine.console import create_app
from syncengine.console.security import KEY_FILE

PASSWORD = "console-test-password"  # the crm_pair fixture's [ui] password

COOKIE = "syncengine_session"


def _login(client, password: str = PASSWORD, *, address: str = "127.0.0.1"):
    page = client.get("/login", environ_base={"REMOTE_ADDR": address}).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
    return client.post("/login", data={"csrf_token": token, "name": "Анна", "password": password},
                       environ_base={"REMOTE_ADDR": address})


def test_failed_logins_from_one_address_are_answered_429_for_a_while(crm_pair):
    app = create_app(crm_pair.config, password=PASSWORD)
    attempts = app.extensions["login_attempts"]
    now = [1000.0]
    attempts.clock = lambda: now[0]
    guesser = app.test_client()
    for _ in range(attempts.limit):
        assert _login(guesser, "guess", address="203.0.113.5").status_code == 401
    refused = _login(guesser, PASSWORD, address="203.0.113.5")  # the right password is not even checked
    assert refused.status_code == 429 and 0 < int(refused.headers["Retry-After"]) <= attempts.window + 1
    assert "too many failed logins" in refused.text
    assert _login(app.test_client(), PASSWORD, address="203.0.113.6").status_code == 302  # another address
    for _ in range(attempts.limit):  # an IPv6 guesser cannot dodge by hopping within its /64
        _login(app.test_client(), "guess", address=f"2001:db8::{_ + 1}")
    assert _login(app.test_client(), PASSWORD, address="2001:db8::99").status_code == 429
    now[0] += attempts.window
    assert _login(guesser, PASSWORD, address="203.0.113.5").status_code == 302
    for _ in range(attempts.limit - 1):  # a success forgets the earlier failures
        assert _login(guesser, "guess", address="203.0.113.5").status_code == 401
    assert _login(guesser, PASSWORD, address="203.0.113.5").status_code == 302
    assert _login(guesser, "guess", address="203.0.113.5").status_code == 401


def test_a_session_outlives_a_restart_and_a_password_change_ends_it(crm_pair, sqlite_url, tmp_path):
    config = crm_pair.config
    first = create_app(config, password=PASSWORD).test_client()
    assert _login(first).status_code == 302
    page = first.get("/")
    assert page.status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)[1]
    cookie = first.get_cookie(COOKIE).value

    restarted = create_app(config, password=PASSWORD).test_client()  # a restart, or a second process
    restarted.set_cookie(COOKIE, cookie)
    assert restarted.get("/").status_code == 200
    assert restarted.post("/logout", data={"csrf_token": token}).status_code == 302  # its CSRF token holds too

    changed = create_app(config, password="a new password").test_client()
    changed.set_cookie(COOKIE, cookie)
    assert changed.get("/").headers["Location"].startswith("/login")

    key = tmp_path / KEY_FILE  # next to the SQLite mirror, owner-only, and nowhere in the mirror
    assert sqlite_url.endswith(str(tmp_path / "mirror.db"))
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_bytes() not in (tmp_path / "mirror.db").read_bytes()


def test_a_secret_file_others_could_read_is_replaced(crm_pair, tmp_path):
    first = create_app(crm_pair.config, password=PASSWORD).test_client()
    assert _login(first).status_code == 302
    cookie = first.get_cookie(COOKIE).value
    key = tmp_path / KEY_FILE
    key.chmod(0o644)
    again = create_app(crm_pair.config, password=PASSWORD).test_client()
    again.set_cookie(COOKIE, cookie)
    assert again.get("/").headers["Location"].startswith("/login")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
