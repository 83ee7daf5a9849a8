"""The state store's tables, as SQLAlchemy Core metadata.

The store's queries and Alembic's autogenerate compare against these definitions; the
migrations in :mod:`scimflow.state.migrations` create them and must stay in step (a new
column is a new revision, never an edit of ``0001_initial``).
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["AUDIT", "AUDIT_HEAD", "LINKS", "METADATA", "PARKED", "SEEN_EVENTS"]

# names Alembic and the database give constraints, fixed so migrations can refer to them
METADATA = sa.MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    }
)

LINKS = sa.Table(
    "scimflow_links",
    METADATA,
    sa.Column("target", sa.String(100), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("okta_id", sa.String(64), primary_key=True),
    sa.Column("scim_id", sa.String(255), nullable=False),
    sa.Column("pushed_hash", sa.String(64), nullable=True),
    sa.Column("pushed_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("target", "kind", "scim_id"),
    sa.CheckConstraint("kind IN ('User', 'Group')", name="kind"),
)

PARKED = sa.Table(
    "scimflow_parked",
    METADATA,
    sa.Column("target", sa.String(100), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    # as wide as the audit's: a failed write to an unlinked target user parks "unmanaged:<id>"
    sa.Column("okta_id", sa.String(300), primary_key=True),
    # why it is parked (scimflow.state.store.ParkKind): quarantined, rejected, guard,
    # unavailable, target-error; ``kind`` is the resource's, as in every table
    sa.Column("park_kind", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("first_parked_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_parked_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("payload", sa.Text, nullable=True),
    sa.CheckConstraint("kind IN ('User', 'Group')", name="kind"),
    sa.CheckConstraint(
        "park_kind IN ('quarantined', 'rejected', 'guard', 'unavailable', 'target-error')",
        name="park_kind",
    ),
)

AUDIT = sa.Table(
    "scimflow_audit",
    METADATA,
    # assigned by the store (previous + 1), so a removed row leaves a visible gap
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("cause", sa.Text, nullable=False),
    sa.Column("target", sa.String(100), nullable=False),
    sa.Column("operation", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    # wider than an Okta id: the engine audits unlinked target users as "unmanaged:<scim id>"
    sa.Column("okta_id", sa.String(300), nullable=False),
    sa.Column("scim_id", sa.String(255), nullable=True),
    sa.Column("request", sa.Text, nullable=True),
    sa.Column("status", sa.Integer, nullable=True),
    sa.Column("response", sa.Text, nullable=True),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Index(None, "target", "seq"),
)

# One row: the last (seq, hash) appended, written in the same transaction as the rows.
# Without it, deleting the newest rows (or every row) would leave a valid, shorter chain.
AUDIT_HEAD = sa.Table(
    "scimflow_audit_head",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.CheckConstraint("id = 1", name="one_row"),
)


# The Okta event uuids the stream has processed (its batch durable in every target), so
# the System Log catch-up re-publishes only what never arrived. Kept as long as Okta
# keeps its System Log (90 days): older rows can be pruned.
SEEN_EVENTS = sa.Table(
    "scimflow_seen_events",
    METADATA,
    sa.Column("uuid", sa.String(64), primary_key=True),
    sa.Column("published", sa.DateTime(timezone=True), nullable=True),
    sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index(None, "seen_at"),
)
