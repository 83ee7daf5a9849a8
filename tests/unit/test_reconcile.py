"""The one engine's rules, on the in-memory model target: each rule once, for both scopes.

Each test here pins a rule the three former copies (the resync, the stream batch, the
CLI) disagreed on; the parity property drives the stream path and the resync path with
the same Okta changes and requires the same targets and the same report counts.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scimflow.errors import DeletionGuardError
from scimflow.scim.client import PATCH_SCHEMA
from scimflow.scim.config import TargetConfig
from scimflow.scim.desired import BadRecord
from scimflow.scim.desired import Desired as DesiredState
from scimflow.scim.reconcile import Batch, Full, Scope, reconcile
from scimflow.scim.report import TargetReport
from scimflow.state.store import ParkKind

from tests.support.desired import DEPTS, TITLES, Desired, DesiredGroup, desired_user
from tests.support.model_target import MemoryStore, ModelTarget


def target_config(**overrides: Any) -> TargetConfig:
    return TargetConfig.model_validate(
        {
            "name": "model",
            "base_url": "https://model.example.com/scim/v2",
            "auth": {"type": "bearer", "token": {"env": "MODEL_TOKEN"}},
            "concurrency": 2,
            **overrides,
        }
    )


def people(ids: Iterable[int], title: str = "Engineer") -> dict[str, Desired]:
    return {d.okta_id: d for d in (desired_user(i, title, "Sales", True) for i in ids)}


def state(
    users: Mapping[str, Desired],
    groups: Mapping[str, DesiredGroup] | None = None,
    *,
    bad: Iterable[BadRecord] = (),
    deleted: Iterable[str] = (),
) -> DesiredState:
    return DesiredState(users, groups, tuple(bad), frozenset(deleted))


def run(
    target: ModelTarget,
    store: MemoryStore,
    desired: DesiredState,
    scope: Scope,
    config: TargetConfig | None = None,
    **kw: Any,
) -> TargetReport:
    return reconcile(
        config or target_config(),
        desired,
        store,
        target,
        scope=scope,
        run_id="r",
        cause="test",
        **kw,
    )


def batch(users: Iterable[str] = (), groups: Iterable[str] = ()) -> Batch:
    return Batch(frozenset(users), frozenset(groups))


def snapshot(target: ModelTarget) -> tuple[dict[str, Any], dict[str, frozenset[str]]]:
    """The target as a user sees it: users by externalId (managed attributes), groups by
    name with their members' externalIds."""
    users = {
        str(u.get("externalId", u["userName"])): {
            k: u.get(k) for k in ("userName", "title", "active", "displayName", "emails")
        }
        for u in target.resources["Users"].values()
    }
    by_id = {
        sid: str(u.get("externalId", u["userName"])) for sid, u in target.resources["Users"].items()
    }
    groups = {
        str(g["displayName"]): frozenset(by_id[m["value"]] for m in g.get("members") or [])
        for g in target.resources["Groups"].values()
    }
    return users, groups


# -- the deletion guard: one rule, one denominator ------------------------------------------


def test_the_guard_counts_the_same_active_users_in_a_batch_and_in_a_full_reconcile() -> None:
    """20 linked users, 8 of them deprovisioned already, and 5 accounts scimflow does not
    manage: 3 leavers are 3 of 12 active users (25%) for both paths. (Before: the resync
    divided by max(links, target users) = 25 (12%), the stream by every link = 20 (15%),
    so a 20% guard let both through.)"""
    config = target_config(deletion_guard={"max_share": 0.2, "min_users": 10})
    target, store = ModelTarget(), MemoryStore()
    everyone = people(range(20))
    run(target, store, state(everyone), Full(), config)
    for i in range(5):  # made by hand in the target
        target.create("Users", {"userName": f"hand{i}@example.com", "active": True})
    staying = {k: v for k, v in everyone.items() if int(k[3:]) >= 8}
    run(target, store, state(staying), Full(), config, force=True)  # 8 leave, forced
    left = {k: v for k, v in staying.items() if k not in ("00u8", "00u9", "00u10")}

    world = copy.deepcopy((target, store))
    with pytest.raises(DeletionGuardError, match="3 of 12 users"):
        run(target, store, state(left), Full(), config)
    users, _ = snapshot(target)
    assert all(users[k]["active"] is True for k in staying)  # nothing written

    b_target, b_store = world
    report = run(b_target, b_store, state({}), batch(["00u8", "00u9", "00u10"]), config)
    assert report.guard is not None
    assert (report.guard.decision, report.guard.deprovisions, report.guard.active_users) == (
        "park",
        3,
        12,
    )
    assert report.parked == {"guard": 3} and report.writes == 0
    assert {k[2]: v for k, v in b_store.parked_kinds.items()} == dict.fromkeys(
        ("00u8", "00u9", "00u10"), ParkKind.GUARD
    )


