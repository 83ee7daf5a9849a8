"""Wiring of the ``okta_events`` DAG: Okta change events, micro-batch by micro-batch."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, task
from scimflow.airflow.assets import SCIM_TARGETS
from scimflow.airflow.stream import OKTA_EVENTS, REARM

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
2. **apply**: one mapped task per target: plan the batch's entities against the state
   store and apply. A target still down on the last retry gets the batch parked with the
   reason, so it never holds back the others.
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
    def consume(params: dict | None = None, run_id: str | None = None, ti=None) -> list[str]:
        import logging

        from scimflow.resync import load_config
        from scimflow.stream.batch import batch_dir, hydrate, save_changes
        from scimflow.stream.kafka import read_batch

        config = load_config(params["config_path"] or None)
        if config.kafka is None:
            raise ValueError("the configuration has no kafka section")
        batch = read_batch(config.kafka, max_events=params["max_events"] or None)
        run_dir = batch_dir(params["data_dir"] or None, str(run_id))
        save_changes(run_dir, batch.changes, batch.offsets)
        hydrated = hydrate(config, run_dir) if batch.changes else {"events": 0}
        if batch.changes:
            logging.getLogger(__name__).info(
                "data quality report: %s (%s)", hydrated["report"], hydrated
            )
        summary = {
            "run_dir": str(run_dir),
            "events": len(batch.changes),
            "dead_lettered": batch.dead_lettered,
            "read_seconds": round(batch.seconds, 2),
            "hydrate": hydrated,
        }
        ti.xcom_push(key="batch", value=summary)
        # the targets to apply the batch to (none when it is empty): the map of `apply`
        return [t.name for t in config.targets] if batch.changes else []

    @task(outlets=[SCIM_TARGETS])
    def apply(
        target: str,
        params: dict | None = None,
        run_id: str | None = None,
        ti=None,
        outlet_events=None,
    ) -> dict:

        from scimflow.airflow.assets import target_assets
        from scimflow.resync import load_config
        from scimflow.stream.batch import apply_to_target, batch_dir

        summary = apply_to_target(
            load_config(params["config_path"] or None),
            target,
            batch_dir(params["data_dir"] or None, str(run_id)),
            run_id=str(run_id),
            last_try=ti.try_number > ti.max_tries,
        )
        for asset in target_assets(target):
            outlet_events[SCIM_TARGETS].add(asset, extra={"writes": summary["writes"]})
        return summary

    @task(trigger_rule="none_failed", outlets=[REARM])
    def commit(
        applied: list[dict],
        params: dict | None = None,
        run_id: str | None = None,
        outlet_events=None,
    ) -> dict:
        from scimflow.resync import load_config
        from scimflow.stream.batch import batch_dir, finish
        from scimflow.stream.kafka import lag

        config = load_config(params["config_path"] or None)
        result = finish(config, batch_dir(params["data_dir"] or None, str(run_id)))
        left = lag(config.kafka)
        if left:
            # events arrived that rang no run: ring the doorbell once more
            outlet_events[REARM].add(OKTA_EVENTS, extra={"left": left})
        return {**result, "left": left, "targets": [a for a in applied if a]}

    commit(apply.expand(target=consume()))


okta_events()
