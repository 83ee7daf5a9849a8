"""Planner and executor rules on the in-memory model target: links, parking, deprovisioning,
groups, determinism, PATCH or PUT."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from scimflow.scim.apply import Executor
from scimflow.scim.plan import (
    ENTERPRISE,
    plan_groups,
    plan_users,
)

from tests.support.converge import converge
from tests.support.desired import TITLES, DesiredGroup, desired_user
from tests.support.model_target import MemoryStore, ModelTarget


def test_a_409_links_the_existing_user_instead_of_duplicating() -> None:
    target, store = ModelTarget(), MemoryStore()
    existing = target.create("Users", {"userName": "USER1@example.com", "title": "Old"})["id"]
    d = desired_user(1, "Engineer", "Sales", True)
    # the plan sees no actual state (stream mode), so it plans a create that meets a 409
    plan = plan_users("model", {d.okta_id: d}, {}, None)
    assert [op.action for op in plan.operations] == ["create"]
    result = Executor(target, store, run_id="r", cause="c").apply(plan)
    assert result.counts == Counter({"create:linked": 1})
    assert store.links("model", "User")["00u1"].scim_id == existing
    assert len(target.resources["Users"]) == 1
    assert target.resources["Users"][existing]["title"] == "Engineer"


def test_a_rejected_user_is_parked_and_the_rest_go_through() -> None:
    target, store = ModelTarget(reject_user_names=["user2@example.com"]), MemoryStore()
    desired = {d.okta_id: d for d in (desired_user(i, "Engineer", "Sales", True) for i in range(4))}
    converge(target, store, desired)
    assert ("model", "User", "00u2") in store.parked_rows
    assert "400" in store.parked_rows[("model", "User", "00u2")]
    assert sorted(store.links("model", "User")) == ["00u0", "00u1", "00u3"]
    parked = [e for e in store.audit_rows if e.outcome == "parked"]
    assert [e.okta_id for e in parked] == ["00u2"]


def test_delete_mode_deletes_and_deactivate_mode_deactivates() -> None:
    for mode in ("deactivate", "delete"):
        target, store = ModelTarget(), MemoryStore()
        desired = {
            d.okta_id: d for d in (desired_user(i, "Engineer", "Sales", True) for i in range(3))
        }
        converge(target, store, desired)
        del desired["00u1"]
        plans = converge(target, store, desired, deprovision=mode, rounds=2)
        assert [op.action for op in plans[0].operations] == [mode]
        names = {u["userName"]: u for u in target.list_resources("Users")}
        if mode == "delete":
            assert "user1@example.com" not in names and "00u1" not in store.links("model", "User")
        else:
            assert names["user1@example.com"]["active"] is False
        assert not plans[1]


def test_unmanaged_users_are_deactivated_only_when_the_policy_says_so() -> None:
    target, store = ModelTarget(), MemoryStore()
    desired = {d.okta_id: d for d in (desired_user(i, "Engineer", "Sales", True) for i in range(2))}
    converge(target, store, desired)
    local = target.create("Users", {"userName": "admin@example.com", "active": True})["id"]
    assert not plan_users(
        "model", desired, store.links("model", "User"), list(target.list_resources("Users"))
    )
    plan = plan_users(
        "model",
        desired,
        store.links("model", "User"),
        list(target.list_resources("Users")),
        unmanaged="deactivate",
    )
    assert [(op.action, op.scim_id) for op in plan.operations] == [("deactivate", local)]


def test_groups_are_created_renamed_and_their_members_follow() -> None:
    target, store = ModelTarget(), MemoryStore()
    desired = {d.okta_id: d for d in (desired_user(i, "Engineer", "Sales", True) for i in range(5))}
    converge(target, store, desired)
    groups = {"00g1": DesiredGroup("00g1", "Engineering", frozenset({"00u0", "00u1", "00u2"}))}

    def sync_groups() -> Any:
        plan = plan_groups(
            "model",
            groups,
            store.links("model", "Group"),
            store.links("model", "User"),
            list(target.list_resources("Groups")),
        )
        Executor(target, store, run_id="r", cause="c").apply(
            plan, user_links=store.links("model", "User")
        )
        return plan

    first = sync_groups()
    assert first.counts() == {"group_create": 1}  # its members in the POST
    links = store.links("model", "User")
    (group,) = target.list_resources("Groups")
    assert {m["value"] for m in group["members"]} == {
        links[u].scim_id for u in ("00u0", "00u1", "00u2")
    }
    assert not sync_groups()  # converged

    groups["00g1"] = DesiredGroup("00g1", "Platform", frozenset({"00u1", "00u3"}))
    second = sync_groups()
    assert second.counts() == {"group_update": 1, "members_add": 1, "members_remove": 1}
    (group,) = target.list_resources("Groups")
    assert group["displayName"] == "Platform"
    assert {m["value"] for m in group["members"]} == {links[u].scim_id for u in ("00u1", "00u3")}
    assert not sync_groups()

    del groups["00g1"]
    assert sync_groups().counts() == {"group_delete": 1}
    assert list(target.list_resources("Groups")) == []


def test_plans_are_deterministic() -> None:
    desired = {
        d.okta_id: d
        for d in (desired_user(i, TITLES[i % 3], "Sales", i % 2 == 0) for i in range(30))
    }
    a = plan_users("t", desired, {}, [])
    b = plan_users("t", dict(reversed(list(desired.items()))), {}, [])
    assert a == b
    assert [op.okta_id for op in a.operations] == sorted(desired)


@pytest.mark.parametrize("patch", [True, False])
def test_updates_use_patch_when_supported_else_put(patch: bool) -> None:
    target, store = ModelTarget(patch=patch), MemoryStore()
    d = desired_user(1, "Engineer", "Sales", True)
    converge(target, store, {d.okta_id: d})
    changed = desired_user(1, "Manager", "Research", True)
    plan = plan_users(
        "model",
        {d.okta_id: changed},
        store.links("model", "User"),
        list(target.list_resources("Users")),
        use_patch=patch,
    )
    (op,) = plan.operations
    assert op.action == "update"
    if patch:
        assert [c["path"] for c in op.patch] == ["title", f"{ENTERPRISE}:department"]
    else:
        assert op.patch == ()
    converge(target, store, {d.okta_id: changed})
    (user,) = target.list_resources("Users")
    assert user["title"] == "Manager" and user[ENTERPRISE]["department"] == "Research"


# -- managers: one write per user on a first run ------------------------------------------
