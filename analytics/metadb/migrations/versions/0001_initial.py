"""The first metadata schema: users, sessions, saved queries, jobs, model-id claims, the audit log, imports.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

#: The ``jobs`` view's columns when this migration was written (a later column needs a later migration).
_JOB_COLUMNS = [("job_id", sa.Text), ("kind", sa.Text), ("model_id", sa.Text), ("status", sa.Text),
                ("progress", sa.Float), ("submitted_by", sa.Text), ("submitted_at", sa.BigInteger),
                ("finished_at", sa.BigInteger), ("error", sa.Text), ("params", sa.Text), ("detail", sa.Text),
                ("started_at", sa.BigInteger), ("heartbeat_at", sa.BigInteger), ("worker", sa.Text),
                ("attempts", sa.Integer), ("stage", sa.Text)]


def upgrade() -> None:
    op.create_table("users", sa.Column("name", sa.Text, primary_key=True),
                    sa.Column("role", sa.Text, nullable=False), sa.Column("hash", sa.Text, nullable=False),
                    sa.Column("created_at", sa.Text), sa.Column("created_by", sa.Text),
                    sa.Column("session", sa.Text, nullable=False))
    op.create_table("sessions", sa.Column("key", sa.Text, primary_key=True),
                    sa.Column("user_name", sa.Text, nullable=False), sa.Column("v", sa.Text, nullable=False),
                    sa.Column("created", sa.Float, nullable=False), sa.Column("expires", sa.Float, nullable=False))
    op.create_index("ix_sessions_expires", "sessions", ["expires"])
    op.create_table("saved_queries", sa.Column("user_name", sa.Text, primary_key=True),
                    sa.Column("name", sa.Text, primary_key=True), sa.Column("sql", sa.Text, nullable=False),
                    sa.Column("created_by", sa.Text), sa.Column("created_at", sa.Text))
    op.create_table("jobs", *(sa.Column(n, t, primary_key=n == "job_id") for n, t in _JOB_COLUMNS))
    op.create_index("jobs_by_time", "jobs", ["submitted_at", "job_id"])
    op.create_table("claims", sa.Column("model_id", sa.Text, primary_key=True),
                    sa.Column("job_id", sa.Text, nullable=False), sa.Column("claimed_at", sa.Float, nullable=False))
    op.create_table("audit", sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                    sa.Column("happened_at", sa.BigInteger, nullable=False), sa.Column("who", sa.Text, nullable=False),
                    sa.Column("action", sa.Text, nullable=False), sa.Column("target", sa.Text),
                    sa.Column("details", sa.Text))
    op.create_index("ix_audit_happened_at", "audit", ["happened_at"])
    op.create_index("ix_audit_action", "audit", ["action"])
    op.create_table("imported", sa.Column("source", sa.Text, primary_key=True),
                    sa.Column("at", sa.Float, nullable=False), sa.Column("rows", sa.Integer, nullable=False))
