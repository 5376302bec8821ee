"""Shared fixtures: emulators over real HTTP, mirrors on SQLite and PostgreSQL, config files."""
from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from servers import stop_promptly

from syncengine import emulators
from syncengine.emulators import EmulatorServer, Faults

POSTGRES_URL = os.environ.get("SYNCENGINE_TEST_POSTGRES_URL")


@pytest.fixture
def emulator() -> Iterator[Callable[..., EmulatorServer]]:
    """Factory: ``emulator("vtiger", records=100, faults=Faults(...), **options)``, stopped after the test."""
    started: list[EmulatorServer] = []

    def start(kind: str, records: int = 100, *, faults: Faults | None = None, **options: Any) -> EmulatorServer:
        server = emulators.start(kind, records, faults=faults, **options)
        started.append(server)
        return server

    yield start
    stop_promptly(started)


def _postgres_schema_url() -> Iterator[str]:
    """A fresh PostgreSQL schema for one test, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def mirror_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The mirror database URL: every test using it runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mirror.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL tests need SYNCENGINE_TEST_POSTGRES_URL")
    yield from _postgres_schema_url()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite mirror URL, for tests that need not run on both databases."""
    return f"sqlite:///{tmp_path / 'mirror.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL tests need SYNCENGINE_TEST_POSTGRES_URL")
    yield from _postgres_schema_url()


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a sync.toml: ``write_config(mirror_url, systems={"vt": {...}}, jobs=[...], extra="")``."""

    def write(mirror_url: str, systems: dict[str, dict[str, Any]], jobs: list[dict[str, Any]] | None = None,
              extra: str = "", name: str = "sync.toml") -> Path:
        lines = ["[mirror]", f"url = {toml_value(mirror_url)}", ""]
        for system, settings in systems.items():
            lines.append(f"[systems.{system}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in settings.items()]
            lines.append("")
        for job in jobs or []:
            lines.append("[[jobs]]")
            lines += [f"{k} = {toml_value(v)}" for k, v in job.items()]
            lines.append("")
        path = tmp_path / name
        path.write_text("\n".join(lines) + extra, encoding="utf-8")
        return path

    return write
