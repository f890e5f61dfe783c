"""The metadata tables (SQLAlchemy Core). Alembic migrations create them; this is their shape.

The ledger tables have no update or delete code anywhere in the project.
"""

from __future__ import annotations

from sqlalchemy import (BigInteger, Boolean, Column, DateTime, ForeignKey, Index, Integer, LargeBinary, MetaData, String,
                        Table, Text, UniqueConstraint, false, text, true)

metadata = MetaData()

# The newest migration in adapters/migrations/versions; a store behind it is upgraded on open.
SCHEMA_REVISION = "0016"

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
    Column("subject_level_columns", Text),  # JSON list (ParquetIngest.subject_level_columns)
    Column("person_numbers", Boolean, nullable=False, server_default=false()),  # DatasetVersion.person_numbers
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

# -- rights pre-vetting and data products (#12; docs/data-products.md) --------------------------
# Each version of a dataset's declared rights (legal basis, purposes, per-column purposes).
dataset_rights = Table(
    "dataset_rights", metadata,
    Column("id", String(32), primary_key=True),
    Column("dataset_id", String(32), ForeignKey("datasets.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("rights_json", Text, nullable=False),
    Column("attested_by", String(63), nullable=False),
    Column("attested_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("dataset_id", "version", name="uq_dataset_rights_version"),
)

# What a party is told (an agreement suspended by a narrowing of rights, a listing request to
# review or decided); each notice points at its ledger entry.
notices = Table(
    "notices", metadata,
    Column("id", String(32), primary_key=True),
    Column("party", String(63), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("subject", String(32), nullable=False),  # the agreement or listing request it is about
    Column("message", Text, nullable=False),
    Column("ledger_index", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_notices_party", "party", "created_at"),
)

listings = Table(
    "listings", metadata,
    Column("id", String(32), primary_key=True),
    Column("owner_id", String(32), ForeignKey("parties.id"), nullable=False),
    Column("name", String(63), nullable=False),
    Column("title", String(200), nullable=False),
    Column("listing_json", Text, nullable=False),
    Column("visibility", String(8), nullable=False),  # all | parties (then listing_viewers)
    Column("status", String(16), nullable=False),  # published | withdrawn
    Column("valid_until", DateTime(timezone=True), nullable=False),  # the catalogue hides expired listings
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("owner_id", "name", name="uq_listing_owner_name"),
    Index("ix_listings_catalogue", "status", "visibility", "name"),
)

listing_viewers = Table(
    "listing_viewers", metadata,
    Column("listing_id", String(32), ForeignKey("listings.id"), primary_key=True),
    Column("party", String(63), primary_key=True),
    Index("ix_listing_viewers_party", "party", "listing_id"),
)

listing_requests = Table(
    "listing_requests", metadata,
    Column("id", String(32), primary_key=True),
    Column("listing_id", String(32), ForeignKey("listings.id"), nullable=False),
    Column("requester", String(63), nullable=False),
    Column("purpose", String(200), nullable=False),
    Column("status", String(16), nullable=False),  # active | pending | declined
    Column("agreement_id", String(32), ForeignKey("agreements.id")),
    Column("note", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True)),
    Index("ix_listing_requests_listing", "listing_id", "status"),
    Index("ix_listing_requests_requester", "requester", "created_at"),
)

# -- conversations (#12 part 3): surveys a company asks its customers, answers, threads --------
# The survey's spec (questions, purposes, audience) is JSON; the answer values are kept so each
# new dataset version of the answers can be written whole (erasure deletes the person's row).
# Who may use an answer is not here: it is the consent records of the survey's answer datasets.
surveys = Table(
    "surveys", metadata,
    Column("id", String(32), primary_key=True),
    Column("asker_id", String(32), ForeignKey("parties.id"), nullable=False),
    Column("name", String(63), nullable=False),
    Column("spec_json", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("asker_id", "name", name="uq_surveys_asker_name"),
)

survey_answers = Table(
    "survey_answers", metadata,
    Column("survey_id", String(32), ForeignKey("surveys.id"), primary_key=True),
    Column("party_id", String(32), ForeignKey("parties.id"), primary_key=True),
    Column("subject", String(256), nullable=False),
    Column("values_json", Text, nullable=False),
    Column("answered_at", DateTime(timezone=True), nullable=False),
    # False until a publication of the survey's copies holds the answer (services/answers.py).
    Column("published", Boolean, nullable=False, server_default=true()),
    Index("ix_survey_answers_subject", "subject"),
    Index("ix_survey_answers_pending", "survey_id", sqlite_where=text("NOT published"),
          postgresql_where=text("NOT published")),
)

threads = Table(
    "threads", metadata,
    Column("id", String(32), primary_key=True),
    Column("party_id", String(32), ForeignKey("parties.id"), nullable=False),
    Column("controller_id", String(32), ForeignKey("parties.id"), nullable=False),
    Column("about", String(16), nullable=False),
    Column("ref", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_threads_party", "party_id", "updated_at"),
    Index("ix_threads_controller", "controller_id", "status"),
)

thread_messages = Table(
    "thread_messages", metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("thread_id", String(32), ForeignKey("threads.id"), nullable=False),
    Column("author", String(63), nullable=False),
    Column("body", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_thread_messages_thread", "thread_id", "seq"),
)

# -- code-to-data (#8; docs/code-to-data.md): analyses pinned by hash, reviews, runs, releases --
code_submissions = Table(
    "code_submissions", metadata,
    Column("id", String(32), primary_key=True),
    Column("submitter", String(63), nullable=False),
    Column("purpose", String(200), nullable=False),
    Column("agreements_json", Text, nullable=False),  # the code agreements whose views it reads
    Column("reviewers_json", Text, nullable=False),  # their providers, each of whom decides
    Column("title", String(200), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("source", Text, nullable=False),
    Column("declared_json", Text, nullable=False),
    Column("previous_id", String(32), ForeignKey("code_submissions.id")),
    Column("diff", Text),
    Column("ledger_index", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_code_submissions_submitter", "submitter", "created_at"),
)

code_reviews = Table(
    "code_reviews", metadata,
    Column("submission_id", String(32), ForeignKey("code_submissions.id"), primary_key=True),
    Column("party", String(63), primary_key=True),
    Column("decision", String(16), nullable=False),  # approved | rejected
    Column("reason", Text, nullable=False),
    Column("rule", String(32)),  # the agreement's auto-approval rule that decided, if any
    Column("ledger_index", BigInteger, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

code_runs = Table(
    "code_runs", metadata,
    Column("id", String(32), primary_key=True),
    Column("submission_id", String(32), ForeignKey("code_submissions.id"), nullable=False),
    Column("status", String(16), nullable=False),  # failed | refused | held | released
    Column("path", Text),  # the held result, only when it passed its checks
    Column("sha256", String(64)),
    Column("rows", BigInteger),
    Column("bytes", BigInteger),
    Column("checks_json", Text, nullable=False),
    Column("ledger_index", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_code_runs_submission", "submission_id", "created_at"),
)

code_releases = Table(
    "code_releases", metadata,
    Column("run_id", String(32), ForeignKey("code_runs.id"), primary_key=True),
    Column("party", String(63), primary_key=True),
    Column("rule", String(32)),  # the agreement's auto-release rule that released, if any
    Column("ledger_index", BigInteger, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

# -- privacy (#11; docs/privacy.md) ----------------------------------------------------------
# Sketches of the groups released to a recipient under an agreement (policy/differencing.py),
# checked by every later release. Append-only; no values, only keyed-hash cell sums.
released_groups = Table(
    "released_groups", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("agreement_id", String(32), ForeignKey("agreements.id"), nullable=False),
    Column("recipient", String(63), nullable=False),
    Column("ledger_index", BigInteger, nullable=False),
    Column("sketch", LargeBinary, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    # The group's rows (weighted, as the sketch counts them) and the most of them one person can
    # have (None: unknown), so the differencing check reads only groups whose row counts are
    # within (k-1) x bound of a new one's (migration 0012; NULL before it: always read).
    Column("sketch_rows", BigInteger),
    Column("row_bound", BigInteger),
    Index("ix_released_groups_rows", "agreement_id", "recipient", "sketch_rows"),
    Index("ix_released_groups_bound", "agreement_id", "recipient", "row_bound"),
)

# Results released to a recipient, by fingerprint (services/privacy.release_fingerprint: the
# plan, the agreements' versions, the inputs' bytes and consent state): the same query over the
# same inputs releases the same groups, so a repeat needs neither sketches nor the check.
# Not unique: two first releases racing may both record theirs.
released_results = Table(
    "released_results", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("recipient", String(63), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("ledger_index", BigInteger, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_released_results_fingerprint", "recipient", "fingerprint"),
)

# Differential-privacy spending per (agreement, recipient): the budget left is the agreement's
# total minus the sum; one row per query, written with its ledger entry. Micro-epsilon and
# pico-delta integers, so sums are exact. Never refreshed.
privacy_spends = Table(
    "privacy_spends", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("agreement_id", String(32), ForeignKey("agreements.id"), nullable=False),
    Column("recipient", String(63), nullable=False),
    Column("epsilon_micro", BigInteger, nullable=False),
    Column("delta_pico", BigInteger, nullable=False),
    Column("ledger_index", BigInteger, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_privacy_spends_recipient", "agreement_id", "recipient"),
)
