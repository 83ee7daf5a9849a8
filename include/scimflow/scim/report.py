"""What one reconcile of one target did: :class:`TargetReport`.

The same numbers whichever path made the change (the resync, a stream batch,
``scimflow sync``): the CLI prints :meth:`TargetReport.rows`, the DAG tasks return
:meth:`TargetReport.to_xcom`, the logs get :meth:`TargetReport.summary`, and the audit
log gets one ``summary`` row of it per applied reconcile. Counts and ids only, never a
profile value.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from scimflow.state.store import ParkKind

if TYPE_CHECKING:
    from scimflow.scim.plan import Plan

__all__ = ["GuardDecision", "ParkKind", "TargetReport"]

# actions that only record a link: no request changes the target
LINK_ONLY = frozenset({"link", "group_link"})
# results that mean the operation took effect
DONE = frozenset({"applied", "linked"})


@dataclass(frozen=True)
class GuardDecision:
    """The deletion guard's decision for one reconcile (see :mod:`scimflow.scim.guard`)."""

    decision: Literal["proceed", "stop", "park"]
    deprovisions: int
    active_users: int
    max_share: float
    forced: bool = False

    def to_xcom(self) -> dict[str, object]:
        return {
            "decision": self.decision,
            "deprovisions": self.deprovisions,
            "active_users": self.active_users,
            "max_share": self.max_share,
            "forced": self.forced,
        }


@dataclass
class TargetReport:
    """What one reconcile did (in a dry run: would do) to one target.

    ``planned`` counts operations by action; ``results`` by ``action:result`` (result:
    applied, linked, parked, failed); ``parked`` counts the records parked in this
    reconcile by :class:`ParkKind` (bad records, guarded deprovisions, refused writes);
    ``released`` the parked records it let go (written, or equal already).
    """

    target_name: str
    scope: Literal["full", "batch"]
    dry_run: bool
    planned: Counter[str] = field(default_factory=Counter)
    results: Counter[str] = field(default_factory=Counter)
    parked: Counter[str] = field(default_factory=Counter)
    released: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    guard: GuardDecision | None = None
    seconds: float = 0.0
    # seconds per stage, for benchmarks and logs (read_users, plan_users, apply_users, ...)
    stages: dict[str, float] = field(default_factory=dict)
    # the plans themselves, kept in a dry run only (to print them)
    plans: list[Plan] = field(default_factory=list)
    unavailable: str | None = None

    @property
    def writes(self) -> int:
        """Operations that changed the target (a link after a 409 made a PUT: counted)."""
        return sum(
            n
            for key, n in self.results.items()
            if key.partition(":")[2] in DONE and key.partition(":")[0] not in LINK_ONLY
        )

    def done(self, *actions: str) -> int:
        """How many operations of these actions took effect as planned ("applied")."""
        return sum(self.results[f"{a}:applied"] for a in actions)

    @property
    def linked(self) -> int:
        """Users linked to an existing resource: in sync already, or after a 409."""
        return self.results["link:linked"] + self.results["create:linked"]

    def parked_total(self) -> int:
        return sum(self.parked.values())

    def park(self, kind: ParkKind, n: int = 1) -> None:
        if n:
            self.parked[ParkKind(kind).value] += n

    def rows(self) -> dict[str, int]:
        """The numbers a table shows: a dry run's planned operations, else what happened."""
        if self.dry_run:
            p = self.planned
            return {
                "created": p["create"],
                "linked": p["link"],
                "updated": p["update"],
                "deactivated": p["deactivate"],
                "deleted": p["delete"],
                "groups": p["group_create"] + p["group_update"] + p["group_delete"],
                "members": p["members_add"] + p["members_remove"],
                "parked": self.parked_total(),
                "failed": 0,
            }
        return {
            "created": self.done("create"),
            "linked": self.linked,
            "updated": self.done("update"),
            "deactivated": self.done("deactivate"),
            "deleted": self.done("delete"),
            "groups": self.done("group_create", "group_update", "group_delete")
            + self.results["group_create:linked"],
            "members": self.done("members_add", "members_remove"),
            "parked": self.parked_total(),
            "failed": len(self.failed),
        }

    def summary(self) -> str:
        """One log line."""
        mode = "dry run" if self.dry_run else "applied"
        counts = ", ".join(f"{k} {v}" for k, v in self.rows().items() if v) or "nothing to do"
        guard = f"; deletion guard: {self.guard.decision}" if self.guard else ""
        return (
            f"{self.target_name} ({self.scope}, {mode}): {counts}; writes {self.writes}"
            f"{guard}; {self.seconds:.2f} s"
        )

    def to_xcom(self, *, plan_lines: int = 200) -> dict[str, object]:
        """The report as JSON for XCom: counts, ids and reasons (no profile values)."""
        lines = [
            f"{op.action} {op.kind} {op.okta_id} {op.reason}".strip()
            for p in self.plans
            for op in p.operations
        ]
        return {
            "target": self.target_name,
            "scope": self.scope,
            "dry_run": self.dry_run,
            "planned": dict(sorted(self.planned.items())),
            "results": dict(sorted(self.results.items())),
            "rows": self.rows(),
            "writes": self.writes,
            "parked": dict(sorted(self.parked.items())),
            "released": self.released,
            "failed": len(self.failed),
            "guard": self.guard.to_xcom() if self.guard else None,
            "unavailable": self.unavailable,
            "seconds": round(self.seconds, 2),
            "stages": self.stages,
            "plan": lines[:plan_lines],
        }
