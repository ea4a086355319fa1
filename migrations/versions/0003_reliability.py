"""reliability: claim holders, replayed Slack clicks

Revision ID: 0003_reliability
Revises: 0002_daily_run
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_reliability"
down_revision: str | None = "0002_daily_run"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HOLDERS = ("subscribers", "deliveries", "digest_files")


def upgrade() -> None:
    for table in HOLDERS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("claimed_by", sa.String(length=255), nullable=True))
    op.create_table(
        "slack_clicks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("action_ts", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("message_ts", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slack_clicks")),
        sa.UniqueConstraint("action_ts", "user_id", "message_ts", name=op.f("uq_slack_clicks_action_ts")),
    )
    with op.batch_alter_table("slack_clicks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_slack_clicks_created_at"), ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("slack_clicks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_slack_clicks_created_at"))
    op.drop_table("slack_clicks")
    for table in reversed(HOLDERS):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("claimed_by")
