"""released groups carry their row count and rows-per-person bound, indexed, so the differencing
check reads only the earlier groups that could be within k-1 people of a new one

Revision ID: 0012
Revises: 0011

Groups released before this revision have neither (NULL) and stay candidates for every check.
"""
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("released_groups", sa.Column("sketch_rows", sa.BigInteger(), nullable=True))
    op.add_column("released_groups", sa.Column("row_bound", sa.BigInteger(), nullable=True))
    op.drop_index("ix_released_groups_recipient", table_name="released_groups")
    op.create_index("ix_released_groups_rows", "released_groups", ["agreement_id", "recipient", "sketch_rows"])
    op.create_index("ix_released_groups_bound", "released_groups", ["agreement_id", "recipient", "row_bound"])


def downgrade() -> None:
    op.drop_index("ix_released_groups_bound", table_name="released_groups")
    op.drop_index("ix_released_groups_rows", table_name="released_groups")
    op.create_index("ix_released_groups_recipient", "released_groups", ["agreement_id", "recipient"])
    with op.batch_alter_table("released_groups") as batch:
        batch.drop_column("row_bound")
        batch.drop_column("sketch_rows")
