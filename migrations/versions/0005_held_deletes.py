"""Deletes on evidence: the held-delete queue; only live links claim records (issue 12).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ACTIVE = sa.text("state = 'active'")


def upgrade() -> None:
    op.create_table(
        "held_deletes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("system", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(128), nullable=False),
        sa.Column("remote_id", sa.String(128), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("first_seen", sa.DateTime, nullable=False),
        sa.Column("confirmed_at", sa.DateTime, nullable=True),
        sa.Column("decided_at", sa.DateTime, nullable=True),
    )
    op.create_index("ix_held_deletes_record", "held_deletes", ["system", "entity", "remote_id"], unique=True)
    op.create_index("ix_held_deletes_state", "held_deletes", ["state"])
    for name, column in (("ix_links_left", "left_id"), ("ix_links_right", "right_id")):
        op.drop_index(name, table_name="links")
        op.create_index(name, "links", ["mapping", column], unique=True,
                        sqlite_where=_ACTIVE, postgresql_where=_ACTIVE)


def downgrade() -> None:
    for name, column in (("ix_links_left", "left_id"), ("ix_links_right", "right_id")):
        op.drop_index(name, table_name="links")
        op.create_index(name, "links", ["mapping", column], unique=True)
    op.drop_table("held_deletes")
