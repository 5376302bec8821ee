"""vtiger#1, vtiger#2 and an Alfa CRM over HTTP, a sync.toml naming them ``vt1``, ``vt2`` and
``alfa``, and a mappings folder: what the star, ring and chain tests start from."""
from __future__ import annotations

from typing import Any


class ThreeSystems:
    """The three emulators (every secret KEY), the config at ``path`` and the mappings written."""

    def __init__(self, emulator: Any, write_config: Any, mirror_url: str, mappings: dict[str, str], *,
                 key: str, use_log: bool = False, jobs: list[dict[str, Any]] | None = None):
        self.vt1 = emulator("vtiger", records=0, access_key=key)
        self.vt2 = emulator("vtiger", records=0, access_key=key)
        self.alfa = emulator("alfacrm", records=0, api_key=key)
        vt = {"kind": "vtiger", "username": "admin", "access_key": key, "entities": ["Contacts"]}
        self.path = write_config(mirror_url, {
            "vt1": {**vt, "url": self.vt1.url}, "vt2": {**vt, "url": self.vt2.url},
            "alfa": {"kind": "alfacrm", "url": self.alfa.url, "email": "admin@example.com", "api_key": key,
                     "entities": ["customer"], "use_log": use_log}}, jobs=jobs)
        folder = self.path.parent / "mappings"
        folder.mkdir(exist_ok=True)
        for name, text in mappings.items():
            (folder / f"{name}.toml").write_text(text, encoding="utf-8")
        self.names = list(mappings)

    def server(self, system: str) -> Any:
        return {"vt1": self.vt1, "vt2": self.vt2, "alfa": self.alfa}[system]
