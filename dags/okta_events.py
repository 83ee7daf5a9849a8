"""Wiring of the ``okta_events`` DAG: Okta change events, micro-batch by micro-batch."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import Param, dag, task
from scimflow.airflow.assets import SCIM_TARGETS
from scimflow.airflow.stream import OKTA_EVENTS, REARM
from scimflow.airflow.tasks import map_index_by

if TYPE_CHECKING:
    from typing import Unpack

    from airflow.sdk import Context

DOC = """
### Okta events (real time)

Woken by the `okta_events` asset: a doorbell that rings on every message of the
`okta.events` Kafka topic. One run at a time; each run handles one bounded micro-batch.

1. **consume**: read the topic with the consumer group of the configuration (`kafka.group`)
   from its committed offsets up to the end offsets seen at the start (at most
   `kafka.batch_max` events); messages that are not events go to the dead-letter topic.
   Then hydrate: dedupe by event uuid and entity; read each named user's and group's
   current state from Okta (events only say *what* changed); validate with
   great-expectations and quarantine what fails (the report's path is in the log); add
   records parked earlier because a target was down. (One task, not two: each task
   costs seconds of start-up, and this DAG is about latency.)
2. **apply**: one mapped task per target, labelled with the target's name: plan the
   batch's entities against the state store and apply. A target still down on the last
   retry gets the batch parked with the reason, so it never holds back the others.
3. **commit**: remember the events' uuids (for `okta_catchup`), then commit the offsets.
   Only after every target's effect is durable: a failure or a killed worker before it
   replays the batch (idempotent), it never loses it. If events are left on the topic
   it rings the doorbell again (through the `okta_events_rearm` alias).

Params: `config_path` (default: `SCIMFLOW_CONFIG`), `data_dir`, `max_events`.
"""

default_args = {
    "owner": "scimflow",
    "retries": 3,
    "retry_delay": timedelta(seconds=5),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=2),
}


@dag(
    dag_id="okta_events",
    schedule=[OKTA_EVENTS],
    catchup=False,
    max_active_runs=1,
    tags=["scimflow", "stream"],
    doc_md=DOC,
    default_args=default_args,
    params={
        "config_path": Param("", type="string"),
        "data_dir": Param("", type="string"),
        "max_events": Param(0, type="integer", minimum=0),
    },
)
def okta_events() -> None:
    @task(inlets=[OKTA_EVENTS])
    def consume(**context: Unpack[Context]) -> list[str]:
        from scimflow.resync import load_config
        from scimflow.stream.batch import batch_dir
        from scimflow.stream.consume import consume_batch

        params = context["params"]
        batch = consume_batch(
            load_config(params["config_path"] or None),
            batch_dir(params["data_dir"] or None, context["run_id"]),
            max_events=params["max_events"] or None,
        )
        context["ti"].xcom_push(key="batch", value=batch.to_xcom())
        return list(batch.target_names)  # what `apply` maps over

    @task(outlets=[SCIM_TARGETS], map_index_template=map_index_by("target"))
    def apply(target: str, **context: Unpack[Context]) -> dict[str, Any]:
        from scimflow.airflow.assets import record_target_writes
        from scimflow.airflow.tasks import is_last_try
        from scimflow.resync import load_config
        from scimflow.stream.batch import apply_to_target, batch_dir

        params, run_id = context["params"], context["run_id"]
        summary: dict[str, Any] = apply_to_target(
            load_config(params["config_path"] or None),
            target,
            batch_dir(params["data_dir"] or None, run_id),
            run_id=run_id,
            last_try=is_last_try(context["ti"]),
        )
        record_target_writes(context["outlet_events"], target, writes=summary["writes"])
        return summary

    @task(trigger_rule="none_failed", outlets=[REARM])
    def commit(applied: list[dict[str, Any] | None], **context: Unpack[Context]) -> dict[str, Any]:
        from scimflow.airflow.stream import rearm
        from scimflow.airflow.tasks import returned
        from scimflow.resync import load_config
        from scimflow.stream.batch import batch_dir
        from scimflow.stream.consume import commit_batch

        params = context["params"]
        result = commit_batch(
            load_config(params["config_path"] or None),
            batch_dir(params["data_dir"] or None, context["run_id"]),
        )
        rearm(context["outlet_events"], result.left)
        return result.to_xcom(returned(applied))

    # Airflow types a task call like the function, not as taking XComArgs (apache/airflow#39514)
    commit(apply.expand(target=consume()))  # type: ignore[arg-type]


okta_events()
