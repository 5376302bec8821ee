"""Sync state true to what each CRM holds (issue 11): per-side bases on links, the values an
update expects and the values the target stored on outbox rows, and conflicts resolved by side.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for table, columns in (("links", [sa.Column("bases", sa.Text, nullable=True)]),
                           ("outbox", [sa.Column("expected", sa.Text, nullable=True),
                                       sa.Column("stored", sa.Text, nullable=True)]),
                           ("conflicts", [sa.Column("take", sa.String(8), nullable=True)])):
        present = {c["name"] for c in inspector.get_columns(table)}  # a mirror stamped back keeps them
        with op.batch_alter_table(table) as batch:
            for column in columns:
                if column.name not in present:
                    batch.add_column(column)


def downgrade() -> None:
    with op.batch_alter_table("conflicts") as batch:
        batch.drop_column("take")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("stored")
        batch.drop_column("expected")
    with op.batch_alter_table("links") as batch:
        batch.drop_column("bases")
