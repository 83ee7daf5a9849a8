"""``okta_events`` with ``dag.test()``: real Kafka, the Okta emulator, scim2-server targets.

Events are published as the receiver publishes them; the runs read them with their own
consumer group (the doorbell only wakes the DAG, and dag.test() stands in for it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import httpx
import pytest

if TYPE_CHECKING:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dagrun import DagRun
    from airflow.sdk import DAG
    from scimflow.okta.emulator.directory import Directory
    from scimflow.okta.emulator.server import EmulatorServer
    from scimflow.scim.config import KafkaConfig
    from scimflow.services import KafkaBroker

    from tests.support.fixtures import ScimTenant, StartEmulator
    from tests.support.stream_world import WriteConfig

pytestmark = pytest.mark.integration


class World(TypedDict):
    """The ``world`` fixture: a :class:`StreamWorld`'s parts these tests use."""

    okta: EmulatorServer
    config: Path  # the configuration file the runs are given
    kafka: Callable[[], KafkaConfig | None]  # its Kafka section, read again
    write: WriteConfig
    a: str  # base URL of target app-a
    b: str  # base URL of target app-b
    token: str
    state: str  # the state store's URL


@pytest.fixture()
def world(
    okta_emulator: StartEmulator,
    scim_tenant: ScimTenant,
    kafka: KafkaBroker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> World:
    from scimflow.scim.config import load_config

    from tests.support.stream_world import stream_world

    w = stream_world(okta_emulator, scim_tenant, kafka, tmp_path, monkeypatch, seed=5)
    return {
        "okta": w.okta,
        "config": w.path,
        "kafka": lambda: load_config(w.path).kafka,
        "write": w.write,
        "a": w.a,
        "b": w.b,
        "token": w.token,
        "state": w.state,
    }


@pytest.fixture()
def dag(dagbag: DagBag) -> Iterator[DAG]:
    """Retries shortened: these tests want the verdicts, not the waits."""
    from datetime import timedelta

    dag: DAG = dagbag.get_dag("okta_events")
    saved = {t.task_id: (t.retries, t.retry_delay, t.retry_exponential_backoff) for t in dag.tasks}
    for t in dag.tasks:
        t.retries, t.retry_delay, t.retry_exponential_backoff = 0, timedelta(seconds=1), False
    yield dag
    for t in dag.tasks:
        t.retries, t.retry_delay, t.retry_exponential_backoff = saved[t.task_id]


def run(dag: DAG, world: World) -> DagRun:
    conf = {"config_path": str(world["config"]), "data_dir": "", "max_events": 0}
    result: DagRun = dag.test(run_conf=conf)
    return result


def states(run: DagRun) -> dict[str, str]:
    return {
        (ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"): str(ti.state)
        for ti in run.get_task_instances()
    }


def xcom(run: DagRun, task_id: str, map_index: int = -1, key: str = "return_value") -> Any:
    ti = next(
        t for t in run.get_task_instances() if t.task_id == task_id and t.map_index == map_index
    )
    return ti.xcom_pull(task_ids=task_id, map_indexes=map_index, key=key)


def labels(run: DagRun, task_id: str) -> list[str | None]:
    """The mapped task instances' labels in the UI (``rendered_map_index``), by map index."""
    tis = sorted(
        (ti for ti in run.get_task_instances() if ti.task_id == task_id),
        key=lambda ti: ti.map_index,
    )
    return [ti.rendered_map_index for ti in tis]


def scim_users(base: str, token: str) -> dict[str, dict[str, Any]]:
    resp = httpx.get(
        f"{base}/Users", params={"count": 1000}, headers={"Authorization": f"Bearer {token}"}
    )
    return {u["userName"]: u for u in resp.json().get("Resources", [])}


def expected(d: Directory, okta_ids: Iterable[str]) -> dict[str, tuple[bool, str | None]]:
    """userName → (active, title) of the users Okta still has."""
    out: dict[str, tuple[bool, str | None]] = {}
    for uid in okta_ids:
        user = d.users.get(uid)
        if user is not None:
            out[user["profile"]["login"]] = (
                user["status"] not in ("SUSPENDED", "DEPROVISIONED"),
                user["profile"].get("title"),
            )
    return out


def test_churn_events_converge_and_a_second_run_reads_nothing(
    airflow_db: None, dag: DAG, world: World
) -> None:
    from scimflow.okta.emulator.churn import ChurnDriver
    from scimflow.stream.kafka import lag, publish

    d = world["okta"].state.directory
    before = len(d.log)
    ChurnDriver(d, rate=1000, seed=3).run(count=25)
    events = d.log[before:]
    publish(world["kafka"](), events + events[::3])  # some twice, out of order

    first = run(dag, world)
    assert str(first.state) == "success", states(first)
    assert xcom(first, "consume", key="batch")["events"] == len(events) + len(events[::3])
    assert xcom(first, "consume", key="batch")["hydrate"]["unique_events"] == len(events)
    # one apply per target, named by the target in the UI
    assert xcom(first, "consume") == ["app-a", "app-b"]
    assert labels(first, "apply") == ["app-a", "app-b"]
    assert [xcom(first, "apply", i)["target"] for i in (0, 1)] == ["app-a", "app-b"]
    named = {t["id"] for e in events for t in e["target"] if t["type"] == "User"}
    for base in (world["a"], world["b"]):
        got = scim_users(base, world["token"])
        want = expected(d, named)
        assert {k: (u["active"], u.get("title")) for k, u in got.items() if k in want} == want
    assert lag(world["kafka"]()) == 0
    assert xcom(first, "commit")["left"] == 0  # nothing left: the doorbell is not rung again

    second = run(dag, world)
    assert str(second.state) == "success", states(second)
    assert xcom(second, "consume", key="batch")["events"] == 0
    assert xcom(second, "consume") == []
    assert states(second)["commit"] == "success"


def test_a_failing_target_task_retries_then_parks_and_the_batch_is_committed(
    airflow_db: None, dag: DAG, world: World
) -> None:
    from scimflow.state.store import StateStore
    from scimflow.stream.kafka import lag, publish

    world["write"]("http://127.0.0.1:9/v2")  # app-b: nothing listens there
    apply = dag.get_task("apply")
    apply.retries = 1
    d = world["okta"].state.directory
    before = len(d.log)
    uid = d.user_ids[2]
    d.update_profile(uid, {"title": "Head of Data"})
    publish(world["kafka"](), d.log[before:])
    result = run(dag, world)
    assert str(result.state) == "success", states(result)
    tis = {(ti.task_id, ti.map_index): ti for ti in result.get_task_instances()}
    assert tis[("apply", 1)].try_number == 2  # failed once, retried, parked on the last try
    assert labels(result, "apply") == ["app-a", "app-b"]
    assert xcom(result, "apply", 1)["unavailable"]
    assert xcom(result, "apply", 0)["writes"] == 1
    assert lag(world["kafka"]()) == 0
    with StateStore(world["state"]) as store:
        assert [p.okta_id for p in store.parked("app-b")] == [uid]
        assert store.parked("app-a") == []


def test_catchup_republishes_what_the_hooks_dropped_and_the_stream_repairs_it(
    airflow_db: None, dag: DAG, dagbag: DagBag, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def monkeypatch_retries(d: DAG) -> None:
        for t in d.tasks:  # restored after the test: the DagBag is the session's
            monkeypatch.setattr(t, "retries", 0)

    from datetime import UTC, datetime, timedelta

    from scimflow.state.store import StateStore
    from scimflow.stream.kafka import lag, publish

    d = world["okta"].state.directory
    # delivered and processed: these are seen and must not be published again
    before = len(d.log)
    d.update_profile(d.user_ids[1], {"title": "Delivered"})
    delivered = d.log[before:]
    publish(world["kafka"](), delivered)
    assert str(run(dag, world).state) == "success"
    # dropped: the hooks never delivered these (only the System Log has them)
    before = len(d.log)
    for uid in d.user_ids[6:9]:
        d.update_profile(uid, {"title": "Missed"})
    d.lifecycle(d.user_ids[9], "suspend") if d.users[d.user_ids[9]]["status"] == "ACTIVE" else None
    dropped = d.log[before:]
    assert lag(world["kafka"]()) == 0

    catchup: DAG = dagbag.get_dag("okta_catchup")
    monkeypatch_retries(catchup)
    published = 0
    first = datetime.fromisoformat(delivered[0]["published"].replace("Z", "+00:00"))
    last = datetime.fromisoformat(dropped[-1]["published"].replace("Z", "+00:00"))
    hour = first.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    while hour <= last:  # one run per hourly interval the events fall in
        # a manual run at T covers the interval that ends at T: [T - 1 h, T)
        result: DagRun = catchup.test(
            logical_date=hour + timedelta(hours=1),
            run_conf={"config_path": str(world["config"]), "dry_run": False},
        )
        assert str(result.state) == "success"
        summary = xcom(result, "republish")
        assert summary["since"] == hour.strftime("%Y-%m-%dT%H:00:00.000Z")
        published += summary["published"]
        # it rings okta_events only when it published something
        expected_rings = [{"published": summary["published"]}] if summary["published"] else []
        assert catchup_rings(result) == expected_rings
        hour += timedelta(hours=1)
    assert published == len(dropped)
    assert lag(world["kafka"]()) == len(dropped)

    repaired = run(dag, world)
    assert str(repaired.state) == "success", states(repaired)
    named = {t["id"] for e in dropped for t in e["target"] if t["type"] == "User"}
    for base in (world["a"], world["b"]):
        got = scim_users(base, world["token"])
        want = expected(d, named)
        assert {k: (u["active"], u.get("title")) for k, u in got.items() if k in want} == want
    with StateStore(world["state"]) as store:
        assert store.unseen(e["uuid"] for e in dropped + delivered) == set()
    # the next hour: nothing unseen, nothing published, no ring
    again: DagRun = catchup.test(
        logical_date=hour + timedelta(hours=1),
        run_conf={"config_path": str(world["config"]), "dry_run": False},
    )
    assert xcom(again, "republish")["published"] == 0
    assert catchup_rings(again) == []


def catchup_rings(result: DagRun) -> list[dict[str, Any]]:
    """The doorbell rings (asset events of okta_events) a catch-up run made."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from scimflow.airflow.stream import OKTA_EVENTS

    with create_session() as session:
        return [
            dict(e.extra)
            for e in session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(
                AssetModel.uri == OKTA_EVENTS.uri,
                AssetEvent.source_run_id == result.run_id,
                AssetEvent.source_task_id == "republish",
            )
        ]


def test_end_to_end_churn_hooks_receiver_kafka_dag(
    airflow_db: None, dag: DAG, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The emulator's churn driver delivers Event Hooks (duplicates and out of order) to the
    real receiver, which writes them to Kafka; okta_events runs until the topic is drained."""
    import socket
    import threading

    import uvicorn
    from scimflow.okta.emulator.churn import ChurnDriver
    from scimflow.receiver import create_app
    from scimflow.scim.config import ReceiverConfig, SecretRef
    from scimflow.services.process import wait_until
    from scimflow.state.store import StateStore
    from scimflow.stream.kafka import lag

    monkeypatch.setenv("E2E_HOOK_SECRET", "e2e-hook-secret")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    kafka = world["kafka"]()
    assert kafka is not None
    app = create_app(ReceiverConfig(port=port, secret=SecretRef(env="E2E_HOOK_SECRET")), kafka)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: server.started, timeout=60, interval=0.05, alive=thread.is_alive)
        okta = world["okta"]
        resp = httpx.post(
            f"{okta.url}/emulator/hooks",
            json={
                "url": f"http://127.0.0.1:{port}/okta/events",
                "auth_value": "e2e-hook-secret",
                "batch_size": 7,
                "batch_wait": 0.05,
                "duplicate_rate": 0.3,
                "reorder": True,
                "seed": 2,
            },
            headers={"Authorization": "SSWS emulator-token"},
        )
        assert resp.status_code == 200, resp.text
        d = okta.state.directory
        before = len(d.log)
        ChurnDriver(d, rate=200, seed=11).run(count=40)
        assert okta.state.hooks.flush(30)
        events = d.log[before:]
        stats = okta.state.hooks.stats()
        assert stats["duplicates_sent"] > 0 and stats["events_dropped"] == 0, stats
    finally:
        server.should_exit = True
        thread.join(30)
    assert lag(kafka) >= len(events)  # every event stored before the hook got its 200

    for _ in range(5):  # the doorbell's job, done by hand: run until nothing is left
        result = run(dag, world)
        assert str(result.state) == "success", states(result)
        if lag(kafka) == 0:
            break
    assert lag(kafka) == 0
    named = {t["id"] for e in events for t in e["target"] if t["type"] == "User"}
    want = expected(d, named)
    for base in (world["a"], world["b"]):
        got = scim_users(base, world["token"])
        assert {k: (u["active"], u.get("title")) for k, u in got.items() if k in want} == want
    uuids = {e["uuid"] for e in events}
    with StateStore(world["state"]) as store:
        writes = [r for r in store.audit("app-a", limit=5000) if r["outcome"] == "applied"]
        assert store.unseen(uuids) == set()
    assert writes
    for row in writes:  # each write names the Okta events that caused it
        assert row["cause"].startswith("okta-event:")
        assert set(row["cause"].split(":", 1)[1].split(",")) <= uuids


def test_a_run_that_leaves_events_on_the_topic_rings_the_doorbell_again(
    airflow_db: None, dag: DAG, world: World
) -> None:
    """The throttled doorbell passes messages over: the commit's lag check is what makes
    sure none waits for a next message."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from scimflow.airflow.stream import OKTA_EVENTS
    from scimflow.stream.kafka import lag, publish

    d = world["okta"].state.directory
    before = len(d.log)
    for uid in d.user_ids[:5]:
        d.update_profile(uid, {"title": "Rearm Tester"})
    publish(world["kafka"](), d.log[before:])
    conf = {"config_path": str(world["config"]), "data_dir": "", "max_events": 2}
    result: DagRun = dag.test(run_conf=conf)
    assert str(result.state) == "success", states(result)
    assert xcom(result, "commit")["left"] == 3 == lag(world["kafka"]())

    def rings() -> list[dict[str, Any]]:
        with create_session() as session:
            return [
                e.extra
                for e in session.query(AssetEvent)
                .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .filter(
                    AssetModel.uri == OKTA_EVENTS.uri,
                    AssetEvent.source_run_id == result.run_id,
                    AssetEvent.source_task_id == "commit",
                )
            ]

    assert rings() == [{"left": 3}]
    # the run it rings takes the rest, and rings no more
    result = dag.test(run_conf={**conf, "max_events": 0})
    assert xcom(result, "commit")["left"] == 0 == lag(world["kafka"]())
    assert rings() == []
