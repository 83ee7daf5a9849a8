"""Wiring of the ``okta_resync`` DAG: a full reconcile from Okta to every SCIM target."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, task
from scimflow.airflow.assets import OKTA_GROUPS, OKTA_USERS, SCIM_TARGETS, SNAPSHOT

DOC = """
### Okta full resync

Repairs whatever the event stream missed and whatever was changed by hand in a target.

1. **export**: every Okta user, group and membership into a run-scoped Parquet snapshot.
2. **validate**: great-expectations suites per record kind; failing records are
   quarantined (parked with their reasons, not pushed); the run stops only when the
   failed share passes `max_failed_share`. The report's path is in the task log.
3. **sync_target**: one mapped task per target: read the target, plan, check the
   deletion guard, apply. Three retries with exponential backoff; a failing target
   fails only its own task.
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
    def export(params: dict | None = None, run_id: str | None = None) -> dict:
        from scimflow.resync import export_snapshot, load_config, snapshot_dir

        config = load_config(params["config_path"] or None)
        return export_snapshot(config, snapshot_dir(params["data_dir"] or None, str(run_id)))

    @task
    def validate(snapshot: dict, params: dict | None = None) -> dict:
        import logging
        from pathlib import Path

        from scimflow.resync import validate_snapshot

        result = validate_snapshot(
            Path(snapshot["snapshot"]), max_failed_share=params["max_failed_share"]
        )
        logging.getLogger(__name__).info("data quality report: %s (%s)", result["report"], result)
        return result

    @task
    def targets(params: dict | None = None) -> list[str]:
        from scimflow.resync import load_config

        names = [t.name for t in load_config(params["config_path"] or None).targets]
        wanted = params["targets"] or names
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            raise ValueError(f"unknown targets {unknown}; configured: {names}")
        return [n for n in names if n in wanted]

    @task(inlets=[SNAPSHOT], outlets=[SCIM_TARGETS])
    def sync_target(
        target: str,
        snapshot: dict,
        quality: dict,
        params: dict | None = None,
        run_id: str | None = None,
        outlet_events=None,
    ) -> dict:
        from pathlib import Path

        from scimflow.airflow.assets import target_assets
        from scimflow.resync import load_config, sync_from_snapshot

        summary = sync_from_snapshot(
            load_config(params["config_path"] or None),
            target,
            Path(snapshot["snapshot"]),
            run_id=str(run_id),
            dry_run=params["dry_run"],
            force=params["force"],
        )
        if not params["dry_run"]:
            for asset in target_assets(target):
                outlet_events[SCIM_TARGETS].add(asset, extra={"writes": summary["writes"]})
        return summary

    @task(trigger_rule="all_done")
    def report(summaries: list[dict], quality: dict, snapshot: dict) -> str:
        from pathlib import Path

        from scimflow.resync import drift_report

        done = [s for s in summaries if s]
        return str(drift_report(done, quality, Path(snapshot["snapshot"]) / "resync-report.md"))

    snap = export()
    quality = validate(snap)
    summaries = sync_target.partial(snapshot=snap, quality=quality).expand(target=targets())
    report(summaries, quality, snap)


okta_resync()