def test_a_guarded_batch_keeps_the_held_users_in_their_groups_and_applies_the_rest() -> None:
    config = target_config(deletion_guard={"max_share": 0.1, "min_users": 10})
    target, store = ModelTarget(), MemoryStore()
    everyone = people(range(12))
    group = DesiredGroup("00g1", "Sales", frozenset(everyone))
    run(target, store, state(everyone, {"00g1": group}), Full(), config)
    changed = desired_user(5, "Lead", "Sales", True)
    report = run(
        target,
        store,
        state({"00u5": changed}, {"00g1": group}),  # 00u0 and 00u1 left the scope
        batch(["00u0", "00u1", "00u5"], ["00g1"]),
        config,
    )
    assert report.results == Counter({"update:applied": 1})
    users, groups = snapshot(target)
    assert users["00u0"]["active"] is True and users["00u5"]["title"] == "Lead"
    assert "00u0" in groups["Sales"] and "00u1" in groups["Sales"]  # held as they are


# -- group members: one rule -----------------------------------------------------------------


def test_group_members_are_the_desired_and_the_held_users_in_both_paths() -> None:
    """A quarantined member keeps its membership, a member who left the target's scope
    loses it, and a member outside a batch keeps what the last push gave it."""
    target, store = ModelTarget(), MemoryStore()
    everyone = people(range(6))
    group = DesiredGroup("00g1", "Sales", frozenset(everyone))
    run(target, store, state(everyone, {"00g1": group}), Full())
    # 00u1 turns bad (quarantined), 00u2 leaves the scope, 00u9 joins the group
    bad = [BadRecord("User", "00u1", ParkKind.QUARANTINED, "validation: email")]
    now = {k: v for k, v in everyone.items() if k not in ("00u1", "00u2")} | people([9])
    okta_group = replace(group, member_okta_ids=frozenset({*everyone, "00u9"}))
    full_world = copy.deepcopy((target, store))

    run(*full_world, state(now, {"00g1": okta_group}, bad=bad), Full())
    in_batch = {k: now[k] for k in ("00u9",)}
    run(
        target,
        store,
        state(in_batch, {"00g1": okta_group}, bad=bad),
        batch(["00u1", "00u2", "00u9"], ["00g1"]),
    )
    expected = {"00u0", "00u1", "00u3", "00u4", "00u5", "00u9"}
    assert snapshot(full_world[0])[1]["Sales"] == expected
    assert snapshot(target)[1]["Sales"] == expected
    assert snapshot(target) == snapshot(full_world[0])


# -- bad records: parked by kind, counted once -------------------------------------------------


def test_only_parked_records_are_counted_parked_with_their_kind() -> None:
    """A quarantined row without an id is reported by validation, not parked (before: the
    resync counted it, and every quarantined id, whether parked or not)."""
    from scimflow.scim.desired import Quarantine

    quarantine = Quarantine(users={"00u3": ["email"], "row:7": ["id"]}, groups={"00g2": ["name"]})
    rejected = BadRecord("User", "00u4", ParkKind.REJECTED, "mapping: userName: missing")
    target, store = ModelTarget(), MemoryStore()
    desired = state(people(range(3)), {}, bad=(*quarantine.bad(), rejected))
    report = run(target, store, desired, Full())
    assert report.parked == {"quarantined": 2, "rejected": 1}
    assert sorted((k[1], k[2], v) for k, v in store.parked_kinds.items()) == [
        ("Group", "00g2", ParkKind.QUARANTINED),
        ("User", "00u3", ParkKind.QUARANTINED),
        ("User", "00u4", ParkKind.REJECTED),
    ]
    assert report.to_xcom()["parked"] == {"quarantined": 2, "rejected": 1}


def test_a_fixed_record_is_released_once_it_is_written_or_equal() -> None:
    target, store = ModelTarget(), MemoryStore()
    everyone = people(range(3))
    run(target, store, state(everyone), Full())
    bad = [BadRecord("User", "00u1", ParkKind.QUARANTINED, "validation: email")]
    run(target, store, state(everyone, bad=bad), batch(["00u1"]))
    assert ("model", "User", "00u1") in store.parked_rows
    report = run(target, store, state({"00u1": everyone["00u1"]}), batch(["00u1"]))
    assert report.released == 1 and store.parked_rows == {} and report.writes == 0


# -- what is counted and audited ----------------------------------------------------------------


def test_a_user_linked_after_a_409_is_counted_linked_not_created() -> None:
    target, store = ModelTarget(), MemoryStore()
    target.create("Users", {"userName": "USER1@example.com", "title": "Hand"})
    target.sent.clear()
    report = run(target, store, state(people([1, 2])), batch(["00u1", "00u2"]))
    assert report.results == Counter({"create:applied": 1, "create:linked": 1})
    rows = report.rows()
    assert (rows["created"], rows["linked"], report.writes) == (1, 1, 2)


