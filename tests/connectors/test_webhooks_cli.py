"""`syncengine webhooks`: a real process receiving the SalesMan emulator's webhook POSTs."""
from __future__ import annotations

import socket
import subprocess
import sys
import time

from syncengine.config import load_config
from syncengine.mirror import Mirror


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_webhooks_command_records_hints_for_the_next_pull(emulator, write_config, sqlite_url):
    server = emulator("salesman", records=10, api_key="emulator-key")
    path = write_config(sqlite_url, {"sm": {"kind": "salesman", "url": server.url, "login": "admin",
                                            "api_key": "emulator-key"}})
    mirror = Mirror(load_config(path).mirror_url)  # create the mirror before the receiver writes to it
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "syncengine.cli", "--config", str(path), "webhooks",
                             "--port", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert f"http://127.0.0.1:{port}/sm" in proc.stdout.readline()
        clid = next(iter(server.app.clients))
        server.app.control_webhook(f"http://127.0.0.1:{port}/sm", "client.edit")
        server.app.control_edit("client", clid, {"phone": "+7 (342) 111-22-34"}, bump_change_date=False)
        server.app.flush_webhooks()
        deadline = time.monotonic() + 10
        while not mirror.pending_hints("sm", "client") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(mirror.pending_hints("sm", "client")) == {str(clid)}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_webhooks_command_needs_a_salesman_system(write_config, sqlite_url):
    from click.testing import CliRunner

    from syncengine.cli import main

    path = write_config(sqlite_url, {})
    result = CliRunner().invoke(main, ["--config", str(path), "webhooks", "--port", "0"])
    assert result.exit_code == 2 and "no system of kind salesman" in result.output
