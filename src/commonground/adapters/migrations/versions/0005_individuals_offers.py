"""individuals: claim codes, subject links, requests; computations behind receipts; offers

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "subject_claims",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("controller_id", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=256), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("redeemed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("redeemed_by", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["controller_id"], ["parties.id"]),
        sa.PrimaryKeyConstraint("code_hash"),
    )
    op.create_table(
        "subject_links",
        sa.Column("controller_id", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=256), nullable=False),
        sa.Column("party_id", sa.String(length=32), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["controller_id"], ["parties.id"]),
        sa.ForeignKeyConstraint(["party_id"], ["parties.id"]),
        sa.PrimaryKeyConstraint("controller_id", "subject"),
    )
    op.create_index("ix_subject_links_party", "subject_links", ["party_id"])
    op.create_table(
        "subject_requests",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("party_id", sa.String(length=32), nullable=False),
        sa.Column("controller_id", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=256), nullable=False),
        sa.Column("details_json", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["party_id"], ["parties.id"]),
        sa.ForeignKeyConstraint(["controller_id"], ["parties.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_subject_requests_controller", "subject_requests", ["controller_id", "status"])
    op.create_table(
        "computations",
        sa.Column("seq", _SEQ, autoincrement=True, nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("party", sa.String(length=63), nullable=False),
        sa.Column("purpose", sa.String(length=200), nullable=False),
        sa.Column("agreements_json", sa.Text(), nullable=False),
        sa.Column("dataset_id", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("fields_json", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"]),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_computations_dataset_seq", "computations", ["dataset_id", "seq"])
    op.create_table(
        "offer_batches",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("agreement_id", sa.String(length=32), nullable=False),
        sa.Column("recipient", sa.String(length=63), nullable=False),
        sa.Column("purpose", sa.String(length=200), nullable=False),
        sa.Column("dataset_id", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("sql", sa.Text(), nullable=False),
        sa.Column("fields_json", sa.Text(), nullable=False),
        sa.Column("needs_consent_json", sa.Text(), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["agreement_id"], ["agreements.id"]),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "offers",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("controller_id", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=256), nullable=False),
        sa.Column("terms_json", sa.Text(), nullable=False),
        sa.Column("values_json", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("released_json", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["batch_id"], ["offer_batches.id"]),
        sa.ForeignKeyConstraint(["controller_id"], ["parties.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_offers_subject", "offers", ["controller_id", "subject"])
    op.create_index("ix_offers_batch", "offers", ["batch_id"])


def downgrade() -> None:
    op.drop_index("ix_offers_batch", table_name="offers")
    op.drop_index("ix_offers_subject", table_name="offers")
    op.drop_table("offers")
    op.drop_table("offer_batches")
    op.drop_index("ix_computations_dataset_seq", table_name="computations")
    op.drop_table("computations")
    op.drop_index("ix_subject_requests_controller", table_name="subject_requests")
    op.drop_table("subject_requests")
    op.drop_index("ix_subject_links_party", table_name="subject_links")
    op.drop_table("subject_links")
    op.drop_table("subject_claims")
