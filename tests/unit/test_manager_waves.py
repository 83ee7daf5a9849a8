"""Managers in waves: a first run writes each user once, cycles get one follow-up."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scimflow.scim.plan import (
    ENTERPRISE,
    fingerprint,
    plan_users,
    user_changes,
    with_manager,
)

from tests.support.converge import converge, managed, sync_users
from tests.support.desired import Desired
from tests.support.model_target import MemoryStore, ModelTarget


def assert_managers_written(
    target: ModelTarget, store: MemoryStore, desired: dict[str, Desired]
) -> None:
    """Each user's manager is its manager's SCIM id; links, hashes and audit agree with it."""
    links = store.links(target.name, "User")
    last_request: dict[str, dict[str, Any] | None] = {}
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
        if (last_request[okta_id] or {}).get("Operations") is None:  # a create or a PUT: all of it
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
    patched = [e.request or {} for e in store.audit_rows[-2:]]
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
