"""sources: a paper's DOI (arXiv API responses carry one; a library matches by it)

Revision ID: 0004_sources
Revises: 0003_reliability
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_sources"
down_revision: str | None = "0003_reliability"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("papers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("doi", sa.String(length=255), nullable=True))
        batch_op.create_index(batch_op.f("ix_papers_doi"), ["doi"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("papers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_papers_doi"))
        batch_op.drop_column("doi")
