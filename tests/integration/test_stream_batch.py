"""A micro-batch end to end without Airflow: real Kafka, the Okta emulator, scim2-server.

Events are published the way the receiver and the catch-up publish them (keyed by
entity), with duplicates and out of order; :func:`run_once` runs the ``okta_events``
stages in order.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import httpx
import pytest

if TYPE_CHECKING:
    from scimflow.okta.emulator.server import EmulatorServer
    from scimflow.scim.config import ScimflowConfig
    from scimflow.services import KafkaBroker

    from tests.support.fixtures import ScimTenant, StartEmulator
    from tests.support.stream_world import WriteConfig

pytestmark = pytest.mark.integration


class World(TypedDict):
    """The ``world`` fixture: a :class:`StreamWorld`'s parts these tests use."""

    okta: EmulatorServer
    config: ScimflowConfig  # the configuration the next batch runs on
    write: WriteConfig
    a: str  # base URL of target app-a
    b: str  # base URL of target app-b
    token: str
    dir: Path  # the configuration file's directory, and the batches' data


@pytest.fixture()
def world(
    okta_emulator: StartEmulator,
    scim_tenant: ScimTenant,
    kafka: KafkaBroker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> World:
    from tests.support.stream_world import stream_world

    w = stream_world(okta_emulator, scim_tenant, kafka, tmp_path, monkeypatch, seed=4)
    return {
        "okta": w.okta,
        "config": w.write(),
        "write": w.write,
        "a": w.a,
        "b": w.b,
        "token": w.token,
        "dir": tmp_path,
    }


def scim_users(base: str, token: str) -> dict[str, dict[str, Any]]:
    resp = httpx.get(
        f"{base}/Users", params={"count": 1000}, headers={"Authorization": f"Bearer {token}"}
    )
    return {u["userName"]: u for u in resp.json().get("Resources", [])}


def scim_groups(base: str, token: str) -> dict[str, dict[str, Any]]:
    resp = httpx.get(
        f"{base}/Groups", params={"count": 1000}, headers={"Authorization": f"Bearer {token}"}
    )
    return {g["displayName"]: g for g in resp.json().get("Resources", [])}


def once(world: World, n: int) -> dict[str, Any]:
    from scimflow.stream.batch import run_once

    return run_once(world["config"], world["dir"] / f"run{n}", run_id=f"run{n}")


def test_a_batch_with_duplicates_and_disorder_converges_once(world: World) -> None:
    from scimflow.state.store import StateStore
    from scimflow.stream.kafka import publish

    d = world["okta"].state.directory
    u1, u2, u3 = d.user_ids[5], d.user_ids[6], d.user_ids[7]
    gid = next(iter(d.groups))
    before = len(d.log)
    d.update_profile(u1, {"title": "Principal Engineer"})
    d.lifecycle(u2, "suspend") if d.users[u2]["status"] == "ACTIVE" else d.lifecycle(u2, "activate")
    if u3 in d.members.get(gid, set()):
        d.remove_member(gid, u3)
    d.add_member(gid, u3)
    events = d.log[before:]
    # at least once and out of order: everything twice, the second copy reversed
    assert publish(world["config"].kafka, events + events[::-1]) == 2 * len(events)

    first = once(world, 1)
    assert first["read"] == 2 * len(events)
    assert first["hydrate"]["unique_events"] == len(events)
    logins = {d.users[u]["profile"]["login"] for u in (u1, u2, u3)}
    for base in (world["a"], world["b"]):
        got = scim_users(base, world["token"])
        assert set(got) == logins
        assert got[d.users[u1]["profile"]["login"]]["title"] == "Principal Engineer"
        assert got[d.users[u2]["profile"]["login"]]["active"] == (d.users[u2]["status"] == "ACTIVE")
        group = scim_groups(base, world["token"])[d.groups[gid]["profile"]["name"]]
        u3_scim = got[d.users[u3]["profile"]["login"]]["id"]
        assert u3_scim in {m["value"] for m in group.get("members", [])}

    # the audit log names each write's Okta event uuid
    by_user: dict[str, set[str]] = {}
    for e in events:
        for t in e["target"]:
            by_user.setdefault(t["id"], set()).add(e["uuid"])
    with StateStore(world["config"].state.resolved_url()) as store:
        rows = [r for r in store.audit("app-a", limit=1000) if r["operation"] == "create"]
        assert {r["okta_id"] for r in rows} == {u1, u2, u3}
        for r in rows:
            assert r["cause"].startswith("okta-event:")
            assert set(r["cause"].split(":", 1)[1].split(",")) == by_user[r["okta_id"]]
        assert store.unseen(e["uuid"] for e in events) == set()
        from datetime import UTC, datetime, timedelta

        from scimflow.stream.observe import latency

        measured = latency(store, datetime.now(UTC) - timedelta(hours=1))
    # every event caused a write in both targets, within the test's own minute
    assert measured is not None and measured.per_target == {
        "app-a": len(events),
        "app-b": len(events),
    }
    assert 0 <= measured.p50 <= measured.p95 <= measured.max < 120

    # committed: nothing left to read; the same events again change nothing
    assert once(world, 2)["read"] == 0
    publish(world["config"].kafka, events)
    third = once(world, 3)
    assert third["read"] == len(events)
    assert [t["writes"] for t in third["targets"]] == [0, 0]


def test_a_down_target_is_parked_and_catches_up_without_holding_the_other(world: World) -> None:
    from scimflow.state.store import ParkKind, StateStore
    from scimflow.stream.kafka import lag, publish

    d = world["okta"].state.directory
    u1, u2 = d.user_ids[3], d.user_ids[4]
    world["config"] = world["write"]("http://127.0.0.1:9/v2")  # nothing listens there
    before = len(d.log)
    d.update_profile(u1, {"title": "Staff Engineer"})
    publish(world["config"].kafka, d.log[before:])
    result = once(world, 1)
    a, b = result["targets"]
    assert a["writes"] == 1 and a["unavailable"] is None
    assert b["unavailable"] and b["parked"] == {"unavailable": 1}
    assert lag(world["config"].kafka) == 0  # committed: the down target held nothing back
    with StateStore(world["config"].state.resolved_url()) as store:
        parked = store.parked("app-b")
    assert [(p.okta_id, p.park_kind) for p in parked] == [(u1, ParkKind.UNAVAILABLE)]
    assert parked[0].reason.startswith("target unavailable: app-b")
    assert "APP_TOKEN" not in parked[0].reason and world["token"] not in parked[0].reason

    # back up: the next batch retries what was parked for it
    world["config"] = world["write"]()
    before = len(d.log)
    d.update_profile(u2, {"title": "Engineer"})
    publish(world["config"].kafka, d.log[before:])
    second = once(world, 2)
    assert second["hydrate"]["retried_parked"] == 1
    got = scim_users(world["b"], world["token"])
    assert set(got) == {d.users[u]["profile"]["login"] for u in (u1, u2)}
    with StateStore(world["config"].state.resolved_url()) as store:
        assert store.parked("app-b") == []
        # parked while down, yet already equal in the target (a resync wrote it, say):
        # the next batch that reaches the target releases it instead of retrying forever
        store.park("app-b", "User", u2, "connection refused", None, park_kind=ParkKind.UNAVAILABLE)
    before = len(d.log)
    d.update_profile(u1, {"title": "Principal Engineer"})
    publish(world["config"].kafka, d.log[before:])
    third = once(world, 3)
    assert third["hydrate"]["retried_parked"] == 1
    assert third["targets"][1]["writes"] == 1 and third["targets"][1]["released"] == 1
    with StateStore(world["config"].state.resolved_url()) as store:
        assert store.parked("app-b") == []


def test_a_crash_before_the_commit_replays_the_batch_without_duplicates(world: World) -> None:
    from scimflow.stream import batch as stream
    from scimflow.stream.kafka import lag, publish, read_batch

    d = world["okta"].state.directory
    before = len(d.log)
    for uid in d.user_ids[10:14]:
        d.update_profile(uid, {"title": "Analyst"})
    publish(world["config"].kafka, d.log[before:])
    # a worker dies after applying to one target, before anything is committed
    config, run_dir = world["config"], world["dir"] / "crashed"
    b = read_batch(config.kafka)
    stream.save_changes(run_dir, b.changes, b.offsets)
    stream.hydrate(config, run_dir)
    assert stream.apply_to_target(config, "app-a", run_dir, run_id="crashed")["writes"] == 4
    assert lag(config.kafka) == 4

    replay = once(world, 1)
    assert replay["read"] == 4  # nothing lost
    a, b_ = replay["targets"]
    assert a["writes"] == 0 and b_["writes"] == 4  # nothing written twice
    assert len(scim_users(world["a"], world["token"])) == 4
    assert lag(config.kafka) == 0


def test_a_message_that_is_not_an_event_is_dead_lettered_and_the_rest_goes_on(
    world: World, kafka: KafkaBroker
) -> None:
    from confluent_kafka import Consumer, Producer
    from scimflow.stream.kafka import publish

    config = world["config"]
    assert config.kafka is not None
    d = world["okta"].state.directory
    producer = Producer({"bootstrap.servers": kafka.address})
    producer.produce(config.kafka.topic, key=b"x", value=b"{not json")
    producer.produce(config.kafka.topic, key=b"y", value=b'{"uuid": "u-1", "eventType": "x"}')
    producer.flush(10)
    before = len(d.log)
    d.update_profile(d.user_ids[2], {"title": "Director"})
    publish(config.kafka, d.log[before:])
    result = once(world, 1)
    assert result["read"] == 1 and result["dead_lettered"] == 2
    assert result["targets"][0]["writes"] == 1
    consumer = Consumer(
        {
            "bootstrap.servers": kafka.address,
            "group.id": "dlq-check",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([config.kafka.dlq_topic])
    reasons: list[str] = []
    for _ in range(30):
        msg = consumer.poll(1.0)
        if msg is not None and not msg.error():
            reason = dict(msg.headers() or [])["reason"]
            assert isinstance(reason, bytes), reason
            reasons.append(reason.decode())
        if len(reasons) == 2:
            break
    consumer.close()
    assert any("not JSON" in r for r in reasons) and any("missing published" in r for r in reasons)


def test_the_stream_once_command_runs_a_batch(world: World) -> None:
    from scimflow.cli import app
    from scimflow.stream.kafka import lag, publish
    from typer.testing import CliRunner

    d = world["okta"].state.directory
    before = len(d.log)
    d.update_profile(d.user_ids[1], {"title": "Manager"})
    publish(world["config"].kafka, d.log[before:])
    result = CliRunner().invoke(
        app,
        [
            "stream",
            "once",
            "--config",
            str(world["dir"] / "scimflow.yaml"),
            "--data-dir",
            str(world["dir"] / "data"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "read 1 events" in result.output and "app-a" in result.output
    assert world["token"] not in result.output
    assert lag(world["config"].kafka) == 0
    assert len(scim_users(world["a"], world["token"])) == 1


def test_a_worker_killed_mid_batch_loses_nothing_and_duplicates_nothing(world: World) -> None:
    """`scimflow stream once` is SIGKILLed while it writes to app-a (every answer held back
    by a proxy, so some writes reached the target unanswered); the next batch replays."""
    import os
    import signal
    import subprocess
    import sys
    from urllib.parse import urlsplit

    from scimflow.services.process import wait_until
    from scimflow.stream.kafka import lag, publish

    from tests.support.fault_proxy import FaultProxy

    d = world["okta"].state.directory
    before = len(d.log)
    changed = d.user_ids[10:22]
    for uid in changed:
        d.update_profile(uid, {"title": "Killed Mid-Batch"})
    publish(world["config"].kafka, d.log[before:])
    upstream = urlsplit(world["a"])
    with FaultProxy(f"{upstream.scheme}://{upstream.netloc}") as proxy:
        proxy.delay(1.0, methods=["POST"])
        world["write"](a_url=proxy.url + upstream.path)
        exe = os.path.join(os.path.dirname(sys.executable), "scimflow")
        proc = subprocess.Popen(
            [
                exe,
                "stream",
                "once",
                "--config",
                str(world["dir"] / "scimflow.yaml"),
                "--data-dir",
                str(world["dir"] / "killed"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            reached = wait_until(
                lambda: len(scim_users(world["a"], world["token"])) >= 2,
                timeout=180,
                interval=0.1,
                alive=lambda: proc.poll() is None,
            )
            assert reached or proc.poll() is None, "the batch ended before it could be killed"
            assert reached, "no write reached the target"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
    written = len(scim_users(world["a"], world["token"]))
    assert 2 <= written < len(changed)
    assert lag(world["config"].kafka) == len(changed)  # nothing committed: nothing lost

    world["config"] = world["write"]()  # app-a direct again
    replay = once(world, 1)
    assert replay["read"] == len(changed)
    a = scim_users(world["a"], world["token"])
    names = [
        u["userName"]
        for u in httpx.get(
            f"{world['a']}/Users",
            params={"count": 1000},
            headers={"Authorization": f"Bearer {world['token']}"},
        ).json()["Resources"]
    ]
    assert len(names) == len(set(names)) == len(changed)  # each user once
    assert {u["title"] for u in a.values()} == {"Killed Mid-Batch"}
    assert len(scim_users(world["b"], world["token"])) == len(changed)
    assert lag(world["config"].kafka) == 0


def _member_logins(world: World, base: str, group_name: str) -> dict[str, bool]:
    """The group's members in a target, by login, with whether each is active."""
    by_id = {u["id"]: u for u in scim_users(base, world["token"]).values()}
    group = scim_groups(base, world["token"])[group_name]
    return {
        by_id[m["value"]]["userName"]: bool(by_id[m["value"]].get("active"))
        for m in group.get("members", [])
    }


def test_a_leaver_leaves_its_groups_in_the_same_batch_and_a_returner_rejoins(world: World) -> None:
    from scimflow.stream.kafka import publish

    # app-a keeps every status: a deactivated user stays, inactive, in its groups (as in
    # Okta); app-b only ACTIVE users: a leaver leaves its scope, so its groups too
    world["config"] = world["write"](b_scope="statuses: [ACTIVE]")
    d = world["okta"].state.directory
    gid, uid, other = next((g, *sorted(m)[:2]) for g, m in sorted(d.members.items()) if len(m) >= 2)
    login, name = d.users[uid]["profile"]["login"], d.groups[gid]["profile"]["name"]
    mark = len(d.log)
    for u in (uid, other):
        if d.users[u]["status"] == "DEPROVISIONED":
            d.lifecycle(u, "reactivate")
        if d.users[u]["status"] != "ACTIVE":
            d.lifecycle(u, "activate")
        # the group and these two members reach both targets
        d.remove_member(gid, u)
        d.add_member(gid, u)
    publish(world["config"].kafka, d.log[mark:])
    once(world, 1)
    for base in (world["a"], world["b"]):
        assert _member_logins(world, base, name)[login] is True

    # the leaver: its only event is its deactivation, which names no group
    mark = len(d.log)
    d.lifecycle(uid, "deactivate")
    assert [e["eventType"] for e in d.log[mark:]] == ["user.lifecycle.deactivate"]
    publish(world["config"].kafka, d.log[mark:])
    second = once(world, 2)
    assert second["hydrate"]["lifecycle_users"] == 1
    assert second["hydrate"]["groups"] >= 1  # the leaver's groups joined the batch
    stays = d.users[other]["profile"]["login"]
    assert scim_users(world["a"], world["token"])[login]["active"] is False
    assert _member_logins(world, world["a"], name) == {login: False, stays: True}
    assert scim_users(world["b"], world["token"])[login]["active"] is False
    assert _member_logins(world, world["b"], name) == {stays: True}

    # back again: active, and a member again
    mark = len(d.log)
    d.lifecycle(uid, "reactivate")
    d.lifecycle(uid, "activate")
    publish(world["config"].kafka, d.log[mark:])
    once(world, 3)
    for base in (world["a"], world["b"]):
        assert _member_logins(world, base, name)[login] is True


def test_a_user_and_its_new_manager_in_one_batch_are_each_written_once(world: World) -> None:
    from scimflow.state.store import StateStore
    from scimflow.stream.kafka import publish

    d = world["okta"].state.directory
    mark = len(d.log)
    boss = d.create_user({**d.random_profile(), "title": "Director"})
    report = d.create_user({**d.random_profile(), "managerId": boss})
    # the report's events first: without waves its create would miss the manager
    events = d.log[mark:]
    events = [e for e in events if e["target"][0]["id"] == report] + [
        e for e in events if e["target"][0]["id"] == boss
    ]
    publish(world["config"].kafka, events)
    result = once(world, 1)
    assert [t["writes"] for t in result["targets"]] == [2, 2], result
    for base in (world["a"], world["b"]):
        got = scim_users(base, world["token"])
        boss_scim = got[d.users[boss]["profile"]["login"]]["id"]
        mine = got[d.users[report]["profile"]["login"]]
        manager = mine["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["manager"]
        assert manager["value"] == boss_scim
    with StateStore(world["config"].state.resolved_url()) as store:
        ops = [r["operation"] for r in store.audit("app-a", limit=100)]
    assert sorted(ops) == ["create", "create", "reconcile"]  # two writes, and their summary


def test_the_catch_up_forgets_uuids_seen_before_the_system_logs_retention(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime, timedelta

    from scimflow.state import store as store_module
    from scimflow.state.store import StateStore
    from scimflow.stream.catchup import SEEN_RETENTION, catch_up

    now = datetime.now(UTC)
    with StateStore(world["config"].state.resolved_url()) as store:
        store.migrate()
        with monkeypatch.context() as m:
            m.setattr(store_module, "_now", lambda: now - SEEN_RETENTION - timedelta(hours=1))
            store.mark_seen([("old-1", None), ("old-2", None)])
            m.setattr(store_module, "_now", lambda: now - SEEN_RETENTION + timedelta(hours=1))
            store.mark_seen([("recent", None)])
        dry = catch_up(world["config"], now - timedelta(hours=1), now, store=store, dry_run=True)
        assert dry["pruned_seen"] == 0
        assert store.unseen(["old-1", "old-2", "recent"]) == set()
        done = catch_up(world["config"], now - timedelta(hours=1), now, store=store)
        assert done["pruned_seen"] == 2
        assert store.unseen(["old-1", "old-2", "recent"]) == {"old-1", "old-2"}


@pytest.mark.parametrize("by_user_max", [1000, 5], ids=["each-users-groups", "scope-members"])
def test_a_target_scoped_by_group_gets_exactly_the_batchs_members_of_its_group(
    world: World, monkeypatch: pytest.MonkeyPatch, by_user_max: int
) -> None:
    from scimflow.stream import batch as batch_module
    from scimflow.stream.kafka import publish

    monkeypatch.setattr(batch_module, "SCOPE_BY_USER_MAX", by_user_max)
    d = world["okta"].state.directory
    gid = max(d.members, key=lambda g: len(d.members[g]))
    name = d.groups[gid]["profile"]["name"]
    world["config"] = world["write"](b_scope=f'groups: ["{name}"]')
    changed = [u for u in d.user_ids if d.users[u]["status"] == "ACTIVE"][:20]
    mark = len(d.log)
    for u in changed:
        d.update_profile(u, {"title": "Staff Engineer"})
    publish(world["config"].kafka, d.log[mark:])
    result = once(world, 1)
    logins = {d.users[u]["profile"]["login"] for u in changed}
    in_group = {d.users[u]["profile"]["login"] for u in changed if u in d.members[gid]}
    assert 0 < len(in_group) < len(logins)
    assert set(scim_users(world["a"], world["token"])) == logins
    assert set(scim_users(world["b"], world["token"])) == in_group
    requests = result["hydrate"]["okta_requests"]
    if by_user_max == 5:
        assert requests < len(changed)  # not one request a user
    else:
        assert requests >= len(changed)


def test_a_user_deleted_from_okta_leaves_the_targets_groups(world: World) -> None:
    from scimflow.stream.kafka import publish

    d = world["okta"].state.directory
    gid, uid, other = next((g, *sorted(m)[:2]) for g, m in sorted(d.members.items()) if len(m) >= 2)
    login, name = d.users[uid]["profile"]["login"], d.groups[gid]["profile"]["name"]
    stays = d.users[other]["profile"]["login"]
    mark = len(d.log)
    for u in (uid, other):
        d.remove_member(gid, u)
        d.add_member(gid, u)
    publish(world["config"].kafka, d.log[mark:])
    once(world, 1)
    assert set(_member_logins(world, world["a"], name)) == {login, stays}

    # deactivated, then deleted: Okta drops its memberships and says so in no group event
    mark = len(d.log)
    if d.users[uid]["status"] != "DEPROVISIONED":
        d.delete_user(uid)  # the first DELETE deactivates
    d.delete_user(uid)
    assert uid not in d.users and all(e["eventType"].startswith("user.") for e in d.log[mark:])
    publish(world["config"].kafka, d.log[mark:])
    result = once(world, 2)
    for base in (world["a"], world["b"]):
        assert scim_users(base, world["token"])[login]["active"] is False
        assert set(_member_logins(world, base, name)) == {stays}
    assert all(t["results"].get("members_remove:applied") == 1 for t in result["targets"])


def test_a_batch_deprovisioning_too_many_users_is_held_by_the_deletion_guard(world: World) -> None:
    from scimflow.state.store import StateStore
    from scimflow.stream.kafka import publish

    # app-b keeps ACTIVE users only: a deactivated user leaves it (a deprovision); app-a
    # keeps every status: the same user is updated, inactive (not a deprovision)
    world["config"] = world["write"](b_scope="statuses: [ACTIVE]")
    d = world["okta"].state.directory
    active = [u for u in d.user_ids if d.users[u]["status"] == "ACTIVE"][:20]
    mark = len(d.log)
    for u in active:
        d.update_profile(u, {"title": "Guarded"})
    publish(world["config"].kafka, d.log[mark:])
    once(world, 1)
    # 5 of 20 linked users (25%) at once: more than the default guard's 10%
    leavers, other = active[:5], active[5]
    mark = len(d.log)
    for u in leavers:
        d.lifecycle(u, "deactivate")
    d.update_profile(other, {"title": "Still Changed"})
    publish(world["config"].kafka, d.log[mark:])
    result = once(world, 2)
    assert [t["parked"].get("guard", 0) for t in result["targets"]] == [0, 5]
    assert [t["guard"]["decision"] for t in result["targets"]] == ["proceed", "park"]

    def login(u: str) -> str:
        return str(d.users[u]["profile"]["login"])

    a, b = scim_users(world["a"], world["token"]), scim_users(world["b"], world["token"])
    assert all(a[login(u)]["active"] is False for u in leavers)
    assert all(b[login(u)]["active"] is True for u in leavers)  # held
    assert a[login(other)]["title"] == b[login(other)]["title"] == "Still Changed"  # goes on
    with StateStore(world["config"].state.resolved_url()) as store:
        assert store.parked("app-a") == []
        parked = {p.okta_id: p for p in store.parked("app-b")}
    assert set(parked) == set(leavers)
    assert all(p.park_kind == "guard" for p in parked.values())
    assert all(
        p.reason.startswith("deletion guard: a batch would deprovision 5 of the 20")
        for p in parked.values()
    )
    # one leaver alone (1 of 20: 5%) passes
    mark = len(d.log)
    d.lifecycle(active[6], "deactivate")
    publish(world["config"].kafka, d.log[mark:])
    third = once(world, 3)
    assert [t["parked"].get("guard", 0) for t in third["targets"]] == [0, 0]
    assert scim_users(world["b"], world["token"])[login(active[6])]["active"] is False
