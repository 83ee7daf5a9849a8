"""Wiring of the ``scimflow_preflight`` DAG: every dependency answers before any sync runs."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import Param, dag, task
from scimflow.airflow.tasks import map_index_by

if TYPE_CHECKING:
    from typing import Unpack

    from airflow.sdk import Context

DOC = """
### scimflow preflight

Checks, without writing anything, that scimflow can reach what it needs:

* **Kafka** (`kafka_conn_id`): the broker answers and the `okta.events` and
  `okta.events.dlq` topics exist.
* **State store** (`state_conn_id`): the database accepts a query.
* **SCIM targets** (`targets`, one Airflow connection each): the target serves
  `/ServiceProviderConfig` and accepts its token on `/Users`; one mapped task per
  target, labelled with its connection id, so a broken target shows up alone.

Run it after changing a connection, or before unpausing the sync DAGs.
"""

default_args = {
    "owner": "scimflow",
    "retries": 2,
    "retry_delay": timedelta(seconds=10),
    "retry_exponential_backoff": True,
}


@dag(
    dag_id="scimflow_preflight",
    schedule=None,
    catchup=False,
    tags=["scimflow", "preflight"],
    doc_md=DOC,
    default_args=default_args,
    params={
        "kafka_conn_id": Param("scimflow_kafka", type="string"),
        "state_conn_id": Param("scimflow_state", type="string"),
        "targets": Param(["scim_a", "scim_b"], type="array", items={"type": "string"}),
    },
)
def scimflow_preflight() -> None:
    @task
    def check_kafka(**context: Unpack[Context]) -> dict[str, Any]:
        from scimflow.airflow.connections import kafka_config
        from scimflow.preflight import check_kafka
        from scimflow.services.kafka import EVENTS_DLQ_TOPIC, EVENTS_TOPIC

        config = kafka_config(context["params"]["kafka_conn_id"])
        return check_kafka(config["bootstrap.servers"], [EVENTS_TOPIC, EVENTS_DLQ_TOPIC])

    @task
    def check_state_store(**context: Unpack[Context]) -> dict[str, Any]:
        from scimflow.airflow.connections import state_store_url
        from scimflow.preflight import check_state_store

        return check_state_store(state_store_url(context["params"]["state_conn_id"]))

    @task
    def target_ids(**context: Unpack[Context]) -> list[str]:
        return list(context["params"]["targets"])

    @task(map_index_template=map_index_by("conn_id"))
    def check_target(conn_id: str) -> dict[str, Any]:
        from scimflow.airflow.connections import scim_target
        from scimflow.preflight import check_scim_target

        target = scim_target(conn_id)
        return check_scim_target(target.name, target.base_url, target.token)

    check_kafka()
    check_state_store()
    check_target.expand(conn_id=target_ids())


scimflow_preflight()
