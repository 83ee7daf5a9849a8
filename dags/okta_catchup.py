"""Wiring of the ``okta_catchup`` DAG: repair missed Event Hooks from the System Log."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import Param, dag, task
from airflow.timetables.interval import CronDataIntervalTimetable
from scimflow.airflow.stream import REARM

if TYPE_CHECKING:
    from typing import Unpack

    from airflow.sdk import Context

DOC = """
### Okta System Log catch-up

Every hour, for its data interval, reads Okta's System Log and re-publishes to
`okta.events` the provisioning events whose uuid the stream never processed (a lost
Event Hook delivery, a receiver outage). `okta_events` then applies them like any other:
a run that published something rings its doorbell; one that published nothing rings
nothing.

Catchup is on: after an outage, recover the window with a backfill, for example

    airflow backfill create --dag-id okta_catchup \\
        --from-date 2026-11-28T00:00:00 --to-date 2026-11-28T06:00:00

Okta keeps its System Log 90 days. With `SCIMFLOW_CATCHUP_START` (an ISO date, read
when the file is parsed), catchup is on from that hour: the scheduler runs every hour it
missed. Without it, catchup is off, so that unpausing a new install runs the latest hour
only instead of one run for every hour since a date in the past; missed hours are then
recovered with a backfill.

Params: `config_path` (default: `SCIMFLOW_CONFIG`), `dry_run` (count, publish nothing).
"""

_START = os.environ.get("SCIMFLOW_CATCHUP_START")
# catchup only from a start the operator chose: never a flood of runs on a new install
CATCHUP = _START is not None
START = datetime.fromisoformat(_START) if _START else datetime(2026, 11, 29, tzinfo=UTC)

default_args = {
    "owner": "scimflow",
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}


@dag(
    dag_id="okta_catchup",
    # hourly data intervals [start, end): a plain "@hourly" has zero-length ones in Airflow 3
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=START,
    catchup=CATCHUP,
    max_active_runs=1,
    tags=["scimflow", "stream", "catch-up"],
    doc_md=DOC,
    default_args=default_args,
    params={
        "config_path": Param("", type="string"),
        "dry_run": Param(False, type="boolean"),
    },
)
def okta_catchup() -> None:
    @task(outlets=[REARM])
    def republish(**context: Unpack[Context]) -> dict[str, Any]:
        from scimflow.airflow.stream import rearm
        from scimflow.airflow.tasks import data_interval
        from scimflow.resync import load_config
        from scimflow.stream.catchup import catch_up

        params = context["params"]
        since, until = data_interval(context)
        summary = catch_up(
            load_config(params["config_path"] or None), since, until, dry_run=params["dry_run"]
        )
        # rings okta_events only when it published something
        rearm(context["outlet_events"], summary["published"], why="published")
        return summary

    republish()


okta_catchup()
