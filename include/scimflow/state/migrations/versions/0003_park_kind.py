"""Parked records get a kind: why they are parked, as a column, not a reason's prefix.

The kinds (:class:`scimflow.state.store.ParkKind`): ``quarantined`` (failed validation),
``rejected`` (the mapping refused it), ``guard`` (a deprovision the deletion guard held),
``unavailable`` (its target could not be reached), ``target-error`` (the target refused
the write for good). Existing rows are converted from the prefixes their reasons had;
this is the last place those prefixes are read.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = "park_kind IN ('quarantined', 'rejected', 'guard', 'unavailable', 'target-error')"
# the reason prefixes written before this revision, and the kind each meant
PREFIXES = (
    ("validation:", "quarantined"),
    ("mapping:", "rejected"),
    ("deletion guard", "guard"),
    ("target unavailable", "unavailable"),
)


def upgrade() -> None:
    with op.batch_alter_table("scimflow_parked") as batch:
        batch.add_column(sa.Column("park_kind", sa.String(16), nullable=True))
    parked = sa.table("scimflow_parked", sa.column("reason"), sa.column("park_kind"))
    for prefix, kind in PREFIXES:
        op.execute(
            parked.update()
            .where(parked.c.park_kind.is_(None), parked.c.reason.like(prefix + "%"))
            .values(park_kind=kind)
        )
    op.execute(parked.update().where(parked.c.park_kind.is_(None)).values(park_kind="target-error"))
    with op.batch_alter_table("scimflow_parked") as batch:
        batch.alter_column("park_kind", existing_type=sa.String(16), nullable=False)
        batch.create_check_constraint("park_kind", KINDS)


def downgrade() -> None:
    with op.batch_alter_table("scimflow_parked") as batch:
        batch.drop_constraint("ck_scimflow_parked_park_kind", type_="check")
        batch.drop_column("park_kind")
