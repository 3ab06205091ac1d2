"""Team notes: a member's plain-text note on a model, a (layer, state, k, cluster) or a unit.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                    sa.Column("model_id", sa.Text, nullable=False), sa.Column("layer", sa.Integer),
                    sa.Column("state", sa.Text), sa.Column("k", sa.Integer), sa.Column("cluster", sa.Integer),
                    sa.Column("unit", sa.Integer), sa.Column("body", sa.Text, nullable=False),
                    sa.Column("author", sa.Text, nullable=False),
                    sa.Column("created_at", sa.BigInteger, nullable=False),
                    sa.Column("edited_at", sa.BigInteger))
    op.create_index("ix_notes_model_id", "notes", ["model_id"])


def downgrade() -> None:
    op.drop_index("ix_notes_model_id", "notes")
    op.drop_table("notes")
