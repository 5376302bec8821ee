"""Column types as the database itself lists them, and CRM systems for sync.toml."""
from __future__ import annotations

import sqlalchemy as sa

ALFA_KEY = "alfa-reporting-key"

#: our name for a type → (SQLite declared type, PostgreSQL information_schema data_type)
TYPES = {
    "bigint": ("BIGINT", "bigint"), "numeric": ("NUMERIC", "numeric"), "boolean": ("BOOLEAN", "boolean"),
    "timestamptz": ("DATETIME", "timestamp with time zone"), "json": ("JSON", "jsonb"),
    "date": ("DATE", "date"), "text": ("TEXT", "text"),
}


def catalog_types(engine: sa.Engine, table: str) -> dict[str, str]:
    """{column: type} as the database itself lists them (PRAGMA / information_schema)."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            return {row[1]: row[2].upper() for row in conn.exec_driver_sql(f'PRAGMA table_info("{table}")')}
        return dict(conn.execute(sa.text(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = :t"), {"t": table}).all())


def expected(engine: sa.Engine, kinds: dict[str, str]) -> dict[str, str]:
    index = 0 if engine.dialect.name == "sqlite" else 1
    return {column: TYPES[kind][index] for column, kind in kinds.items()}


def alfa_system(server, **extra) -> dict:
    return {"kind": "alfacrm", "url": server.url, "email": "admin@example.com", "api_key": "${ALFA_API_KEY}",
            "entities": ["customer"], **extra}


def vtiger_system(server, **extra) -> dict:
    return {"kind": "salesplatform", "url": server.url, "username": "admin", "access_key": "${VT_KEY}",
            "entities": ["Contacts"], **extra}
