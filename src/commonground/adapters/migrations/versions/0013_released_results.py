"""released results by fingerprint: a query repeated over the same inputs is released again
without recomputing its differencing sketches or re-running the check

Revision ID: 0013
Revises: 0012
"""
import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "released_results",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("recipient", sa.String(length=63), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_released_results_fingerprint", "released_results", ["recipient", "fingerprint"])


def downgrade() -> None:
    op.drop_index("ix_released_results_fingerprint", table_name="released_results")
    op.drop_table("released_results")
