"""The metadata tables (SQLAlchemy Core). Alembic migrations create them; this is their shape.

The ledger tables have no update or delete code anywhere in the project.
"""

from __future__ import annotations

from sqlalchemy import (BigInteger, Column, DateTime, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Table,
                        Text, UniqueConstraint)

metadata = MetaData()

# The newest migration in adapters/migrations/versions; a store behind it is upgraded on open.
SCHEMA_REVISION = "0011"

parties = Table(
    "parties", metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(63), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

tokens = Table(
    "tokens", metadata,
    Column("id", String(32), primary_key=True),
    Column("party_id", String(32), ForeignKey("parties.id"), nullable=False, index=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("scope", String(16)),  # read | query | admin; NULL (tokens made before scopes): admin
)

datasets = Table(
    "datasets", metadata,
    Column("id", String(32), primary_key=True),
    Column("owner_id", String(32), ForeignKey("parties.id"), nullable=False),
    Column("name", String(63), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("owner_id", "name", name="uq_dataset_owner_name"),
)

dataset_versions = Table(
    "dataset_versions", metadata,
    Column("id", String(32), primary_key=True),
    Column("dataset_id", String(32), ForeignKey("datasets.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("path", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("schema_json", Text, nullable=False),
    Column("distinct_subjects", BigInteger),
    Column("max_rows_per_subject", BigInteger),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("dataset_id", "version", name="uq_dataset_version"),
)

agreements = Table(
    "agreements", metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(63), nullable=False),
    Column("version", Integer, nullable=False),
    Column("provider_id", String(32), ForeignKey("parties.id"), nullable=False),
    Column("terms_json", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("hash_key", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True)),
    Column("revoked_by", String(63)),
    UniqueConstraint("provider_id", "name", "version", name="uq_agreement_version"),
)

signatures = Table(
    "agreement_signatures", metadata,
    Column("agreement_id", String(32), ForeignKey("agreements.id"), primary_key=True),
    Column("party_name", String(63), primary_key=True),
    Column("signed_at", DateTime(timezone=True), nullable=False),
)

templates = Table(
    "agreement_templates", metadata,
    Column("id", String(32), primary_key=True),
    Column("owner_id", String(32), ForeignKey("parties.id"), nullable=False),
    Column("name", String(63), nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("owner_id", "name", name="uq_template_owner_name"),
)

ledger_entries = Table(
    "ledger_entries", metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Column("entry", Text, nullable=False),
)

tree_heads = Table(
    "tree_heads", metadata,
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    Column("root_hash", LargeBinary(32), nullable=False),
    Column("timestamp", DateTime(timezone=True), nullable=False),
    Column("signature", LargeBinary, nullable=False),
    # The roots of the perfect subtrees at this size: the next head starts from here.
    Column("frontier", LargeBinary),
)

vocabulary_entries = Table(
    "vocabulary_entries", metadata,
    Column("kind", String(16), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

consent_records = Table(
    "consent_records", metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("dataset_id", String(32), ForeignKey("datasets.id"), nullable=False),
    Column("subject", String(256), nullable=False),
    Column("purpose", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("source", String(16), nullable=False),
    Column("recorded_by", String(63), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

# The latest status per (dataset, purpose, subject), kept in the same transaction as each
# record so a query reads one indexed set instead of replaying the history.
consent_state = Table(
    "consent_state", metadata,
    Column("dataset_id", String(32), ForeignKey("datasets.id"), primary_key=True),
    Column("purpose", String(200), primary_key=True),
    Column("subject", String(256), primary_key=True),
    Column("status", String(16), nullable=False),
)

_SEQ = BigInteger().with_variant(Integer, "sqlite")

# A one-time code a controller gives a person so they can claim their subject id; only its
# SHA-256 is kept, and it is spent on first use.
subject_claims = Table(
    "subject_claims", metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("controller_id", String(32), ForeignKey("parties.id"), nullable=False),
    Column("subject", String(256), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("redeemed_at", DateTime(timezone=True)),
    Column("redeemed_by", String(32)),
)

# Which individual party a controller's subject id belongs to (at most one).
subject_links = Table(
    "subject_links", metadata,
    Column("controller_id", String(32), ForeignKey("parties.id"), primary_key=True),
    Column("subject", String(256), primary_key=True),
    Column("party_id", String(32), ForeignKey("parties.id"), nullable=False),
    Column("linked_at", DateTime(timezone=True), nullable=False),
    Index("ix_subject_links_party", "party_id"),
)

# Erasure and correction requests from individuals, and the controller's answers.
subject_requests = Table(
    "subject_requests", metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("party_id", String(32), ForeignKey("parties.id"), nullable=False),
    Column("controller_id", String(32), ForeignKey("parties.id"), nullable=False),
    Column("subject", String(256), nullable=False),
    Column("details_json", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("answer", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("answered_at", DateTime(timezone=True)),
    Index("ix_subject_requests_controller", "controller_id", "status"),
)

# One row per (computation, dataset version read): the index receipts are derived from.
# Subject ids are not stored here; a person's receipts are the computations over versions
# holding their rows at a time their consent let them in.
computations = Table(
    "computations", metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("ledger_index", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("party", String(63), nullable=False),
    Column("purpose", String(200), nullable=False),
    Column("agreements_json", Text, nullable=False),
    Column("dataset_id", String(32), ForeignKey("datasets.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("fields_json", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_computations_dataset_seq", "dataset_id", "seq"),
)

# A recipient's per-subject offer computation, and the offers it produced (one per subject).
offer_batches = Table(
    "offer_batches", metadata,
    Column("id", String(32), primary_key=True),
    Column("agreement_id", String(32), ForeignKey("agreements.id"), nullable=False),
    Column("recipient", String(63), nullable=False),
    Column("purpose", String(200), nullable=False),
    Column("dataset_id", String(32), ForeignKey("datasets.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("title", Text, nullable=False),
    Column("sql", Text, nullable=False),
    Column("fields_json", Text, nullable=False),
    Column("needs_consent_json", Text, nullable=False),
    Column("ledger_index", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

offers = Table(
    "offers", metadata,
    Column("id", String(32), primary_key=True),
    Column("batch_id", String(32), ForeignKey("offer_batches.id"), nullable=False),
    Column("controller_id", String(32), ForeignKey("parties.id"), nullable=False),
    Column("subject", String(256), nullable=False),
    Column("terms_json", Text, nullable=False),
    Column("values_json", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("released_json", Text),
    Column("decided_at", DateTime(timezone=True)),
    Index("ix_offers_subject", "controller_id", "subject"),
    Index("ix_offers_batch", "batch_id"),
)

# Curated row-level copies made for recipients (rows mode); each file is kept for download and
# Delta Sharing, and its hash is on the ledger.
exports = Table(
    "exports", metadata,
    Column("id", String(32), primary_key=True),
    Column("agreement_id", String(32), ForeignKey("agreements.id"), nullable=False),
    Column("recipient", String(63), nullable=False),
    Column("dataset_id", String(32), ForeignKey("datasets.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("purpose", String(200), nullable=False),
    Column("format", String(16), nullable=False),
    Column("path", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("report_json", Text, nullable=False),
    Column("ledger_index", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_exports_recipient", "recipient", "created_at"),
)
