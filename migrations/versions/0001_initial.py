"""Engine state: records, cursors, schemas, runs, change hints.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "records",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("system", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(128), nullable=False),
        sa.Column("remote_id", sa.String(128), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("hash", sa.String(32), nullable=False),
        sa.Column("first_seen", sa.DateTime, nullable=False),
        sa.Column("last_changed", sa.DateTime, nullable=False),
        sa.Column("deleted_at", sa.DateTime, nullable=True),
    )
    op.create_index("ix_records_key", "records", ["system", "entity", "remote_id"], unique=True)
    op.create_table(
        "cursors",
        sa.Column("system", sa.String(64), primary_key=True),
        sa.Column("entity", sa.String(128), primary_key=True),
        sa.Column("cursor", sa.Text, nullable=True),
        sa.Column("last_sweep_at", sa.DateTime, nullable=True),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "schemas",
        sa.Column("system", sa.String(64), primary_key=True),
        sa.Column("entity", sa.String(128), primary_key=True),
        sa.Column("schema", sa.Text, nullable=False),
        sa.Column("described_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("job", sa.String(128), nullable=True),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("counts", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_table(
        "change_hints",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("system", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(128), nullable=False),
        sa.Column("remote_id", sa.String(128), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("received_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_change_hints_target", "change_hints", ["system", "entity"])


def downgrade() -> None:
    for table in ("change_hints", "runs", "schemas", "cursors", "records"):
        op.drop_table(table)
