"""code-to-data submissions, reviews, runs and releases

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "code_submissions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("submitter", sa.String(length=63), nullable=False),
        sa.Column("purpose", sa.String(length=200), nullable=False),
        sa.Column("agreements_json", sa.Text(), nullable=False),
        sa.Column("reviewers_json", sa.Text(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("declared_json", sa.Text(), nullable=False),
        sa.Column("previous_id", sa.String(length=32), nullable=True),
        sa.Column("diff", sa.Text(), nullable=True),
        sa.Column("ledger_index", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["previous_id"], ["code_submissions.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_code_submissions_submitter", "code_submissions", ["submitter", "created_at"])
    op.create_table(
        "code_reviews",
        sa.Column("submission_id", sa.String(length=32), nullable=False),
        sa.Column("party", sa.String(length=63), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=True),
        sa.Column("ledger_index", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["submission_id"], ["code_submissions.id"]),
        sa.PrimaryKeyConstraint("submission_id", "party"),
    )
    op.create_table(
        "code_runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("submission_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("rows", sa.BigInteger(), nullable=True),
        sa.Column("bytes", sa.BigInteger(), nullable=True),
        sa.Column("checks_json", sa.Text(), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["submission_id"], ["code_submissions.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_code_runs_submission", "code_runs", ["submission_id", "created_at"])
    op.create_table(
        "code_releases",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("party", sa.String(length=63), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=True),
        sa.Column("ledger_index", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["code_runs.id"]),
        sa.PrimaryKeyConstraint("run_id", "party"),
    )


def downgrade() -> None:
    op.drop_table("code_releases")
    op.drop_index("ix_code_runs_submission", table_name="code_runs")
    op.drop_table("code_runs")
    op.drop_table("code_reviews")
    op.drop_index("ix_code_submissions_submitter", table_name="code_submissions")
    op.drop_table("code_submissions")
