"""Planner and executor against the in-memory model target: convergence properties."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from scimflow.scim.plan import (
    plan_users,
)

from tests.support.converge import assert_converged, converge
from tests.support.desired import DEPTS, TITLES, desired_user
from tests.support.model_target import MemoryStore, ModelTarget

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
# a linked user deleted by hand in the target, unchanged in Okta: recreated
@example(
    first={0: ("Engineer", "Sales", False)},
    second={0: ("Engineer", "Sales", False)},
    edits=[],
    deletes=[0],
    handmade=[],
    patch=False,
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
