"""One full reconcile of one target: read it, plan, guard, apply, report.

The same code serves ``scimflow sync`` and the resync DAG's per-target task. The Okta
side arrives as DataFrames (users, groups, memberships: :mod:`scimflow.okta.source`).
One plan for the users, applied wave by wave (:func:`apply_user_plan`) so that a user
created with a manager created in the same run carries the manager's new SCIM id in its
one create; then the groups, whose members are the users' SCIM ids.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from scimflow.errors import DeletionGuardError
from scimflow.scim.apply import ApplyResult, Executor, StoreLike
from scimflow.scim.client import OAuth2ClientCredentials, ScimTarget
from scimflow.scim.plan import (
    DEPROVISIONED_HASH,
    LinkLike,
    LinksView,
    Operation,
    Plan,
    managed_view,
    manager_followup,
    plan_groups,
    plan_users,
    resolve_manager,
)

__all__ = [
    "TargetReport",
    "apply_user_plan",
    "check_deletion_guard",
    "exceeds_deletion_guard",
    "open_target",
    "sync_target",
]


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
    # seconds per stage (for benchmarks and logs): map; read_users (alongside map) and
    # wait_read_users (the part of it map did not hide); plan_users, apply_users,
    # read_groups, plan_groups, apply_groups
    stages: dict[str, float] = field(default_factory=dict)

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


def exceeds_deletion_guard(guard: Any, deprovisions: int, managed: int) -> bool:
    """Whether deprovisioning that many of ``managed`` users passes the target's
    ``deletion_guard`` (``max_share``, enforced from ``min_users`` managed users on)."""
    if not deprovisions or managed < guard.min_users:
        return False
    return bool(deprovisions / managed > guard.max_share)


def check_deletion_guard(plan: Plan, config: Any, *, force: bool) -> None:
    guard = config.deletion_guard
    managed = plan.managed_users
    if not force and exceeds_deletion_guard(guard, plan.deprovisions, managed):
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
    hold: Collection[str] = (),
) -> TargetReport:
    """Make one target equal to the mapped Okta state (see the module docstring).

    ``hold``: Okta ids (users or groups) whose resources stay as they are, never
    deprovisioned for being absent from ``users`` or ``groups`` (records quarantined
    by validation); users the mapping rejects are held too. A held user that is
    linked keeps its group memberships.
    """
    from scimflow.scim.mapping import in_scope_users, map_groups, map_users

    t0 = time.monotonic()
    say = on_progress or (lambda _msg: None)
    report = TargetReport(config.name, dry_run)
    owned = target is None
    target = target or open_target(config)
    clock = [time.monotonic()]

    def lap(stage: str) -> None:
        now = time.monotonic()
        report.stages[stage] = round(report.stages.get(stage, 0.0) + now - clock[0], 3)
        clock[0] = now

    # The target's users are read while the Okta side is mapped: the read waits on the
    # target, the mapping on this process's CPU.
    say(f"{config.name}: reading users")
    reader = ThreadPoolExecutor(1, thread_name_prefix=f"read-{config.name}")

    def read_users() -> list[dict[str, Any]]:
        started = time.monotonic()
        found = [managed_view(r) for r in target.list_resources("Users")]
        report.stages["read_users"] = round(time.monotonic() - started, 3)
        return found

    reading = reader.submit(read_users)
    try:
        scope_ids = in_scope_users(users, memberships, groups, config.scope)
        mapped = map_users(users[users["id"].isin(list(scope_ids))], config)
        report.rejected = dict(mapped.rejected)
        for okta_id, reason in mapped.rejected.items():
            if not dry_run:
                store.park(config.name, "User", okta_id, f"mapping: {reason}", None)
        executor = Executor(
            target,
            store,
            run_id=run_id,
            cause=cause,
            concurrency=config.concurrency,
            requests_per_second=config.requests_per_second,
        )
        use_patch = target.capabilities.patch
        lap("map")
        actual_users = reading.result()
        lap("wait_read_users")  # what the mapping did not hide of the read
        links = store.links(config.name, "User")
        held = set(hold) | set(mapped.rejected)
        plan = plan_users(
            config.name,
            mapped.users,
            LinksView(links, hold=held) if held else links,
            actual_users,
            deprovision=config.deprovision,
            use_patch=use_patch,
            unmanaged=getattr(config, "unmanaged_users", "ignore"),
        )
        del actual_users
        lap("plan_users")
        check_deletion_guard(plan, config, force=force)
        _add(report.planned, plan.counts())
        if dry_run:
            report.plans.append(plan)
        elif plan:
            say(f"{config.name}: applying {len(plan.operations)} user operations")
            _merge(
                report,
                apply_user_plan(
                    executor,
                    plan,
                    lambda: store.links(config.name, "User"),
                    use_patch=use_patch,
                ),
            )
        del plan
        lap("apply_users")
        user_links = store.links(config.name, "User")
        # a held user that was pushed keeps its memberships
        kept = {
            u
            for u in held
            if (link := links.get(u)) is not None and link.pushed_hash != DEPROVISIONED_HASH
        }
        del links
        if getattr(config, "push_groups", True):
            desired_groups = map_groups(groups, memberships, set(mapped.users) | kept, config)
            group_links = store.links(config.name, "Group")
            say(f"{config.name}: reading groups")
            actual_groups = list(target.list_resources("Groups"))
            lap("read_groups")
            pending = [
                op.okta_id for p in report.plans for op in p.operations if op.action == "create"
            ]
            gplan = plan_groups(
                config.name,
                desired_groups,
                LinksView(group_links, hold=held) if held else group_links,
                user_links,
                actual_groups,
                use_patch=use_patch,
                pending_users=pending,
            )
            del actual_groups
            lap("plan_groups")
            _add(report.planned, gplan.counts())
            if dry_run:
                report.plans.append(gplan)
            elif gplan:
                say(f"{config.name}: applying {len(gplan.operations)} group operations")
                _merge(report, executor.apply(gplan, user_links=user_links))
            lap("apply_groups")
    finally:
        reader.shutdown(wait=False, cancel_futures=True)
        if owned:
            target.close()
    report.seconds = time.monotonic() - t0
    return report


def apply_user_plan(
    executor: Executor,
    plan: Plan,
    links: Callable[[], Mapping[str, LinkLike]],
    *,
    use_patch: bool = True,
) -> ApplyResult:
    """Apply a user plan wave by wave; then set the managers a cycle left out.

    Before each wave whose operations wait for a manager created earlier, ``links()``
    (the target's user links, read from the state store) gives the managers' new SCIM
    ids, which :func:`~scimflow.scim.plan.resolve_manager` puts in. An operation still
    without its manager after the last wave (a manager cycle, or a manager whose create
    was parked or failed) gets the one-attribute follow-up update of
    :func:`~scimflow.scim.plan.manager_followup` when its manager exists by then.
    """
    total = ApplyResult(plan.target)
    left_out: list[Operation] = []
    for number, wave in enumerate(plan.waves()):
        if number and any(op.manager is not None for op in wave):
            known = links()
            wave = tuple(resolve_manager(op, known) for op in wave)
            del known
        left_out += [op for op in wave if op.manager is not None]
        total.merge(executor.apply(Plan(plan.target, wave, managed_users=plan.managed_users)))
    if left_out:
        known = links()
        followups = tuple(
            f for op in left_out if (f := manager_followup(op, known, use_patch=use_patch))
        )
        if followups:
            total.merge(executor.apply(Plan(plan.target, followups, plan.managed_users)))
    return total


def _add(into: dict[str, int], counts: dict[str, int]) -> None:
    for key, n in counts.items():
        into[key] = into.get(key, 0) + n


def _merge(report: TargetReport, result: ApplyResult) -> None:
    for key, n in result.counts.items():
        report.applied[key] = report.applied.get(key, 0) + n
    report.parked += result.parked
    report.failed += result.failed
