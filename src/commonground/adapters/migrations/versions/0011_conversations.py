"""conversations: surveys, answers, comment threads

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "surveys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("asker_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("spec_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["asker_id"], ["parties.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("asker_id", "name", name="uq_surveys_asker_name"),
    )
    op.create_table(
        "survey_answers",
        sa.Column("survey_id", sa.String(length=32), nullable=False),
        sa.Column("party_id", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=256), nullable=False),
        sa.Column("values_json", sa.Text(), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["survey_id"], ["surveys.id"]),
        sa.ForeignKeyConstraint(["party_id"], ["parties.id"]),
        sa.PrimaryKeyConstraint("survey_id", "party_id"),
    )
    op.create_index("ix_survey_answers_subject", "survey_answers", ["subject"])
    op.create_table(
        "threads",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("party_id", sa.String(length=32), nullable=False),
        sa.Column("controller_id", sa.String(length=32), nullable=False),
        sa.Column("about", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["party_id"], ["parties.id"]),
        sa.ForeignKeyConstraint(["controller_id"], ["parties.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_threads_party", "threads", ["party_id", "updated_at"])
    op.create_index("ix_threads_controller", "threads", ["controller_id", "status"])
    op.create_table(
        "thread_messages",
        sa.Column("seq", _SEQ, autoincrement=True, nullable=False),
        sa.Column("thread_id", sa.String(length=32), nullable=False),
        sa.Column("author", sa.String(length=63), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["thread_id"], ["threads.id"]),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_thread_messages_thread", "thread_messages", ["thread_id", "seq"])


def downgrade() -> None:
    op.drop_index("ix_thread_messages_thread", table_name="thread_messages")
    op.drop_table("thread_messages")
    op.drop_index("ix_threads_controller", table_name="threads")
    op.drop_index("ix_threads_party", table_name="threads")
    op.drop_table("threads")
    op.drop_index("ix_survey_answers_subject", table_name="survey_answers")
    op.drop_table("survey_answers")
    op.drop_table("surveys")
