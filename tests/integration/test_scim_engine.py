"""The SCIM engine against real scim2-server targets (one fresh tenant per test)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import sqlalchemy as sa
from scimflow.scim import guard
from scimflow.scim.apply import Executor
from scimflow.scim.client import ScimTarget
from scimflow.scim.config import DeletionGuardConfig
from scimflow.scim.plan import ENTERPRISE, Plan, fingerprint, plan_groups, plan_users, user_changes
from scimflow.state.store import StateStore

from tests.support.desired import Desired, DesiredGroup, desired_user

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support.fixtures import ScimTenant

pytestmark = pytest.mark.integration


@pytest.fixture()
def target(scim_tenant: ScimTenant) -> Iterator[ScimTarget]:
    base_url, token = scim_tenant
    t = ScimTarget("app", base_url, headers={"Authorization": f"Bearer {token}"})
    t.discover()
    yield t
    t.close()


@pytest.fixture()
def store(tmp_path: Path) -> StateStore:
    s = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    s.migrate()
    return s


def people(n: int, title: str = "Engineer") -> dict[str, Desired]:
    return {d.okta_id: d for d in (desired_user(i, title, "Sales", True) for i in range(n))}


def sync(target: ScimTarget, store: StateStore, desired: dict[str, Desired], **kw: Any) -> Plan:
    plan = plan_users(
        target.name,
        desired,
        store.links(target.name, "User"),
        list(target.list_resources("Users")),
        use_patch=target.capabilities.patch,
        **kw,
    )
    if plan:
        result = Executor(target, store, run_id="it", cause="test", concurrency=4).apply(plan)
        assert result.failed == []
    return plan


def assert_equal(target: ScimTarget, desired: dict[str, Desired]) -> None:
    users = list(target.list_resources("Users"))
    counts = Counter(u["userName"].lower() for u in users)
    assert max(counts.values(), default=1) == 1, counts
    by_name = {u["userName"].lower(): u for u in users}
    for d in desired.values():
        assert user_changes(d.payload, by_name[d.payload["userName"]]) == [], d.okta_id


def raw(target: ScimTarget, token: str) -> httpx.Client:
    return httpx.Client(base_url=target.base_url, headers={"Authorization": f"Bearer {token}"})


def test_capabilities_are_discovered(target: ScimTarget) -> None:
    caps = target.capabilities
    assert caps.patch and caps.filter and caps.bulk and caps.etag


def test_converge_from_empty_then_nothing_to_do(target: ScimTarget, store: StateStore) -> None:
    desired = people(25)
    first = sync(target, store, desired)
    assert first.counts() == {"create": 25}
    assert_equal(target, desired)
    assert not sync(target, store, desired)
    links = store.links("app", "User")
    assert sorted(links) == sorted(desired)
    rows = store.audit("app", limit=100)
    assert len(rows) == 25 and {r["outcome"] for r in rows} == {"applied"}
    assert store.verify_audit().ok

    # groups follow, with members by SCIM id
    groups = {"00g1": DesiredGroup("00g1", "Engineering", frozenset(list(desired)[:10]))}
    gplan = plan_groups("app", groups, {}, links, list(target.list_resources("Groups")))
    Executor(target, store, run_id="it", cause="test").apply(gplan, user_links=links)
    (group,) = list(target.list_resources("Groups"))
    assert {m["value"] for m in group["members"]} == {links[u].scim_id for u in list(desired)[:10]}
    again = plan_groups(
        "app", groups, store.links("app", "Group"), links, list(target.list_resources("Groups"))
    )
    assert not again


def test_drift_made_by_hand_is_repaired(
    target: ScimTarget, store: StateStore, scim_tenant: ScimTenant
) -> None:
    desired = people(6)
    sync(target, store, desired)
    links = store.links("app", "User")
    _, token = scim_tenant
    with raw(target, token) as c:
        edited = c.get(f"/Users/{links['00u1'].scim_id}").json()
        edited["title"] = "Edited by hand"
        edited[ENTERPRISE] = {"department": "Hand"}
        assert c.put(f"/Users/{links['00u1'].scim_id}", json=edited).status_code == 200
        assert c.delete(f"/Users/{links['00u2'].scim_id}").status_code == 204
        # made by hand before scimflow knew the person: same userName, other case
        made = c.post(
            "/Users",
            json={
                "schemas": [ENTERPRISE.replace("extension:enterprise:2.0:User", "core:2.0:User")],
                "userName": "USER7@example.com",
                "title": "Hand",
            },
        )
        assert made.status_code == 201
        local = c.post(
            "/Users",
            json={
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "local-admin@example.com",
            },
        ).json()["id"]
    desired.update(people(8))  # 00u6 and 00u7 join in Okta
    plan = sync(target, store, desired)
    assert plan.counts() == {
        "create": 2,
        "update": 2,
    }  # 00u6 new, 00u2 recreated; 00u1 fixed, 00u7 linked
    assert_equal(target, desired)
    assert store.links("app", "User")["00u7"].scim_id == made.json()["id"]  # linked, not duplicated
    assert target.get("Users", local)["userName"] == "local-admin@example.com"  # left alone
    assert not sync(target, store, desired)


def test_a_permanently_rejected_user_is_parked_and_the_rest_go_through(
    target: ScimTarget, store: StateStore
) -> None:
    desired = people(5)
    bad = desired_user(3, "Engineer", "Sales", True)
    payload = dict(bad.payload)
    payload["emails"] = [
        {"value": "user3@example.com", "type": "work", "primary": True},
        {"value": "other3@example.com", "type": "home", "primary": True},  # two primaries: 400
    ]
    desired["00u3"] = Desired(bad.okta_id, payload, fingerprint(payload), True)
    sync(target, store, desired)
    (parked,) = store.parked("app")
    assert parked.okta_id == "00u3" and "400" in parked.reason and "primary" in parked.reason
    assert sorted(store.links("app", "User")) == ["00u0", "00u1", "00u2", "00u4"]
    # fixed in Okta: the next run creates it and unparks it
    desired["00u3"] = bad
    sync(target, store, desired)
    assert store.parked("app") == []
    assert_equal(target, desired)


def test_the_deletion_guard_stops_a_mass_deprovision(target: ScimTarget, store: StateStore) -> None:
    desired = people(20)
    sync(target, store, desired)
    shrunk = dict(list(desired.items())[:8])  # Okta suddenly returns 60% fewer users
    plan = plan_users(
        "app", shrunk, store.links("app", "User"), list(target.list_resources("Users"))
    )
    assert plan.deprovisions == 12
    config = DeletionGuardConfig(max_share=0.1, min_users=10)
    active = guard.active_users(store.links("app", "User"), plan)
    assert active == 20
    stop = guard.decide(config, plan, active, on_exceed="stop")
    assert (stop.decision, stop.deprovisions, stop.active_users) == ("stop", 12, 20)
    assert guard.decide(config, plan, active, on_exceed="park").decision == "park"
    forced = guard.decide(config, plan, active, on_exceed="stop", force=True)
    assert (forced.decision, forced.forced) == ("proceed", True)


def test_the_audit_log_fails_to_verify_after_a_row_is_altered(
    target: ScimTarget, store: StateStore, tmp_path: Path
) -> None:
    sync(target, store, people(4))
    assert store.verify_audit().ok
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE scimflow_audit SET scim_id = 'forged' WHERE seq = 2"))
    engine.dispose()
    verdict = store.verify_audit()
    assert not verdict.ok and verdict.first_bad_seq == 2


def test_transient_5xx_and_429_between_client_and_server_are_retried(
    scim_tenant: ScimTenant, store: StateStore
) -> None:
    from tests.support.fault_proxy import FaultProxy

    base_url, token = scim_tenant
    origin, path = base_url.rsplit("/", 2)[0], "/" + "/".join(base_url.rsplit("/", 2)[1:])
    with FaultProxy(upstream=origin) as proxy:
        target = ScimTarget("app", proxy.url + path, headers={"Authorization": f"Bearer {token}"})
        target.discover()
        proxy.fail_rate(0.3, statuses=(500, 502, 503, 429), seed=11, retry_after=0)
        proxy.fail_next(2, status=503, body="html")  # a proxy's HTML error page, not SCIM JSON
        desired = people(20)
        plan = sync(target, store, desired)
        assert plan.counts() == {"create": 20}
        injected = proxy.stats()["injected"]
        assert sum(injected.values()) >= 5 and "429" in {str(k) for k in injected}
        proxy.clear()
        assert_equal(target, desired)
        assert not sync(target, store, desired)

        # the worst case: the POST reached the server, the client saw a 502 and retried
        proxy.fail_after_forward(3, methods=("POST",))
        more = people(24)
        sync(target, store, more)
        proxy.clear()
        assert_equal(target, more)  # no duplicates: the retried creates met 409 and linked
        assert len(list(target.list_resources("Users"))) == 24
        outcomes = Counter(
            r["outcome"] for r in store.audit("app", limit=500) if r["operation"] == "create"
        )
        assert outcomes["linked"] == 3
        target.close()
