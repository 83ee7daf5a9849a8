"""``okta_resync`` by ``dag.test()``: the Okta emulator, two SCIM targets, PostgreSQL state."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypedDict

import httpx
import pytest
import sqlalchemy as sa

if TYPE_CHECKING:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dagrun import DagRun
    from airflow.sdk import DAG
    from scimflow.okta.emulator.server import EmulatorServer
    from scimflow.services import PostgresServer

    from tests.support.fixtures import ScimTenant, StartEmulator

pytestmark = pytest.mark.integration


class WriteConfig(Protocol):
    """Rewrite the configuration file, app-b at ``b_url`` (by default its own URL)."""

    def __call__(self, b_url: str = ...) -> None: ...


class World(TypedDict):
    """The ``world`` fixture: an emulator, two empty SCIM targets, a configuration file."""

    okta: EmulatorServer
    config: Path  # the configuration file the runs are given
    a: str  # base URL of target app-a
    b: str  # base URL of target app-b
    token: str
    write: WriteConfig
    state: str  # the state store's URL


@pytest.fixture()
def state_url(postgres: PostgresServer) -> Iterator[str]:
    """A fresh PostgreSQL database for this test's state store."""
    name = f"state_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(postgres.url()).set(database=name)
    yield url.render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture()
def world(
    okta_emulator: StartEmulator,
    scim_tenant: ScimTenant,
    state_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> World:
    okta = okta_emulator(users=40, groups=3, seed=9)
    base_a, token = scim_tenant
    base_b = base_a.replace("/t", "/b", 1)
    config = tmp_path / "scimflow.yaml"
    monkeypatch.setenv("OKTA_API_TOKEN", "emulator-token")
    monkeypatch.setenv("APP_TOKEN", token)
    monkeypatch.setenv("SCIMFLOW_TEST_STATE_URL", state_url)
    monkeypatch.setenv("SCIMFLOW_DATA", str(tmp_path / "data"))

    def write(b_url: str = base_b) -> None:
        config.write_text(f"""
okta: {{org_url: "{okta.url}", token: {{env: OKTA_API_TOKEN}}}}
state: {{url: {{env: SCIMFLOW_TEST_STATE_URL}}}}
targets:
  - name: app-a
    base_url: {base_a}
    auth: {{type: bearer, token: {{env: APP_TOKEN}}}}
    deletion_guard: {{max_share: 0.3, min_users: 10}}
  - name: app-b
    base_url: {b_url}
    auth: {{type: bearer, token: {{env: APP_TOKEN}}}}
""")

    write()
    return {
        "okta": okta,
        "config": config,
        "a": base_a,
        "b": base_b,
        "token": token,
        "write": write,
        "state": state_url,
    }


@pytest.fixture()
def dag(dagbag: DagBag) -> Iterator[DAG]:
    """The DAG with retries off: these tests want each run's verdict, not the retries' waits."""
    dag: DAG = dagbag.get_dag("okta_resync")
    saved = {t.task_id: t.retries for t in dag.tasks}
    for t in dag.tasks:
        t.retries = 0
    yield dag
    for t in dag.tasks:
        t.retries = saved[t.task_id]


def run(dag: DAG, world: World, **conf: Any) -> DagRun:
    # every param said each time: a run's conf must not leak into the next test's run
    defaults = {"targets": [], "dry_run": False, "force": False, "max_failed_share": 0.05}
    result: DagRun = dag.test(run_conf={**defaults, "config_path": str(world["config"]), **conf})
    return result


def states(run: DagRun) -> dict[str, str]:
    return {
        (ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"): str(ti.state)
        for ti in run.get_task_instances()
    }


def xcom(run: DagRun, task_id: str, map_index: int = -1) -> Any:
    ti = next(
        t for t in run.get_task_instances() if t.task_id == task_id and t.map_index == map_index
    )
    return ti.xcom_pull(task_ids=task_id, map_indexes=map_index)


def labels(run: DagRun, task_id: str) -> list[str | None]:
    """The mapped task instances' labels in the UI (``rendered_map_index``), by map index."""
    tis = sorted(
        (ti for ti in run.get_task_instances() if ti.task_id == task_id),
        key=lambda ti: ti.map_index,
    )
    return [ti.rendered_map_index for ti in tis]


def users(base: str, token: str) -> list[dict[str, Any]]:
    resp = httpx.get(
        f"{base}/Users", params={"count": 1000}, headers={"Authorization": f"Bearer {token}"}
    )
    found: list[dict[str, Any]] = resp.json().get("Resources", [])
    return found


def test_converges_from_empty_then_writes_nothing(airflow_db: None, dag: DAG, world: World) -> None:
    d = world["okta"].state.directory
    first = run(dag, world)
    assert str(first.state) == "success", states(first)
    logins = {u["profile"]["login"] for u in d.users.values()}
    for base in (world["a"], world["b"]):
        assert {u["userName"] for u in users(base, world["token"])} == logins
    summary = xcom(first, "sync_target", 0)
    assert summary["writes"] > 40 and summary["failed"] == 0
    report = Path(xcom(first, "report")).read_text()
    assert "| app-a | applied |" in report and "| app-b | applied |" in report

    second = run(dag, world)
    assert str(second.state) == "success", states(second)
    assert [xcom(second, "sync_target", i)["writes"] for i in (0, 1)] == [0, 0]

    # drift made by hand in a target is repaired by the next run
    # the victim is a manager, so its reports must follow its new SCIM id
    managers = {u["profile"].get("managerId") for u in d.users.values()} - {None}
    manager_logins = {d.users[m]["profile"]["login"] for m in managers}
    victim = next(u for u in users(world["a"], world["token"]) if u["userName"] in manager_logins)
    httpx.delete(
        f"{world['a']}/Users/{victim['id']}", headers={"Authorization": f"Bearer {world['token']}"}
    )
    third = run(dag, world)
    assert str(third.state) == "success"
    assert victim["userName"] in {u["userName"] for u in users(world["a"], world["token"])}
    results = xcom(third, "sync_target", 0)["results"]
    assert results.pop("create:applied") == 1
    # its direct reports now name the new SCIM id as their manager: one update each
    okta_id = next(u["id"] for u in d.users.values() if u["profile"]["login"] == victim["userName"])
    reports = sum(1 for u in d.users.values() if u["profile"].get("managerId") == okta_id)
    assert reports > 0 and results.pop("update:applied") == reports
    # its groups now point at the new SCIM id: one add and one remove per group it is in
    assert set(results) <= {"members_add:applied", "members_remove:applied"}
    assert results.get("members_add:applied", 0) == results.get("members_remove:applied", 0)


def test_a_record_failing_validation_is_quarantined_and_the_others_pushed(
    airflow_db: None, dag: DAG, world: World
) -> None:
    d = world["okta"].state.directory
    bad = d.user_ids[3]
    d.users[bad]["profile"]["email"] = "not-an-email"
    result = run(dag, world)
    assert str(result.state) == "success", states(result)
    quality = xcom(result, "validate")
    assert quality["quarantined_users"] == 1
    report = Path(quality["report"]).read_text()
    assert bad in report and "not-an-email" not in report  # ids and reasons, never values
    pushed = {u["userName"] for u in users(world["a"], world["token"])}
    assert d.users[bad]["profile"]["login"] not in pushed and len(pushed) == len(d.users) - 1
    from scimflow.state.store import StateStore

    with StateStore(world["state"]) as store:
        parked = store.parked("app-a")
    assert [p.okta_id for p in parked] == [bad] and "email" in parked[0].reason


def test_a_pushed_user_whose_record_turns_bad_is_parked_not_deactivated(
    airflow_db: None, dag: DAG, world: World
) -> None:
    assert str(run(dag, world).state) == "success"
    d = world["okta"].state.directory
    # a pushed user who is a member of a group
    gid, uid = next((g, min(m)) for g, m in sorted(d.members.items()) if m)
    login = d.users[uid]["profile"]["login"]
    group_name = d.groups[gid]["profile"]["name"]

    def seen() -> tuple[bool, bool]:
        by_name = {u["userName"]: u for u in users(world["a"], world["token"])}
        resp = httpx.get(
            f"{world['a']}/Groups",
            params={"count": 1000},
            headers={"Authorization": f"Bearer {world['token']}"},
        )
        group = next(g for g in resp.json()["Resources"] if g["displayName"] == group_name)
        member_ids = {m["value"] for m in group.get("members", [])}
        return bool(by_name[login].get("active")), by_name[login]["id"] in member_ids

    assert seen() == (True, True)
    d.users[uid]["profile"]["email"] = "not-an-email"  # fails validation from now on
    result = run(dag, world)
    assert str(result.state) == "success", states(result)
    assert xcom(result, "validate")["quarantined_users"] == 1
    # parked with its reason; its resource left as it was: still active, still a member
    assert seen() == (True, True)
    summary = xcom(result, "sync_target", 0)
    assert summary["writes"] == 0, summary
    from scimflow.state.store import StateStore

    with StateStore(world["state"]) as store:
        assert [p.okta_id for p in store.parked("app-a")] == [uid]


def test_a_dry_run_writes_nothing_and_shows_the_plan(
    airflow_db: None, dag: DAG, world: World
) -> None:
    result = run(dag, world, dry_run=True, targets=["app-a"])
    assert str(result.state) == "success", states(result)
    summary = xcom(result, "sync_target", 0)
    assert summary["dry_run"] and summary["writes"] == 0
    assert summary["planned"]["create"] == 40
    assert any(line.startswith("create User ") for line in summary["plan"])
    assert users(world["a"], world["token"]) == [] and users(world["b"], world["token"]) == []


def test_each_mapped_sync_is_named_by_its_target(airflow_db: None, dag: DAG, world: World) -> None:
    every = run(dag, world, dry_run=True)
    assert str(every.state) == "success", states(every)
    assert labels(every, "sync_target") == ["app-a", "app-b"]
    assert [xcom(every, "sync_target", i)["target"] for i in (0, 1)] == ["app-a", "app-b"]

    # the targets param picks by name; the label is still the name, not the index 0
    one = run(dag, world, dry_run=True, targets=["app-b"])
    assert str(one.state) == "success", states(one)
    assert xcom(one, "targets") == ["app-b"]
    assert labels(one, "sync_target") == ["app-b"]

    # a name that is not configured stops the run before any target is read
    typo = run(dag, world, dry_run=True, targets=["app-b", "app-c"])
    assert states(typo)["targets"] == "failed"
    assert states(typo)["sync_target"] == "upstream_failed"  # never expanded


def test_the_deletion_guard_stops_a_run_when_okta_returns_far_fewer_users(
    airflow_db: None, dag: DAG, world: World
) -> None:
    assert str(run(dag, world, targets=["app-a"]).state) == "success"
    before = sorted((u["userName"], u.get("active")) for u in users(world["a"], world["token"]))
    d = world["okta"].state.directory
    for uid in list(d.user_ids)[-24:]:  # 60% of the users vanish from Okta (not the managers)
        if uid in d.users:
            if d.users[uid]["status"] != "DEPROVISIONED":
                d.lifecycle(uid, "deactivate")
            d.delete_user(uid)
    result = run(dag, world, targets=["app-a"])
    assert states(result)["sync_target[0]"] == "failed"
    after = sorted((u["userName"], u.get("active")) for u in users(world["a"], world["token"]))
    assert after == before  # the guard stopped it before any write


def test_a_target_that_is_down_fails_only_its_task_and_converges_when_back(
    airflow_db: None, dag: DAG, world: World
) -> None:
    with socket_free_port() as port:
        world["write"](b_url=f"http://127.0.0.1:{port}/down/v2")  # nothing listens there
    result = run(dag, world)
    s = states(result)
    assert s.get("sync_target[0]") == "success" and s.get("sync_target[1]") == "failed", s
    assert labels(result, "sync_target") == ["app-a", "app-b"]  # the failed one named too
    assert s["report"] == "success"  # the report still runs, for the targets that worked
    assert len(users(world["a"], world["token"])) == 40
    world["write"]()  # back
    again = run(dag, world)
    assert str(again.state) == "success", states(again)
    assert len(users(world["b"], world["token"])) == 40


class socket_free_port:
    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def test_lineage_assets_are_declared(dagbag: DagBag) -> None:
    dag: DAG = dagbag.get_dag("okta_resync")
    export = dag.get_task("export")
    assert {a.uri for a in export.inlets} == {"okta://okta/users", "okta://okta/groups"}
    assert [a.uri for a in export.outlets] == ["file:///scimflow/snapshots/okta"]
    sync = dag.get_task("sync_target")
    assert [getattr(o, "name", None) for o in sync.outlets] == ["scim_targets"]
    _ = json  # the module uses json in helpers of later tests


def lineage_events(run_id: str) -> list[dict[str, Any]]:
    """The OpenLineage events of one DAG run, from the session's file transport."""
    from airflow.providers.openlineage.plugins.listener import get_openlineage_listener

    # DAG-level events go through the listener's process pool: wait for it to drain
    get_openlineage_listener().before_stopping(None)
    path = Path(os.environ["SCIMFLOW_TEST_OPENLINEAGE_EVENTS"])
    assert path.exists(), f"no OpenLineage events in {path}: is OpenLineage on (tests/conftest.py)?"
    events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def airflow_run_id(event: dict[str, Any]) -> str | None:
        facets = event["run"].get("facets", {})
        task_facet = facets.get("airflow", {})  # task events
        dag_facet = facets.get("airflowDagRun", {})  # DAG events
        dag_run = task_facet.get("dagRun") or dag_facet.get("dagRun") or {}
        found: str | None = dag_run.get("run_id")
        return found

    return [e for e in events if airflow_run_id(e) == run_id]


def datasets(event: dict[str, Any], key: str) -> list[dict[str, str]]:
    """An event's inputs or outputs as namespace and name, in a stable order."""
    found = [{"namespace": d["namespace"], "name": d["name"]} for d in event.get(key, [])]
    return sorted(found, key=lambda d: (d["namespace"], d["name"]))


def test_lineage_events_name_the_okta_snapshot_and_scim_datasets(
    airflow_db: None, dag: DAG, world: World
) -> None:
    result = run(dag, world)
    assert str(result.state) == "success", states(result)
    events = lineage_events(result.run_id)
    complete = [e for e in events if e["eventType"] == "COMPLETE"]
    by_job: dict[str, list[dict[str, Any]]] = {}
    for e in complete:
        by_job.setdefault(e["job"]["name"], []).append(e)
    assert {e["job"]["namespace"] for e in complete} == {"scimflow"}
    snapshot = {"namespace": "file", "name": "/scimflow/snapshots/okta"}

    [export] = by_job["okta_resync.export"]
    assert datasets(export, "inputs") == [
        {"namespace": "okta://okta", "name": "groups"},
        {"namespace": "okta://okta", "name": "users"},
    ]
    assert datasets(export, "outputs") == [snapshot]

    # one COMPLETE per map index, each with its own run id; the alias's assets as outputs
    syncs = by_job["okta_resync.sync_target"]
    by_index = {e["run"]["facets"]["airflow"]["taskInstance"]["map_index"]: e for e in syncs}
    assert sorted(by_index) == [0, 1] and len({e["run"]["runId"] for e in syncs}) == 2
    for index, target in enumerate(["app-a", "app-b"]):
        event = by_index[index]
        assert snapshot in datasets(event, "inputs")
        assert datasets(event, "outputs") == [
            {"namespace": f"scim://{target}", "name": "Groups"},
            {"namespace": f"scim://{target}", "name": "Users"},
        ]
    # the DAG run's own COMPLETE is there once the listener's pool has drained
    assert "okta_resync" in by_job
