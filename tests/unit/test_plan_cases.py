"""Cases met in practice: the whole reconcile of a first run, the managed view, an
unreadable target, held links, large groups, a 409 on a group, a rehire."""

from __future__ import annotations

from typing import Any

import pytest
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
)
from scimflow.scim.reconcile import Full, reconcile

from tests.support.converge import converge, managed, sync_users
from tests.support.desired import Desired, DesiredGroup, desired_user
from tests.support.model_target import MemoryStore, ModelTarget


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
    monkeypatch: pytest.MonkeyPatch,
) -> None:
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
