"""The initial state store: links, parked records, the audit log and its head anchor.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written out in full rather than built from :mod:`scimflow.state.tables`, so that later
changes to the tables never change what this revision did.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "scimflow_links",
        sa.Column("target", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("okta_id", sa.String(64), nullable=False),
        sa.Column("scim_id", sa.String(255), nullable=False),
        sa.Column("pushed_hash", sa.String(64), nullable=True),
        sa.Column("pushed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("target", "kind", "okta_id", name="pk_scimflow_links"),
        sa.UniqueConstraint(
            "target", "kind", "scim_id", name="uq_scimflow_links_target_kind_scim_id"
        ),
        sa.CheckConstraint("kind IN ('User', 'Group')", name="ck_scimflow_links_kind"),
    )
    op.create_table(
        "scimflow_parked",
        sa.Column("target", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("okta_id", sa.String(300), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("first_parked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_parked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("target", "kind", "okta_id", name="pk_scimflow_parked"),
        sa.CheckConstraint("kind IN ('User', 'Group')", name="ck_scimflow_parked_kind"),
    )
    op.create_table(
        "scimflow_audit",
        sa.Column("seq", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("cause", sa.Text, nullable=False),
        sa.Column("target", sa.String(100), nullable=False),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("okta_id", sa.String(300), nullable=False),
        sa.Column("scim_id", sa.String(255), nullable=True),
        sa.Column("request", sa.Text, nullable=True),
        sa.Column("status", sa.Integer, nullable=True),
        sa.Column("response", sa.Text, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_scimflow_audit"),
    )
    op.create_index("ix_scimflow_audit_target_seq", "scimflow_audit", ["target", "seq"])
    op.create_table(
        "scimflow_audit_head",
        sa.Column("id", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_scimflow_audit_head"),
        sa.CheckConstraint("id = 1", name="ck_scimflow_audit_head_one_row"),
    )


def downgrade() -> None:
    op.drop_table("scimflow_audit_head")
    op.drop_index("ix_scimflow_audit_target_seq", table_name="scimflow_audit")
    op.drop_table("scimflow_audit")
    op.drop_table("scimflow_parked")
    op.drop_table("scimflow_links")
