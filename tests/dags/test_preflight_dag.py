"""``scimflow_preflight`` run with ``dag.test()`` against the session's real services."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture()
def connections(kafka, postgres, scim_targets) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Airflow connections to the real services, as a deployment would set them."""
    a, b = scim_targets
    env = {
        "AIRFLOW_CONN_SCIMFLOW_KAFKA": json.dumps(
            {"conn_type": "kafka", "extra": {"bootstrap.servers": kafka.address}}
        ),
        "AIRFLOW_CONN_SCIMFLOW_STATE": json.dumps(
            {
                "conn_type": "postgres",
                "host": "127.0.0.1",
                "port": postgres.settings.postgres_port,
                "login": "scimflow",
                "password": postgres.password(),
                "schema": "scimflow",
            }
        ),
        "AIRFLOW_CONN_SCIM_A": json.dumps(
            {"conn_type": "http", "password": a.token(), "extra": {"base_url": a.address}}
        ),
        "AIRFLOW_CONN_SCIM_B": json.dumps(
            {"conn_type": "http", "password": b.token(), "extra": {"base_url": b.address}}
        ),
        "AIRFLOW_CONN_SCIM_BAD_TOKEN": json.dumps(
            {"conn_type": "http", "password": "not-the-token", "extra": {"base_url": a.address}}
        ),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _states(run) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {
        (ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"): str(ti.state)
        for ti in run.get_task_instances()
    }


def test_preflight_passes_on_a_healthy_stack(airflow_db, dagbag, connections) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.get_dag("scimflow_preflight")
    run = dag.test()
    assert str(run.state) == "success", _states(run)
    assert _states(run) == {
        "check_kafka": "success",
        "check_state_store": "success",
        "target_ids": "success",
        "check_target[0]": "success",
        "check_target[1]": "success",
    }


def test_a_refused_token_fails_only_that_target(airflow_db, dagbag, connections) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.get_dag("scimflow_preflight")
    for t in dag.tasks:  # the test wants the verdict, not the retries' waiting
        t.retries = 0
    run = dag.test(run_conf={"targets": ["scim_a", "scim_bad_token"]})
    states = _states(run)
    assert str(run.state) == "failed"
    assert states["check_target[0]"] == "success"
    assert states["check_target[1]"] == "failed"
    mapped = [ti for ti in run.get_task_instances() if ti.task_id == "check_target"]
    named = [ti.rendered_map_index for ti in sorted(mapped, key=lambda ti: ti.map_index)]
    assert named == ["scim_a", "scim_bad_token"]  # in the UI, the failed one by its name
    assert states["check_kafka"] == "success"
    assert states["check_state_store"] == "success"
