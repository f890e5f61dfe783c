"""dataset rights and data product listings

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dataset_rights",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("dataset_id", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("rights_json", sa.Text(), nullable=False),
        sa.Column("attested_by", sa.String(length=63), nullable=False),
        sa.Column("attested_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dataset_id", "version", name="uq_dataset_rights_version"),
    )
    op.create_table(
        "notices",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("party", sa.String(length=63), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_notices_party", "notices", ["party", "created_at"])
    op.create_table(
        "listings",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("listing_json", sa.Text(), nullable=False),
        sa.Column("visibility", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["parties.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner_id", "name", name="uq_listing_owner_name"),
    )
    op.create_index("ix_listings_catalogue", "listings", ["status", "visibility", "name"])
    op.create_table(
        "listing_viewers",
        sa.Column("listing_id", sa.String(length=32), nullable=False),
        sa.Column("party", sa.String(length=63), nullable=False),
        sa.ForeignKeyConstraint(["listing_id"], ["listings.id"]),
        sa.PrimaryKeyConstraint("listing_id", "party"),
    )
    op.create_index("ix_listing_viewers_party", "listing_viewers", ["party", "listing_id"])
    op.create_table(
        "listing_requests",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("listing_id", sa.String(length=32), nullable=False),
        sa.Column("requester", sa.String(length=63), nullable=False),
        sa.Column("purpose", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("agreement_id", sa.String(length=32), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["listing_id"], ["listings.id"]),
        sa.ForeignKeyConstraint(["agreement_id"], ["agreements.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_listing_requests_listing", "listing_requests", ["listing_id", "status"])
    op.create_index("ix_listing_requests_requester", "listing_requests", ["requester", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_listing_requests_requester", table_name="listing_requests")
    op.drop_index("ix_listing_requests_listing", table_name="listing_requests")
    op.drop_table("listing_requests")
    op.drop_index("ix_listing_viewers_party", table_name="listing_viewers")
    op.drop_table("listing_viewers")
    op.drop_index("ix_listings_catalogue", table_name="listings")
    op.drop_table("listings")
    op.drop_index("ix_notices_party", table_name="notices")
    op.drop_table("notices")
    op.drop_table("dataset_rights")
