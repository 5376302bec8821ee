"""A schema cached by an older version is described again, not read with today's defaults."""
from __future__ import annotations

import orjson
import sqlalchemy as sa

from syncengine.config import load_config
from syncengine.mirror import Mirror
from syncengine.mirror.models import SchemaRow
from syncengine.pull import pull


def test_a_schema_cached_before_an_attribute_existed_is_described_again(emulator, write_config, sqlite_url,
                                                                       monkeypatch):
    monkeypatch.setenv("VT_ACCESS_KEY", "vt-key")
    server = emulator("vtiger", records=5, access_key="vt-key")
    config = load_config(write_config(sqlite_url, {"vt": {
        "kind": "vtiger", "url": server.url, "username": "admin", "access_key": "${VT_ACCESS_KEY}",
        "entities": ["Contacts"]}}))
    assert pull(config).ok
    mirror = Mirror(config.mirror_url)
    cached = mirror.cached_schema("vt", "Contacts")
    assert cached is not None and cached[0].html_encoded  # vtiger stores text HTML-encoded
    with mirror.engine.begin() as conn:  # as the version before html_encoded existed wrote it
        text = conn.execute(sa.select(SchemaRow.schema).where(SchemaRow.entity == "Contacts")).scalar_one()
        old = orjson.loads(text)
        del old["html_encoded"]
        conn.execute(sa.update(SchemaRow).where(SchemaRow.entity == "Contacts")
                     .values(schema=orjson.dumps(old).decode()))
    assert mirror.cached_schema("vt", "Contacts") is None
    describes = server.stats_json()["requests"].get("describe", 0)
    assert pull(config).ok
    assert server.stats_json()["requests"].get("describe", 0) == describes + 1
    cached = mirror.cached_schema("vt", "Contacts")
    assert cached is not None and cached[0].html_encoded
