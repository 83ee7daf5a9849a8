"""Planner and executor against the in-memory model target: convergence properties."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scimflow.errors import ScimTransientError, TargetUnavailableError
from scimflow.okta.source import groups_frame, memberships_frame, users_frame
from scimflow.scim.apply import Executor
from scimflow.scim.config import TargetConfig
from scimflow.scim.desired import OktaFrames, Quarantine, build_desired
from scimflow.scim.plan import (
    ENTERPRISE,
    LinksView,
    fingerprint,
    managed_view,
    plan_groups,
    plan_users,
    user_changes,
    with_manager,
)
from scimflow.scim.reconcile import Full, apply_user_plan, reconcile

from tests.support.desired import DEPTS, TITLES, Desired, DesiredGroup, desired_user
from tests.support.model_target import MemoryStore, ModelTarget


def converge(
    target: ModelTarget,
    store: MemoryStore,
    desired: dict[str, Desired],
    *,
    rounds: int = 1,
    unmanaged: str = "ignore",
    deprovision: str = "deactivate",
) -> list[Any]:
    plans = []
    for _ in range(rounds):
        plan = plan_users(
            target.name,
            desired,
            store.links(target.name, "User"),
            list(target.list_resources("Users")),
            deprovision=deprovision,  # type: ignore[arg-type]
            use_patch=target.capabilities.patch,
            unmanaged=unmanaged,
        )  # type: ignore[arg-type]
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


population = st.dictionaries(
    st.integers(0, 15),
    st.tuples(st.sampled_from(TITLES), st.sampled_from(DEPTS), st.booleans()),
    max_size=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=population,
    second=population,
    edits=st.lists(st.integers(0, 15), max_size=4),
    deletes=st.lists(st.integers(0, 15), max_size=3),
    handmade=st.lists(st.integers(0, 20), max_size=3),
    patch=st.booleans(),
)
def test_applying_a_plan_yields_the_desired_state_and_then_nothing_to_do(
    first: dict[int, Any],
    second: dict[int, Any],
    edits: list[int],
    deletes: list[int],
    handmade: list[int],
    patch: bool,
) -> None:
    target, store = ModelTarget(patch=patch), MemoryStore()
    converge(target, store, {d.okta_id: d for i, v in first.items() for d in [desired_user(i, *v)]})
    # drift made by hand in the target
    by_ext = {u.get("externalId"): u["id"] for u in target.list_resources("Users")}
    for i in edits:
        if f"00u{i}" in by_ext:
            target.resources["Users"][by_ext[f"00u{i}"]]["title"] = "Edited by hand"
    for i in deletes:
        if f"00u{i}" in by_ext:
            target.resources["Users"].pop(by_ext[f"00u{i}"], None)
    for i in handmade:  # a user made by hand: same userName as an Okta user (linked), or not
        if not any(
            u["userName"].lower() == f"user{i}@example.com" for u in target.list_resources("Users")
        ):
            target.create("Users", {"userName": f"USER{i}@example.com", "title": "Hand"})
    desired = {d.okta_id: d for i, v in second.items() for d in [desired_user(i, *v)]}

    plans = converge(target, store, desired, rounds=2)
    assert_converged(target, desired, store)
    assert not plans[-1], f"not converged in one plan: {plans[-1].counts()}"


@settings(max_examples=60, deadline=None)
@given(first=population, second=population, handmade=st.lists(st.integers(100, 120), max_size=3))
def test_a_plan_never_deprovisions_outside_its_scope(
    first: dict[int, Any], second: dict[int, Any], handmade: list[int]
) -> None:
    target, store = ModelTarget(), MemoryStore()
    converge(target, store, {d.okta_id: d for i, v in first.items() for d in [desired_user(i, *v)]})
    outsiders = {
        target.create("Users", {"userName": f"local{i}@example.com"})["id"] for i in set(handmade)
    }
    linked = {link.scim_id for link in store.links("model", "User").values()}
    desired = {d.okta_id: d for i, v in second.items() for d in [desired_user(i, *v)]}
    plan = plan_users(
        "model", desired, store.links("model", "User"), list(target.list_resources("Users"))
    )
    for op in plan.operations:
        if op.deprovisions:
            assert op.scim_id in linked and op.scim_id not in outsiders
            assert op.okta_id not in desired


@settings(max_examples=40, deadline=None)
@given(users=population, seed=st.integers(0, 10_000))
def test_retried_operations_converge_whatever_fails_when(users: dict[int, Any], seed: int) -> None:
    target, store = ModelTarget(fail_rate=0.3, seed=seed), MemoryStore()
    desired = {d.okta_id: d for i, v in users.items() for d in [desired_user(i, *v)]}
    converge(target, store, desired, rounds=6)
    target.fail_rate = 0.0
    final = converge(target, store, desired, rounds=2)
    assert_converged(target, desired, store)
    assert not final[-1]


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
def managed(managers: dict[int, int | None], n: int | None = None) -> dict[str, Desired]:
    """Users 0..n-1 (or the keys of ``managers``), user i managed by ``managers[i]``."""
    ids = range(n) if n is not None else sorted(managers)
    out = {}
    for i in ids:
        boss = managers.get(i)
        d = desired_user(i, TITLES[i % 3], DEPTS[i % 2], True)
        out[d.okta_id] = replace(d, manager_okta_id=None if boss is None else f"00u{boss}")
    return out


def sync_users(target: ModelTarget, store: MemoryStore, desired: dict[str, Desired]) -> Any:
    """What ``sync_target`` does for users: one plan against the actual state, in waves."""
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


def assert_managers_written(
    target: ModelTarget, store: MemoryStore, desired: dict[str, Desired]
) -> None:
    """Each user's manager is its manager's SCIM id; links, hashes and audit agree with it."""
    links = store.links(target.name, "User")
    last_request: dict[str, dict[str, Any]] = {}
    for entry in store.audit_rows:
        assert entry.outcome == "applied", entry
        last_request[entry.okta_id] = entry.request
    for okta_id, d in desired.items():
        resource = target.resources["Users"][links[okta_id].scim_id]
        boss = d.manager_okta_id
        want = {"value": links[boss].scim_id} if boss in links else None
        assert (resource.get(ENTERPRISE) or {}).get("manager") == want, okta_id
        payload, digest = with_manager(d, links)
        assert user_changes(payload, resource) == []
        assert links[okta_id].pushed_hash == digest == fingerprint(payload), okta_id
        if last_request[okta_id].get("Operations") is None:  # a create or a PUT: all of it
            assert last_request[okta_id] == payload


@pytest.mark.parametrize("patch", [True, False])
def test_a_first_run_writes_each_user_once_when_managers_form_a_tree(patch: bool) -> None:
    # a five-level tree: 0 manages 1-2, they manage 3-6, ... and 40-44 have no manager
    tree = {i: (i - 1) // 2 if i else None for i in range(40)}
    desired = managed(tree, 45)
    target, store = ModelTarget(patch=patch), MemoryStore()
    plan, result = sync_users(target, store, desired)
    assert plan.counts() == {"create": 45}
    assert [len(w) for w in plan.waves()] == [6, 2, 4, 8, 16, 9]
    assert target.writes == 45
    assert dict(result.counts) == {"create:applied": 45}
    assert_managers_written(target, store, desired)
    again, _ = sync_users(target, store, desired)
    assert not again
    # the stream's path (stored hashes, no read of the target) agrees: nothing to do
    assert not plan_users("model", desired, store.links("model", "User"), None)


def test_an_emulator_like_org_is_written_once_and_a_second_plan_is_empty() -> None:
    rng = random.Random(7)
    managers = {
        i: rng.randrange(0, 10) if i >= 10 and rng.random() < 0.9 else None for i in range(200)
    }
    desired = managed(managers)
    target, store = ModelTarget(), MemoryStore()
    sync_users(target, store, desired)
    assert target.writes == 200
    assert_managers_written(target, store, desired)
    assert not sync_users(target, store, desired)[0]


def test_a_manager_cycle_converges_with_one_followup_update() -> None:
    # 0 and 1 manage each other; 2 manages herself; 3 -> 4 -> 5 -> 3; 6 reports to 1
    desired = managed({0: 1, 1: 0, 2: 2, 3: 4, 4: 5, 5: 3, 6: 1, 7: None})
    target, store = ModelTarget(), MemoryStore()
    plan, result = sync_users(target, store, desired)
    assert plan.counts() == {"create": 8}
    # broken at the smallest id of each loop: 00u0, 00u2, 00u3 are created without manager
    first = {op.okta_id for op in plan.waves()[0]}
    assert first == {"00u0", "00u2", "00u3", "00u7"}
    assert dict(result.counts) == {"create:applied": 8, "update:applied": 3}
    assert target.writes == 8 + 3
    assert_managers_written(target, store, desired)
    assert not sync_users(target, store, desired)[0]
    assert not plan_users("model", desired, store.links("model", "User"), None)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    managers=st.dictionaries(st.integers(0, 12), st.one_of(st.none(), st.integers(0, 14))),
    existing=st.sets(st.integers(0, 12), max_size=5),
    patch=st.booleans(),
)
def test_any_manager_graph_converges_in_one_run_with_at_most_one_extra_write_per_loop(
    managers: dict[int, int | None], existing: set[int], patch: bool
) -> None:
    """Managers anywhere (unknown ones, loops, self); some users exist already, unmanaged."""
    desired = managed(managers)
    target, store = ModelTarget(patch=patch), MemoryStore()
    # some users exist already, without their manager (made by hand, or by an old run)
    converge(
        target,
        store,
        {k: replace(v, manager_okta_id=None) for k, v in desired.items() if int(k[3:]) in existing},
    )
    before = target.writes
    plan, _ = sync_users(target, store, desired)
    written = target.writes - before
    # one write per create or update; one follow-up more per loop among the users created
    # now (broken where a create of wave 0 still waits), and per user equal but for a
    # manager created now (a link op that waits)
    writes = [op for op in plan.operations if op.action in ("create", "update")]
    loops = [op for op in plan.operations if op.action == "create" and op.manager and not op.wave]
    waiting_links = [op for op in plan.operations if op.action == "link" and op.manager]
    assert written <= len(writes) + len(loops) + len(waiting_links)
    assert all(n <= 2 for n in Counter(e.okta_id for e in store.audit_rows[-written:]).values())
    assert_managers_written_loosely(target, store, desired)
    assert not sync_users(target, store, desired)[0]
    assert not plan_users("model", desired, store.links("model", "User"), None)


def assert_managers_written_loosely(
    target: ModelTarget, store: MemoryStore, desired: dict[str, Desired]
) -> None:
    links = store.links(target.name, "User")
    for okta_id, d in desired.items():
        resource = target.resources["Users"][links[okta_id].scim_id]
        payload, digest = with_manager(d, links)
        assert user_changes(payload, resource) == [], okta_id
        assert links[okta_id].pushed_hash == digest, okta_id


def test_a_plan_applied_in_one_go_still_converges_on_the_next_plan() -> None:
    """A caller that ignores waves (Executor.apply on the whole plan) writes managers later."""
    desired = managed({i: (i - 1) // 2 if i else None for i in range(15)})
    target, store = ModelTarget(), MemoryStore()
    plans = converge(target, store, desired, rounds=3)
    assert [p.counts() for p in plans] == [{"create": 15}, {"update": 14}, {}]
    assert_managers_written_loosely(target, store, desired)


def test_a_user_moved_to_a_new_manager_gets_one_update_with_the_new_manager() -> None:
    desired = managed({0: None, 1: 0, 2: 0})
    target, store = ModelTarget(), MemoryStore()
    sync_users(target, store, desired)
    before = target.writes
    # a new manager joins, and 1 and 2 now report to her
    desired.update(managed({5: None}))
    desired = {
        **desired,
        **{k: replace(desired[k], manager_okta_id="00u5") for k in ("00u1", "00u2")},
    }
    plan, _ = sync_users(target, store, desired)
    assert plan.counts() == {"create": 1, "update": 2}
    updates = [op for op in plan.operations if op.action == "update"]
    assert {op.wave for op in updates} == {1} and {op.manager for op in updates} == {"00u5"}
    assert [c["op"] for c in updates[0].patch] == ["remove"]  # until the manager exists
    assert target.writes - before == 3
    assert_managers_written_loosely(target, store, desired)
    links = store.links("model", "User")
    patched = [e.request for e in store.audit_rows[-2:]]
    assert all(
        r["Operations"]
        == [
            {
                "op": "replace",
                "path": f"{ENTERPRISE}:manager",
                "value": {"value": links["00u5"].scim_id},
            }
        ]
        for r in patched
    )
    assert not sync_users(target, store, desired)[0]


def test_relinking_after_losing_the_state_keeps_the_managers() -> None:
    """Links gone (a new state store): users are matched, and their managers with them."""
    desired = managed({i: (i - 1) // 2 if i else None for i in range(15)})
    target, store = ModelTarget(), MemoryStore()
    sync_users(target, store, desired)
    fresh = MemoryStore()
    plan, _ = sync_users(target, fresh, desired)
    assert plan.counts() == {"link": 15}
    assert not sync_users(target, fresh, desired)[0]


def test_a_manager_whose_create_is_refused_leaves_the_reports_without_one() -> None:
    desired = managed({0: None, 1: 0, 2: 1})
    target = ModelTarget(reject_user_names=["user0@example.com"])
    store = MemoryStore()
    _, result = sync_users(target, store, desired)
    assert result.parked and result.parked[0][0] == "00u0"
    assert sorted(store.links("model", "User")) == ["00u1", "00u2"]
    assert_managers_written_loosely(target, store, {k: desired[k] for k in ("00u1", "00u2")})
    assert target.writes == 2


def okta_rows(n: int) -> list[dict[str, Any]]:
    """Okta users 0..n-1; 0-2 have no manager, 3-5 report to 0, 6-8 to 1, and so on."""
    return [
        {
            "id": f"00u{i}",
            "status": "ACTIVE",
            "login": f"user{i}@example.com",
            "email": f"user{i}@example.com",
            "first_name": "Given",
            "last_name": f"Family{i}",
            "manager_id": None if i < 3 else f"00u{i // 3 - 1 if i >= 6 else 0}",
            "deleted": False,
        }
        for i in range(n)
    ]


def model_config() -> TargetConfig:
    return TargetConfig.model_validate(
        {
            "name": "model",
            "base_url": "https://model.example.com/scim/v2",
            "auth": {"type": "bearer", "token": {"env": "MODEL_TOKEN"}},
            "concurrency": 1,
        }
    )


def test_sync_target_writes_each_user_once_on_a_first_run() -> None:
    """The whole per-target task (mapping from Okta's columns, plan, waves, groups)."""
    rows = okta_rows(30)
    users = users_frame(rows)
    groups = groups_frame([{"id": "00g1", "name": "Everyone", "deleted": False}])
    members = memberships_frame([{"group_id": "00g1", "user_id": r["id"]} for r in rows])
    config = model_config()
    target, store = ModelTarget(), MemoryStore()
    desired = build_desired(config, OktaFrames(users, groups, members), Quarantine())
    report = reconcile(config, desired, store, target, scope=Full(), run_id="r", cause="c")
    assert report.parked == {} and report.failed == [], (report.parked, report.failed)
    assert report.planned == {"create": 30, "group_create": 1}
    assert report.results == {"create:applied": 30, "group_create:applied": 1}
    assert target.writes == 31  # the group's members in its POST
    links = store.links("model", "User")
    for row in rows:
        resource = target.resources["Users"][links[row["id"]].scim_id]
        boss = row["manager_id"]
        assert (resource.get(ENTERPRISE) or {}).get("manager") == (
            {"value": links[boss].scim_id} if boss else None
        )
    again = reconcile(config, desired, store, target, scope=Full(), run_id="r2", cause="c")
    assert again.results == {} and target.writes == 31


def test_the_managed_view_of_a_target_user_plans_the_same_as_the_whole_resource() -> None:
    desired = managed({i: (i - 1) // 2 if i else None for i in range(9)})
    target, store = ModelTarget(), MemoryStore()
    sync_users(target, store, desired)
    for resource in target.resources["Users"].values():  # what servers add, and drift
        resource["meta"] = {"resourceType": "User", "location": "https://x/Users/1"}
        resource["groups"] = [{"value": "g1"}]
        if ENTERPRISE in resource and "manager" in resource[ENTERPRISE]:
            resource[ENTERPRISE]["manager"]["$ref"] = "https://x/Users/2"
    target.resources["Users"][store.links("model", "User")["00u3"].scim_id]["title"] = "Hand"
    whole = list(target.list_resources("Users"))
    view = [managed_view(r) for r in whole]
    assert all("meta" not in v and "groups" not in v for v in view)
    assert all("$ref" not in (v.get(ENTERPRISE) or {}).get("manager", {}) for v in view)
    links = store.links("model", "User")
    assert plan_users("model", desired, links, view) == plan_users("model", desired, links, whole)
    assert plan_users("model", desired, links, view).counts() == {"update": 1}


def test_a_target_that_cannot_be_read_fails_the_sync_and_writes_nothing() -> None:
    class Unreadable(ModelTarget):
        def list_resources(self, endpoint: str, *, page_size: int | None = None) -> Any:
            raise ScimTransientError(self.name, f"GET /{endpoint}", "HTTP 503", status=503)

    rows = okta_rows(5)
    target, store = Unreadable(), MemoryStore()
    frames = OktaFrames(users_frame(rows), groups_frame([]), memberships_frame([]))
    desired = build_desired(model_config(), frames, Quarantine())
    with pytest.raises(TargetUnavailableError, match="HTTP 503"):
        reconcile(model_config(), desired, store, target, scope=Full(), run_id="r", cause="c")
    assert target.writes == 0 and store.audit_rows == []


def test_held_links_are_left_as_they_are_and_only_a_batch_is_deprovisioned() -> None:
    target, store = ModelTarget(), MemoryStore()
    desired = {d.okta_id: d for d in (desired_user(i, "Engineer", "Sales", True) for i in range(5))}
    converge(target, store, desired)
    links = store.links("model", "User")
    gone = {k: v for k, v in desired.items() if k not in ("00u1", "00u2", "00u3")}
    actual = list(target.list_resources("Users"))
    # without a view, all three absent users are deactivated
    plain = plan_users("model", gone, links, actual)
    assert sorted(op.okta_id for op in plain.operations) == ["00u1", "00u2", "00u3"]
    # held (quarantined, rejected): left as they are; only the others deprovisioned
    held = plan_users("model", gone, LinksView(links, hold={"00u2"}), actual)
    assert sorted(op.okta_id for op in held.operations) == ["00u1", "00u3"]
    # a batch: only its entities may be deprovisioned, every link is still found
    batch = LinksView(links, only=["00u3", "00u9", "00u0"], hold={"00u2"})
    assert list(batch) == ["00u3", "00u0"] and len(batch) == 2
    assert "00u1" in batch and batch["00u1"].scim_id == links["00u1"].scim_id
    planned = plan_users("model", {"00u0": desired["00u0"]}, batch, None)
    assert [(op.action, op.okta_id) for op in planned.operations] == [("deactivate", "00u3")]


def test_a_large_new_group_gets_its_first_members_in_its_post_then_large_adds(
    monkeypatch,
) -> None:  # type: ignore[no-untyped-def]
    from scimflow.scim import plan as plan_module

    monkeypatch.setattr(plan_module, "MEMBER_ADD_BATCH", 10)  # 1,000 in use
    target, store = ModelTarget(), MemoryStore()
    desired = {
        d.okta_id: d for d in (desired_user(i, "Engineer", "Sales", True) for i in range(25))
    }
    converge(target, store, desired)
    links = store.links("model", "User")
    groups = {"00g1": DesiredGroup("00g1", "Everyone", frozenset(desired))}
    plan = plan_groups("model", groups, {}, links, [])
    assert [(op.action, len(op.members)) for op in plan.operations] == [
        ("group_create", 10),
        ("members_add", 10),
        ("members_add", 5),
    ]
    writes = target.writes
    Executor(target, store, run_id="r", cause="c").apply(plan, user_links=links)
    assert target.writes - writes == 3
    (group,) = target.list_resources("Groups")
    assert {m["value"] for m in group["members"]} == {link.scim_id for link in links.values()}


def test_a_group_create_meeting_a_409_links_it_and_adds_the_members_of_the_post() -> None:
    target, store = ModelTarget(), MemoryStore()
    desired = {d.okta_id: d for d in (desired_user(i, "Engineer", "Sales", True) for i in range(4))}
    converge(target, store, desired)
    links = store.links("model", "User")
    target.create("Groups", {"displayName": "Sales", "members": []})  # made by hand
    groups = {"00g1": DesiredGroup("00g1", "Sales", frozenset(desired))}
    plan = plan_groups("model", groups, {}, links, [])  # stream mode: no actual state
    assert [op.action for op in plan.operations] == ["group_create"]
    result = Executor(target, store, run_id="r", cause="c").apply(plan, user_links=links)
    assert result.counts == {"group_create:linked": 1}
    (group,) = target.list_resources("Groups")
    assert {m["value"] for m in group["members"]} == {link.scim_id for link in links.values()}
    assert sorted(store.links("model", "Group")) == ["00g1"]


@pytest.mark.parametrize("mode", ["resync", "stream"])
def test_a_user_rehired_under_a_new_okta_id_takes_over_the_old_account(mode: str) -> None:
    """Deleted in Okta, then created again with the same login: the new Okta id gets
    the account (updated, active), the old link moves; nothing crashes or duplicates."""
    target, store = ModelTarget(), MemoryStore()
    desired = {d.okta_id: d for d in (desired_user(i, "Engineer", "Sales", True) for i in range(3))}
    converge(target, store, desired)
    account = store.links("model", "User")["00u1"].scim_id
    old = desired.pop("00u1")
    payload = {**old.payload, "externalId": "00u9", "title": "Rehired"}
    desired["00u9"] = Desired("00u9", payload, fingerprint(payload), True)
    executor = Executor(target, store, run_id="r", cause="c")
    if mode == "resync":
        plan = plan_users(
            "model", desired, store.links("model", "User"), target.list_resources("Users")
        )
        assert [(op.action, op.okta_id, op.scim_id) for op in plan.operations] == [
            ("update", "00u9", account)
        ]
        executor.apply(plan)
    else:  # the old id's deletion, then the new id's creation, each its own batch
        links = store.links("model", "User")
        executor.apply(plan_users("model", {}, LinksView(links, only=["00u1"]), None))
        assert target.resources["Users"][account]["active"] is False
        batch = LinksView(store.links("model", "User"), only=["00u9"])
        plan = plan_users("model", {"00u9": desired["00u9"]}, batch, None)
        assert [op.action for op in plan.operations] == ["create"]  # meets a 409, links
        executor.apply(plan)
    links = store.links("model", "User")
    assert sorted(links) == ["00u0", "00u2", "00u9"] and links["00u9"].scim_id == account
    users = list(target.list_resources("Users"))
    assert len(users) == 3
    mine = target.resources["Users"][account]
    assert (mine["externalId"], mine["title"], mine["active"]) == ("00u9", "Rehired", True)
    again = plan_users("model", desired, links, target.list_resources("Users"))
    assert not again, again.operations
