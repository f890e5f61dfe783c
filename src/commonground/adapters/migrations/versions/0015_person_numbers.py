"""person numbers per dataset version: whether the version's file holds the hidden column of each
person's number (domain.schema.PERSON_NUMBER_COLUMN), which dp's contribution bounding groups by

Revision ID: 0015
Revises: 0014
"""
import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Versions stored before have no such column: false, so their dp plans group by the unit.
    with op.batch_alter_table("dataset_versions") as batch:
        batch.add_column(sa.Column("person_numbers", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("dataset_versions") as batch:
        batch.drop_column("person_numbers")
