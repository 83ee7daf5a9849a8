"""The Okta event uuids the stream has processed, for the System Log catch-up.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "scimflow_seen_events",
        sa.Column("uuid", sa.String(64), nullable=False),
        sa.Column("published", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("uuid", name="pk_scimflow_seen_events"),
    )
    op.create_index("ix_scimflow_seen_events_seen_at", "scimflow_seen_events", ["seen_at"])


def downgrade() -> None:
    op.drop_index("ix_scimflow_seen_events_seen_at", table_name="scimflow_seen_events")
    op.drop_table("scimflow_seen_events")
