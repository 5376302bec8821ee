"""The console in a real headless Chromium: login, CSRF, the overview; health and metrics."""
from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from syncengine.config import load_config
from syncengine.console import create_app
from syncengine.pull import pull
from syncengine.scheduler import Daemon
from syncengine.sync import run_sync


def test_no_page_without_login(crm_pair):
    app = create_app(crm_pair.config, password="secret")
    client = app.test_client()
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("login", "static", "healthz", "metrics"):
            continue
        path = (rule.rule.replace("<int:run_id>", "1").replace("<int:item_id>", "1").replace("<name>", "contacts")
                .replace("<plan_id>", "x"))
        for method in rule.methods & {"GET", "POST"}:
            answer = client.open(path, method=method)
            assert answer.status_code in (302, 400), f"{method} {path} answered {answer.status_code}"
            if method == "GET":
                assert answer.headers["Location"].startswith("/login"), path
            checked += 1
    assert checked >= 12
    assert client.get("/healthz").status_code in (200, 503)  # monitors need no login


def test_login_session_cookie_and_pages_in_the_browser(crm_pair, console, page):
    crm_pair.vt.app.control_write("Contacts", {"lastname": "Плохой", "email": "нет-собачки"})  # Alfa refuses it
    assert not run_sync(crm_pair.config).ok
    server = console(crm_pair.config)
    browser = page(server.url)
    browser.open("/runs")
    assert browser.path() == "/login"  # no page without a login
    browser.login(password="wrong")
    assert "wrong password" in browser.text()
    browser.login()
    assert browser.path() == "/"
    [cookie] = browser.browser.get_cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    text = browser.text()
    assert "healthy" in text and "vt:Contacts" in text and "alfa:customer" in text and "contacts-job" in text
    assert "1\nparked" in text
    browser.shot("overview")
    browser.open("/runs")
    assert "sync" in browser.text()
    browser.shot("runs")
    browser.click("td.num a")
    assert browser.path().startswith("/runs/")
    browser.shot("run")


def test_a_forged_form_without_the_csrf_token_is_refused(crm_pair, console, page):
    server = console(crm_pair.config)
    browser = page(server.url)
    browser.login()
    # another page (or a script) posts a form with the session cookie but without the token
    browser.browser.execute_script("""
        const form = document.createElement('form');
        form.method = 'post'; form.action = '/logout';
        document.body.appendChild(form); form.submit();""")
    assert "The CSRF token is missing" in browser.text()
    browser.open("/")
    assert browser.path() == "/" and "Анна" in browser.text()  # still logged in: the logout was refused


def test_healthz_turns_503_when_a_job_keeps_failing(crm_pair, console, monkeypatch):
    monkeypatch.setenv("VT_ACCESS_KEY", "wrong-key")
    config = load_config(crm_pair.path)
    assert config.health.failed_runs == 3  # the documented default
    daemon = Daemon(config)
    server = console(config, mirror=daemon.mirror, metrics=daemon.metrics)
    daemon.metrics.watch(config, daemon.mirror)
    job = config.job("contacts-job")
    for expected in (200, 200, 503):
        assert daemon.run_job(job, scheduled=False).status == "failed"
        if expected == 200:
            with urllib.request.urlopen(f"{server.url}/healthz") as answer:
                assert answer.status == 200
        else:
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"{server.url}/healthz")
            assert refused.value.code == 503
            assert "job contacts-job: the last 3 runs failed" in refused.value.read().decode()
    with urllib.request.urlopen(f"{server.url}/metrics") as answer:
        text = answer.read().decode()
    assert 'syncengine_job_failures_total{job="contacts-job"} 3.0' in text
    assert "syncengine_parked_records" in text and "syncengine_open_conflicts" in text


def test_healthz_turns_503_when_an_entity_is_stale(crm_pair, console):
    config = crm_pair.config
    pull(config)
    server = console(config)
    with urllib.request.urlopen(f"{server.url}/healthz") as answer:
        assert answer.read() == b"ok\n"
    with urllib.request.urlopen(f"{server.url}/metrics") as answer:
        text = answer.read().decode()
    assert 'syncengine_entity_freshness_seconds{entity="Contacts",system="vt"}' in text
    crm_pair.path.write_text(crm_pair.path.read_text() + '\n[health]\nstale_after = "0s"\n', encoding="utf-8")
    stale = console(load_config(crm_pair.path))
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{stale.url}/healthz")
    assert refused.value.code == 503 and "vt:Contacts: last successful pull" in refused.value.read().decode()



def test_ui_refuses_to_listen_beyond_loopback_without_a_password(crm_pair):
    from click.testing import CliRunner

    from syncengine.cli import main

    text = crm_pair.path.read_text().replace('password = "${SYNCENGINE_UI_PASSWORD}"', 'bind = "0.0.0.0"')
    crm_pair.path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["--config", str(crm_pair.path), "ui"])
    assert result.exit_code == 2
    assert "[ui] bind = '0.0.0.0' reaches beyond this machine but no password is set" in result.output
    crm_pair.path.write_text(text + "port = 70000\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["--config", str(crm_pair.path), "ui"])
    assert result.exit_code == 2 and "ui.port" in result.output


def test_the_daemon_serves_the_console_beside_its_jobs(crm_pair):
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    crm_pair.path.write_text(crm_pair.path.read_text() + f"port = {port}\n", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-c", "from syncengine.cli import main; main()",
                             "--config", str(crm_pair.path), "daemon"],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.time() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login") as answer:
                    assert b"Password" in answer.read()
                break
            except urllib.error.URLError:
                assert time.time() < deadline and proc.poll() is None, "the console did not start"
                time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz") as answer:
            assert answer.status == 200
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert f"console on http://127.0.0.1:{port}" in stderr


def test_every_asset_comes_from_the_package_and_loopback_needs_no_login(crm_pair):
    import re
    from pathlib import Path

    import syncengine.console

    folder = Path(syncengine.console.__file__).parent
    for template in (folder / "templates").glob("*.html"):
        text = template.read_text(encoding="utf-8")
        assert not re.search(r"""(src|href)=["'](https?:)?//""", text), f"{template.name} loads from another host"
    client = create_app(crm_pair.config, password=None).test_client()  # [ui] without a password: loopback only
    assert client.get("/").status_code == 200
    css = client.get("/static/console.css")
    assert css.status_code == 200 and b"no CDN" in css.data
