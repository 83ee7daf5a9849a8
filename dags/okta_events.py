"""Wiring of the ``okta_events`` DAG: Okta change events, micro-batch by micro-batch."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, task
from scimflow.airflow.assets import SCIM_TARGETS
from scimflow.airflow.stream import OKTA_EVENTS

DOC = """
### Okta events (real time)

Woken by the `okta_events` asset: a doorbell that rings on every message of the
`okta.events` Kafka topic. One run at a time; each run handles one bounded micro-batch.

1. **consume**: read the topic with the consumer group of the configuration (`kafka.group`)
   from its committed offsets up to the end offsets seen at the start (at most
   `kafka.batch_max` events). Messages that are not events go to the dead-letter topic.
2. **hydrate**: dedupe by event uuid and entity; read each named user's and group's current
   state from Okta (events only say *what* changed); validate with great-expectations and
   quarantine what fails; add records parked earlier because a target was down.
3. **apply**: one mapped task per target: plan the batch's entities against the state
   store and apply. A target still down on the last retry gets the batch parked with the
   reason, so it never holds back the others.
4. **commit**: remember the events' uuids (for `okta_catchup`), then commit the offsets.
   Only after every target's effect is durable: a failure or a killed worker before it
   replays the batch (idempotent), it never loses it.
5. **rearm**: rings the doorbell again when events are left on the topic.

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
    def consume(params: dict | None = None, run_id: str | None = None) -> dict:
        from scimflow.resync import load_config
        from scimflow.stream.batch import batch_dir, save_changes
        from scimflow.stream.kafka import read_batch

        config = load_config(params["config_path"] or None)
        if config.kafka is None:
            raise ValueError("the configuration has no kafka section")
        batch = read_batch(config.kafka, max_events=params["max_events"] or None)
        run_dir = batch_dir(params["data_dir"] or None, str(run_id))
        save_changes(run_dir, batch.changes, batch.offsets)
        return {
            "run_dir": str(run_dir),
            "events": len(batch.changes),
            "dead_lettered": batch.dead_lettered,
            "seconds": round(batch.seconds, 2),
        }

    @task
    def hydrate(batch: dict, params: dict | None = None) -> dict:
        import logging
        from pathlib import Path

        from scimflow.resync import load_config
        from scimflow.stream.batch import hydrate as run

        if not batch["events"]:
            return {"events": 0}
        result = run(load_config(params["config_path"] or None), Path(batch["run_dir"]))
        logging.getLogger(__name__).info("data quality report: %s (%s)", result["report"], result)
        return result

    @task
    def targets(hydrated: dict, params: dict | None = None) -> list[str]:
        from scimflow.resync import load_config

        if not hydrated["events"]:
            return []
        return [t.name for t in load_config(params["config_path"] or None).targets]

    @task(outlets=[SCIM_TARGETS])
    def apply(
        target: str,
        batch: dict,
        params: dict | None = None,
        run_id: str | None = None,
        ti=None,
        outlet_events=None,
    ) -> dict:
        from pathlib import Path

        from scimflow.airflow.assets import target_assets
        from scimflow.resync import load_config
        from scimflow.stream.batch import apply_to_target

        summary = apply_to_target(
            load_config(params["config_path"] or None),
            target,
            Path(batch["run_dir"]),
            run_id=str(run_id),
            last_try=ti.try_number > ti.max_tries,
        )
        for asset in target_assets(target):
            outlet_events[SCIM_TARGETS].add(asset, extra={"writes": summary["writes"]})
        return summary

    @task(trigger_rule="none_failed")
    def commit(batch: dict, applied: list[dict], params: dict | None = None) -> dict:
        from pathlib import Path

        from scimflow.resync import load_config
        from scimflow.stream.batch import finish

        result = finish(load_config(params["config_path"] or None), Path(batch["run_dir"]))
        return {**result, "targets": [a for a in applied if a]}

    @task(outlets=[OKTA_EVENTS])
    def rearm(committed: dict, params: dict | None = None) -> int:
        from airflow.sdk.exceptions import AirflowSkipException
        from scimflow.resync import load_config
        from scimflow.stream.kafka import lag

        left = lag(load_config(params["config_path"] or None).kafka)
        if not left:
            raise AirflowSkipException("nothing left on the topic")
        return left

    batch = consume()
    hydrated = hydrate(batch)
    applied = apply.partial(batch=batch).expand(target=targets(hydrated))
    rearm(commit(batch, applied))


okta_events()
