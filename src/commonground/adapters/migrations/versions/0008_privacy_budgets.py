"""differential privacy budgets and released-group sketches

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _id() -> sa.Column:
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "released_groups",
        _id(),
        sa.Column("agreement_id", sa.String(length=32), sa.ForeignKey("agreements.id"), nullable=False),
        sa.Column("recipient", sa.String(length=63), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=False),
        sa.Column("sketch", sa.LargeBinary(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_released_groups_recipient", "released_groups", ["agreement_id", "recipient"])
    op.create_table(
        "privacy_spends",
        _id(),
        sa.Column("agreement_id", sa.String(length=32), sa.ForeignKey("agreements.id"), nullable=False),
        sa.Column("recipient", sa.String(length=63), nullable=False),
        sa.Column("epsilon_micro", sa.BigInteger(), nullable=False),
        sa.Column("delta_pico", sa.BigInteger(), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_privacy_spends_recipient", "privacy_spends", ["agreement_id", "recipient"])


def downgrade() -> None:
    op.drop_index("ix_privacy_spends_recipient", table_name="privacy_spends")
    op.drop_table("privacy_spends")
    op.drop_index("ix_released_groups_recipient", table_name="released_groups")
    op.drop_table("released_groups")
