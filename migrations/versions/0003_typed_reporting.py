"""Reporting tables typed for BI tools (issue 16): BIGINT ids, NUMERIC money, BOOLEAN flags,
timestamptz, jsonb; record ids of any length (issue 14).

Reporting rows are derived from the raw records, so each reporting table whose types differ is
rebuilt from them in this transaction: no row is lost.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

from syncengine.mirror.store import migrate_reporting_tables

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":  # SQLite does not enforce VARCHAR lengths
        for table in ("records", "change_hints"):
            op.alter_column(table, "remote_id", type_=sa.Text, existing_type=sa.String(128))
    migrate_reporting_tables(op.get_bind())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("records", "change_hints"):
            op.alter_column(table, "remote_id", type_=sa.String(128), existing_type=sa.Text)
