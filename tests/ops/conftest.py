"""Fixtures for the operations tests: a vtiger and an Alfa CRM emulator, and configs naming them."""
from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from syncengine.emulators import EmulatorServer


def vtiger_system(server: EmulatorServer, **extra: Any) -> dict[str, Any]:
    return {"kind": "vtiger", "url": server.url, "username": "admin", "access_key": "emulator",
            "retries": 1, **extra}


def alfa_system(server: EmulatorServer, **extra: Any) -> dict[str, Any]:
    return {"kind": "alfacrm", "url": server.url, "email": "admin@example.com", "api_key": "emulator",
            "branch": 1, "retries": 1, **extra}


@pytest.fixture
def two_crms(emulator: Callable[..., EmulatorServer]) -> tuple[EmulatorServer, EmulatorServer]:
    """(vtiger, alfa) emulators with 30 contacts / customers each."""
    return emulator("vtiger", records=30), emulator("alfacrm", records=30)


@pytest.fixture
def ops_config(two_crms, write_config: Callable[..., Path]) -> Callable[..., Path]:
    """``ops_config(mirror_url, jobs=[...], vt={...}, alfa={...})`` → sync.toml naming both emulators."""
    vt, alfa = two_crms

    def write(mirror_url: str, jobs: list[dict[str, Any]] | None = None, vt_extra: dict | None = None,
              alfa_extra: dict | None = None, extra: str = "") -> Path:
        systems = {"vt": vtiger_system(vt, entities=["Contacts"], **(vt_extra or {})),
                   "alfa": alfa_system(alfa, entities=["customer"], **(alfa_extra or {}))}
        return write_config(mirror_url, systems=systems, jobs=jobs, extra=extra)

    return write


@pytest.fixture
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


#: The ``syncengine`` command, run as a real process (``python -m syncengine.cli`` would load the
#: CLI module twice and miss the commands other modules register on it).
SYNCENGINE = [sys.executable, "-c", "from syncengine.cli import main; main()"]


@pytest.fixture
def syncengine_cmd() -> list[str]:
    return list(SYNCENGINE)
