"""Applying plans to the in-memory model target until it converges, and checking it did:
shared by the planner and executor tests."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Literal

from scimflow.scim.apply import ApplyResult, Executor
from scimflow.scim.plan import Plan, plan_users, user_changes
from scimflow.scim.reconcile import apply_user_plan

from tests.support.desired import DEPTS, TITLES, Desired, desired_user
from tests.support.model_target import MemoryStore, ModelTarget


def converge(
    target: ModelTarget,
    store: MemoryStore,
    desired: dict[str, Desired],
    *,
    rounds: int = 1,
    unmanaged: Literal["ignore", "deactivate"] = "ignore",
    deprovision: Literal["deactivate", "delete"] = "deactivate",
) -> list[Plan]:
    plans = []
    for _ in range(rounds):
        plan = plan_users(
            target.name,
            desired,
            store.links(target.name, "User"),
            list(target.list_resources("Users")),
            deprovision=deprovision,
            use_patch=target.capabilities.patch,
            unmanaged=unmanaged,
        )
        plans.append(plan)
        if not plan:
            break
        Executor(
            target,
            store,
            run_id="test",
            cause="test",
            concurrency=3,
        ).apply(plan)
    return plans


def assert_converged(target: ModelTarget, desired: dict[str, Desired], store: MemoryStore) -> None:
    users = list(target.list_resources("Users"))
    names = Counter(str(u.get("userName", "")).lower() for u in users)
    assert all(n == 1 for n in names.values()), f"duplicated users: {names}"
    by_name = {str(u["userName"]).lower(): u for u in users}
    for d in desired.values():
        resource = by_name[d.payload["userName"].lower()]
        assert user_changes(d.payload, resource) == [], d.okta_id
    links = store.links(target.name, "User")
    for okta_id, link in links.items():
        if okta_id not in desired:
            assert target.resources["Users"].get(link.scim_id, {}).get("active") in (False, None)


def managed(managers: dict[int, int | None], n: int | None = None) -> dict[str, Desired]:
    """Users 0..n-1 (or the keys of ``managers``), user i managed by ``managers[i]``."""
    ids = range(n) if n is not None else sorted(managers)
    out = {}
    for i in ids:
        boss = managers.get(i)
        d = desired_user(i, TITLES[i % 3], DEPTS[i % 2], True)
        out[d.okta_id] = replace(d, manager_okta_id=None if boss is None else f"00u{boss}")
    return out


def sync_users(
    target: ModelTarget, store: MemoryStore, desired: dict[str, Desired]
) -> tuple[Plan, ApplyResult]:
    """What the engine does for users: one plan against the actual state, in waves."""
    plan = plan_users(
        target.name,
        desired,
        store.links(target.name, "User"),
        list(target.list_resources("Users")),
        use_patch=target.capabilities.patch,
    )
    executor = Executor(target, store, run_id="test", cause="test", concurrency=1)
    result = apply_user_plan(
        executor,
        plan,
        lambda: store.links(target.name, "User"),
        use_patch=target.capabilities.patch,
    )
    return plan, result
