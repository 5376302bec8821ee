"""Record ids of any length in the sync state (issue 14.8): links, outbox, parked and held_deletes
held them in VARCHAR(128), and the outbox key (which names both ids) in VARCHAR(400).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

COLUMNS = {"links": ("left_id", "right_id"), "outbox": ("remote_id", "left_id", "right_id", "key"),
           "parked": ("remote_id",), "held_deletes": ("remote_id",)}


def _length(column: str) -> int:
    return 400 if column == "key" else 128


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":  # SQLite does not enforce VARCHAR lengths
        return
    for table, columns in COLUMNS.items():  # VARCHAR → TEXT is a catalog change: no table rewrite
        for column in columns:
            op.alter_column(table, column, type_=sa.Text, existing_type=sa.String(_length(column)))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in COLUMNS.items():
        for column in columns:
            op.alter_column(table, column, type_=sa.String(_length(column)), existing_type=sa.Text)
