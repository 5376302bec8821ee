"""Provenance per field (issue 13.2): where each value the sync wrote came from, and the origins
an outbox row carries from the plan to the write.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provenance",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("system", sa.Text, nullable=False),
        sa.Column("entity", sa.Text, nullable=False),
        sa.Column("remote_id", sa.Text, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("origin_system", sa.Text, nullable=True),
        sa.Column("origin_entity", sa.Text, nullable=True),
        sa.Column("origin_id", sa.Text, nullable=True),
        sa.Column("origin_path", sa.Text, nullable=True),
        sa.Column("edited_at", sa.DateTime, nullable=False),
        sa.Column("mapping", sa.Text, nullable=False),
        sa.Column("run_id", sa.Integer, nullable=True),
        sa.Column("written_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_provenance_field", "provenance", ["system", "entity", "remote_id", "path"], unique=True)
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("outbox")}  # a mirror stamped back keeps it
    if "origins" not in present:
        with op.batch_alter_table("outbox") as batch:
            batch.add_column(sa.Column("origins", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("origins")
    op.drop_index("ix_provenance_field", table_name="provenance")
    op.drop_table("provenance")
