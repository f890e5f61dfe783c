"""survey answers published on read: whether a publication of the survey's copies holds each
answer, and a partial index over the pending ones (services/answers.py)

Revision ID: 0016
Revises: 0015
"""
import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Answers stored before were published as they came (each answer wrote the next version).
    with op.batch_alter_table("survey_answers") as batch:
        batch.add_column(sa.Column("published", sa.Boolean(), nullable=False, server_default=sa.true()))
    op.create_index("ix_survey_answers_pending", "survey_answers", ["survey_id"],
                    sqlite_where=sa.text("NOT published"), postgresql_where=sa.text("NOT published"))


def downgrade() -> None:
    op.drop_index("ix_survey_answers_pending", "survey_answers")
    with op.batch_alter_table("survey_answers") as batch:
        batch.drop_column("published")
