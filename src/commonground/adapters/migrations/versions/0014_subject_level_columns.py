"""subject-level columns per dataset version: the columns ingest found to hold one value per
subject, which let a dp query grouped by them skip choosing each person's groups

Revision ID: 0014
Revises: 0013
"""
import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A JSON list of column names; NULL for versions stored before, which are then treated as
    # having none (the general plan, as before).
    with op.batch_alter_table("dataset_versions") as batch:
        batch.add_column(sa.Column("subject_level_columns", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dataset_versions") as batch:
        batch.drop_column("subject_level_columns")
