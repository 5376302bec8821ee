"""Sync state: links with their shadow, the outbox (also the undo journal), conflicts, parked records.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "links",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("mapping", sa.String(128), nullable=False),
        sa.Column("left_id", sa.String(128), nullable=False),
        sa.Column("right_id", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("shadow", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_links_left", "links", ["mapping", "left_id"], unique=True)
    op.create_index("ix_links_right", "links", ["mapping", "right_id"], unique=True)
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("plan_id", sa.String(64), nullable=False),
        sa.Column("key", sa.String(400), nullable=False),
        sa.Column("run_id", sa.Integer, nullable=True),
        sa.Column("mapping", sa.String(128), nullable=False),
        sa.Column("op", sa.String(16), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("system", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(128), nullable=False),
        sa.Column("remote_id", sa.String(128), nullable=True),
        sa.Column("left_id", sa.String(128), nullable=True),
        sa.Column("right_id", sa.String(128), nullable=True),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("settles", sa.Text, nullable=False),
        sa.Column("match", sa.Text, nullable=True),
        sa.Column("before", sa.Text, nullable=True),
        sa.Column("shadow_before", sa.Text, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_outbox_plan_key", "outbox", ["plan_id", "key"], unique=True)
    op.create_index("ix_outbox_state", "outbox", ["state"])
    op.create_index("ix_outbox_run", "outbox", ["run_id"])
    op.create_table(
        "conflicts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("mapping", sa.String(128), nullable=False),
        sa.Column("link_id", sa.Integer, nullable=False),
        sa.Column("field", sa.String(128), nullable=False),
        sa.Column("left_value", sa.Text, nullable=False),
        sa.Column("right_value", sa.Text, nullable=False),
        sa.Column("shadow_value", sa.Text, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("value", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("resolved_at", sa.DateTime, nullable=True),
    )
    op.create_index("ix_conflicts_link", "conflicts", ["mapping", "link_id", "field"])
    op.create_index("ix_conflicts_state", "conflicts", ["state"])
    op.create_table(
        "parked",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("mapping", sa.String(128), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("remote_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("first_seen", sa.DateTime, nullable=False),
        sa.Column("last_seen", sa.DateTime, nullable=False),
    )
    op.create_index("ix_parked_record", "parked", ["mapping", "side", "remote_id"], unique=True)


def downgrade() -> None:
    for table in ("parked", "conflicts", "outbox", "links"):
        op.drop_table(table)
