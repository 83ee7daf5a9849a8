"""One full reconcile of one target: read it, plan, guard, apply, report.

The same code serves ``scimflow sync`` and the resync DAG's per-target task. The Okta
side arrives as DataFrames (users, groups, memberships: :mod:`scimflow.okta.source`).
Two passes at most: the second only when the first created users whose manager or
group membership needed SCIM ids that did not exist yet.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from scimflow.errors import DeletionGuardError
from scimflow.scim.apply import ApplyResult, Executor, StoreLike
from scimflow.scim.client import OAuth2ClientCredentials, ScimTarget
from scimflow.scim.plan import Plan, plan_groups, plan_users

__all__ = ["TargetReport", "check_deletion_guard", "open_target", "sync_target"]


@dataclass
class TargetReport:
    """What one reconcile did (or, in a dry run, would do) to one target."""

    target: str
    dry_run: bool
    planned: dict[str, int] = field(default_factory=dict)
    applied: dict[str, int] = field(default_factory=dict)
    parked: list[tuple[str, str]] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    failed: list[tuple[str, str]] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def writes(self) -> int:
        return sum(n for k, n in self.applied.items() if not k.startswith("link"))


def open_target(config: Any, *, transport: Any = None) -> ScimTarget:
    """A :class:`ScimTarget` from a target's configuration, credentials resolved now."""
    auth = config.auth
    kind = auth.type
    headers: dict[str, str] = {}
    http_auth: Any = None
    if kind == "bearer":
        headers["Authorization"] = f"Bearer {auth.token.resolve()}"
    elif kind == "basic":
        import httpx2

        http_auth = httpx2.BasicAuth(auth.username, auth.password.resolve())
    elif kind == "oauth2":
        http_auth = OAuth2ClientCredentials(
            auth.token_url, auth.client_id, auth.client_secret.resolve(), auth.scope
        )
    target = ScimTarget(
        config.name,
        str(config.base_url),
        auth=http_auth,
        headers=headers,
        max_connections=config.concurrency,
        transport=transport,
    )
    target.discover()
    return target


def check_deletion_guard(plan: Plan, config: Any, *, force: bool) -> None:
    guard = config.deletion_guard
    managed = plan.managed_users
    if force or managed < guard.min_users or not plan.deprovisions:
        return
    if plan.deprovisions / managed > guard.max_share:
        raise DeletionGuardError(plan.target, plan.deprovisions, managed, guard.max_share)


def sync_target(
    config: Any,
    users: pd.DataFrame,
    groups: pd.DataFrame,
    memberships: pd.DataFrame,
    store: StoreLike,
    *,
    run_id: str,
    cause: str,
    dry_run: bool = False,
    force: bool = False,
    target: ScimTarget | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> TargetReport:
    """Make one target equal to the mapped Okta state (see the module docstring)."""
    from scimflow.scim.mapping import in_scope_users, map_groups, map_users

    t0 = time.monotonic()
    say = on_progress or (lambda _msg: None)
    report = TargetReport(config.name, dry_run)
    owned = target is None
    target = target or open_target(config)
    try:
        scope_ids = in_scope_users(users, memberships, groups, config.scope)
        mapped = map_users(users[users["id"].isin(list(scope_ids))], config)
        report.rejected = dict(mapped.rejected)
        for okta_id, reason in mapped.rejected.items():
            if not dry_run:
                store.park(config.name, "User", okta_id, f"mapping: {reason}", None)
        desired_groups = map_groups(groups, memberships, set(mapped.users), config)
        executor = Executor(
            target,
            store,
            run_id=run_id,
            cause=cause,
            concurrency=config.concurrency,
            requests_per_second=config.requests_per_second,
        )
        use_patch = target.capabilities.patch
        for attempt in range(2):
            say(f"{config.name}: reading users")
            actual_users = list(target.list_resources("Users"))
            links = store.links(config.name, "User")
            plan = plan_users(
                config.name,
                mapped.users,
                links,
                actual_users,
                deprovision=config.deprovision,
                use_patch=use_patch,
                unmanaged=getattr(config, "unmanaged_users", "ignore"),
            )
            check_deletion_guard(plan, config, force=force)
            if dry_run:
                report.plans.append(plan)
                _add(report.planned, plan.counts())
                break
            _add(report.planned, plan.counts())
            if plan:
                say(f"{config.name}: applying {len(plan.operations)} user operations")
                _merge(report, executor.apply(plan))
            if attempt == 1 or not any(op.action == "create" for op in plan.operations):
                break
        user_links = store.links(config.name, "User")
        if getattr(config, "push_groups", True):
            say(f"{config.name}: reading groups")
            actual_groups = list(target.list_resources("Groups"))
            pending = [
                op.okta_id for p in report.plans for op in p.operations if op.action == "create"
            ]
            gplan = plan_groups(
                config.name,
                desired_groups,
                store.links(config.name, "Group"),
                user_links,
                actual_groups,
                use_patch=use_patch,
                pending_users=pending,
            )
            _add(report.planned, gplan.counts())
            if dry_run:
                report.plans.append(gplan)
            elif gplan:
                say(f"{config.name}: applying {len(gplan.operations)} group operations")
                _merge(report, executor.apply(gplan, user_links=user_links))
    finally:
        if owned:
            target.close()
    report.seconds = time.monotonic() - t0
    return report


def _add(into: dict[str, int], counts: dict[str, int]) -> None:
    for key, n in counts.items():
        into[key] = into.get(key, 0) + n


def _merge(report: TargetReport, result: ApplyResult) -> None:
    for key, n in result.counts.items():
        report.applied[key] = report.applied.get(key, 0) + n
    report.parked += result.parked
    report.failed += result.failed
