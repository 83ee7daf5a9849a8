"""Wiring of the ``okta_resync`` DAG: a full reconcile from Okta to every SCIM target."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import Param, dag, task
from scimflow.airflow.assets import OKTA_GROUPS, OKTA_USERS, SCIM_TARGETS, SNAPSHOT
from scimflow.airflow.tasks import map_index_by

if TYPE_CHECKING:
    from typing import Unpack

    from airflow.sdk import Context

DOC = """
### Okta full resync

Repairs whatever the event stream missed and whatever was changed by hand in a target.

1. **export**: every Okta user, group and membership into a run-scoped Parquet snapshot.
2. **validate**: great-expectations suites per record kind; failing records are
   quarantined (parked with their reasons, not pushed); the run stops only when the
   failed share passes `max_failed_share`. The report's path is in the task log.
3. **sync_target**: one mapped task per target, labelled with the target's name: read
   the target, plan, check the deletion guard, apply. Three retries with exponential
   backoff; a failing target fails only its own task.
4. **report**: operations, parked records and duration per target (Markdown).

Params: `targets` (empty: all), `dry_run` (plan only, write nothing), `force`
(override the deletion guard), `config_path` (default: `SCIMFLOW_CONFIG`).
"""

default_args = {
    "owner": "scimflow",
    "retries": 3,
    "retry_delay": timedelta(seconds=20),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}


@dag(
    dag_id="okta_resync",
    schedule="@daily",
    catchup=False,
    max_active_runs=1,
    tags=["scimflow", "resync"],
    doc_md=DOC,
    default_args=default_args,
    params={
        "targets": Param([], type="array", items={"type": "string"}),
        "dry_run": Param(False, type="boolean"),
        "force": Param(False, type="boolean"),
        "config_path": Param("", type="string"),
        "max_failed_share": Param(0.05, type="number", minimum=0, maximum=1),
        "data_dir": Param("", type="string"),
    },
)
def okta_resync() -> None:
    @task(inlets=[OKTA_USERS, OKTA_GROUPS], outlets=[SNAPSHOT])
    def export(**context: Unpack[Context]) -> dict[str, Any]:
        from scimflow.resync import export_snapshot, load_config, snapshot_dir

        params = context["params"]
        return export_snapshot(
            load_config(params["config_path"] or None),
            snapshot_dir(params["data_dir"] or None, context["run_id"]),
        )

    @task
    def validate(snapshot: dict[str, Any], **context: Unpack[Context]) -> dict[str, Any]:
        import logging
        from pathlib import Path

        from scimflow.resync import validate_snapshot

        result = validate_snapshot(
            Path(snapshot["snapshot"]), max_failed_share=context["params"]["max_failed_share"]
        )
        logging.getLogger(__name__).info("data quality report: %s (%s)", result["report"], result)
        return result

    @task
    def targets(**context: Unpack[Context]) -> list[str]:
        from scimflow.fanout import select_targets
        from scimflow.resync import load_config

        params = context["params"]
        return select_targets(load_config(params["config_path"] or None), params["targets"])

    @task(inlets=[SNAPSHOT], outlets=[SCIM_TARGETS], map_index_template=map_index_by("target"))
    def sync_target(
        target: str,
        snapshot: dict[str, Any],
        quality: dict[str, Any],
        **context: Unpack[Context],
    ) -> dict[str, Any]:
        from pathlib import Path

        from scimflow.airflow.assets import record_target_writes
        from scimflow.resync import load_config, sync_from_snapshot

        params = context["params"]
        summary: dict[str, Any] = sync_from_snapshot(
            load_config(params["config_path"] or None),
            target,
            Path(snapshot["snapshot"]),
            run_id=context["run_id"],
            dry_run=params["dry_run"],
            force=params["force"],
        )
        record_target_writes(
            context["outlet_events"], target, writes=summary["writes"], dry_run=params["dry_run"]
        )
        return summary

    @task(trigger_rule="all_done")
    def report(
        summaries: list[dict[str, Any] | None], quality: dict[str, Any], snapshot: dict[str, Any]
    ) -> str:
        from pathlib import Path

        from scimflow.airflow.tasks import returned
        from scimflow.resync import drift_report

        out = Path(snapshot["snapshot"]) / "resync-report.md"
        return str(drift_report(returned(summaries), quality, out))

    # Airflow types a task call like the function, not as taking XComArgs (apache/airflow#39514)
    snap = export()
    quality = validate(snap)  # type: ignore[arg-type]
    summaries = sync_target.partial(snapshot=snap, quality=quality).expand(target=targets())
    report(summaries, quality, snap)  # type: ignore[arg-type]


okta_resync()
