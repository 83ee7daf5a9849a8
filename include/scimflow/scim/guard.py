"""The deletion guard: one rule, one denominator, for every path.

**The rule.** A reconcile that would deprovision (deactivate or delete) more than
``deletion_guard.max_share`` of a target's *active users* is over the guard, once the
target has at least ``deletion_guard.min_users`` active users. A target's active users
are the users scimflow pushed and has not deprovisioned (its links whose last push was
not a deprovision), plus, when the target deactivates the users it has and Okta does
not (``unmanaged_users: deactivate``), those it found active. The numerator is the
plan's deprovisions. The stream (a batch) and the resync (the whole directory) apply
the same rule to what they plan.

**The decision.** Under the guard, or forced: proceed. Over it: a full reconcile
*stops* before writing anything (:class:`~scimflow.errors.DeletionGuardError`: a broken
export must not wipe a target); a batch *parks* the deprovisions with kind ``guard`` and
applies the rest (one bad burst must not stop the stream). The parked deprovisions are
applied by a forced resync once someone has checked Okta.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

from scimflow.scim.plan import DEPROVISIONED_HASH
from scimflow.scim.report import GuardDecision

if TYPE_CHECKING:
    from scimflow.scim.config import DeletionGuardConfig
    from scimflow.scim.plan import LinkLike, Plan

__all__ = ["active_users", "decide"]


def active_users(links: Mapping[str, LinkLike], plan: Plan) -> int:
    """The guard's denominator: active linked users, plus the unmanaged ones the plan
    would deactivate (only planned under ``unmanaged_users: deactivate``)."""
    pushed = sum(1 for link in links.values() if link.pushed_hash != DEPROVISIONED_HASH)
    unmanaged = sum(1 for op in plan.operations if op.okta_id.startswith("unmanaged:"))
    return pushed + unmanaged


def decide(
    guard: DeletionGuardConfig,
    plan: Plan,
    active: int,
    *,
    on_exceed: Literal["stop", "park"],
    force: bool = False,
) -> GuardDecision:
    """Proceed, stop or park (see the module docstring)."""
    n = plan.deprovisions
    over = bool(n) and active >= guard.min_users and n / max(active, 1) > guard.max_share
    decision: Literal["proceed", "stop", "park"] = on_exceed if over and not force else "proceed"
    return GuardDecision(decision, n, active, guard.max_share, forced=force and over)
