"""Keys the reporting tests' emulators are started with."""
from __future__ import annotations

import pytest

from .helpers import ALFA_KEY


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALFA_API_KEY", ALFA_KEY)
    monkeypatch.setenv("VT_KEY", "emulator")