@pytest.mark.parametrize("patch", [True, False])
def test_every_audit_row_records_the_request_that_was_sent(patch: bool) -> None:
    """Group renames, member changes, updates and deactivations: the audit's request is
    the body the target received (before: a full body for a rename sent as a PATCH)."""
    target, store = ModelTarget(patch=patch), MemoryStore()
    everyone = people(range(4))
    group = DesiredGroup("00g1", "Sales", frozenset({"00u0", "00u1"}))
    run(target, store, state(everyone, {"00g1": group}), Full())
    target.sent.clear()
    n = len(store.audit_rows)
    moved = desired_user(2, "Lead", "Sales", True)
    renamed = DesiredGroup("00g1", "Sales EMEA", frozenset({"00u0", "00u2"}))
    now = {**everyone, "00u2": moved}
    del now["00u3"]
    run(target, store, state(now, {"00g1": renamed}), Full())
    audited = [
        (e.operation, e.request)
        for e in store.audit_rows[n:]
        if e.request is not None and e.outcome == "applied"
    ]
    writes = [(m, body) for m, _, body in target.sent if m != "GET"]
    assert {op for op, _ in audited} >= {"group_update", "members_add", "update", "deactivate"}
    assert sorted(map(repr, (body for _, body in audited))) == sorted(
        map(repr, (body for _, body in writes))
    )
    (summary,) = [e for e in store.audit_rows[n:] if e.operation == "reconcile"]
    assert summary.response is not None and summary.response["writes"] == len(writes)
    rename = next(body for op, body in audited if op == "group_update")
    if patch:
        assert rename == {
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "replace", "path": "displayName", "value": "Sales EMEA"}],
        }
    else:
        assert rename is not None and rename["displayName"] == "Sales EMEA" and "id" in rename


def test_a_dry_run_writes_nothing_and_plans_what_a_run_does() -> None:
    target, store = ModelTarget(), MemoryStore()
    desired = state(people(range(3)), {"00g1": DesiredGroup("00g1", "S", frozenset({"00u0"}))})
    dry = run(target, store, desired, Full(), dry_run=True)
    assert target.writes == 0 and store.audit_rows == [] and dry.results == {}
    assert dry.rows()["created"] == 3 and dry.rows()["groups"] == 1
    real = run(target, store, desired, Full())
    assert real.rows()["created"] == 3 and dict(real.planned) == dict(dry.planned)


# -- parity: the stream path and the resync path --------------------------------------------------

population = st.dictionaries(
    st.integers(0, 11),
    st.tuples(st.sampled_from(TITLES), st.sampled_from(DEPTS), st.booleans()),
    min_size=1,
    max_size=10,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=population,
    changes=population,
    leavers=st.sets(st.integers(0, 11), max_size=3),
    members_before=st.sets(st.integers(0, 11)),
    members_after=st.sets(st.integers(0, 11)),
    rename=st.booleans(),
    patch=st.booleans(),
)
def test_the_stream_and_the_resync_leave_the_same_target_and_report_the_same_counts(
    first: dict[int, Any],
    changes: dict[int, Any],
    leavers: set[int],
    members_before: set[int],
    members_after: set[int],
    rename: bool,
    patch: bool,
) -> None:
    """Converged, then Okta changes (users created, changed, deleted; a group's members
    and name): a batch naming the changed entities, and a full reconcile, agree."""
    config = target_config(deletion_guard={"max_share": 1.0, "min_users": 0})
    before = {d.okta_id: d for i, v in first.items() for d in [desired_user(i, *v)]}
    group = DesiredGroup(
        "00g1", "Sales", frozenset(f"00u{i}" for i in members_before) & set(before)
    )
    target, store = ModelTarget(patch=patch), MemoryStore()
    run(target, store, state(before, {"00g1": group}), Full(), config)

    after = dict(before)
    after.update({d.okta_id: d for i, v in changes.items() for d in [desired_user(i, *v)]})
    gone = {f"00u{i}" for i in leavers} & set(after)
    for okta_id in gone:
        del after[okta_id]
    new_group = DesiredGroup(
        "00g1",
        "Sales EMEA" if rename else "Sales",
        frozenset(f"00u{i}" for i in members_after) & set(after),
    )
    changed = {k for k in set(before) | set(after) if k not in before or k not in after} | {
        k for k in set(before) & set(after) if before[k].payload != after[k].payload
    }
    group_changed = new_group.member_okta_ids != group.member_okta_ids or rename

    resync = copy.deepcopy((target, store))
    full = run(*resync, state(after, {"00g1": new_group}), Full(), config)
    stream = run(
        target,
        store,
        state(
            {k: after[k] for k in changed if k in after},
            {"00g1": new_group} if group_changed else {},
            deleted=gone,
        ),
        batch(changed, ["00g1"] if group_changed else []),
        config,
    )
    assert snapshot(target) == snapshot(resync[0])
    assert stream.results == full.results
    assert stream.rows() == full.rows()
    assert stream.parked == full.parked == {}
