"""The demo reports the ``okta_resync`` run that did the work, and names it.

Unpausing a ``@daily`` DAG whose next run time has passed (its DAG parsed on an earlier
day) makes Airflow create that scheduled run at once. The fake Airflow below does that
on the unpausing PATCH, as the scheduler does (checked on Airflow 3.3 standalone), and
answers the REST calls the demo makes with runs and their XComs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from scimflow import cli
from scimflow.demo import AirflowApi, describe_resync, run_resync
from scimflow.services.airflow import AirflowStandalone
from scimflow.services.settings import ServicesSettings

DAG = "okta_resync"
BASE = f"/api/v2/dags/{DAG}"


def _summary(target: str, created: int) -> dict[str, Any]:
    rows = dict.fromkeys(
        ("created", "updated", "deactivated", "deleted", "linked", "groups", "members", "parked"),
        0,
    )
    rows["created"] = created
    rows["linked"] = 0 if created else 2000
    return {"target": target, "rows": rows, "writes": created, "seconds": 1.5}


class FakeAirflow:
    """One DAG, its runs and their XComs.

    ``paused``/``due``: the DAG's state before the demo. ``schedules_on``: when the fake
    scheduler makes the due run ("unpause": at once; "trigger": only after the demo's
    trigger, as when the scheduler is slower than the trigger). ``writer``: which run
    does the work: "first" (the first made; max_active_runs=1) or a run type.
    """

    def __init__(
        self, *, paused: bool, due: bool, schedules_on: str = "unpause", writer: str = "first"
    ) -> None:
        self.paused = paused
        self.writer = writer
        now = datetime.now(UTC)
        self.next_run_after = now - timedelta(hours=20) if due else now + timedelta(hours=4)
        self.due = due
        self.schedules_on = schedules_on
        self.runs: list[dict[str, Any]] = []
        self.triggers = 0
        self.work_done = False
        self.writes: dict[str, int] = {}

    def _make_run(self, run_id: str, run_type: str) -> dict[str, Any]:
        run = {
            "dag_run_id": run_id,
            "run_type": run_type,
            "queued_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "state": "success",
        }
        self.runs.append(run)
        # the run that executes first exports 2,000 users into empty targets; any other
        # finds the targets equal to Okta
        if self.writer == "first":
            self.writes[run_id] = 0 if self.work_done else 2000
            self.work_done = True
        else:
            self.writes[run_id] = 2000 if run_type == self.writer else 0
        return run

    def _schedule(self) -> None:
        if self.due:
            self.due = False
            self._make_run("scheduled__2026-12-04T00:00:00+00:00", "scheduled")

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if path == "/auth/token":
            return httpx.Response(201, json={"access_token": "t"})
        if path == BASE and method == "GET":
            return httpx.Response(
                200,
                json={
                    "dag_id": DAG,
                    "is_paused": self.paused,
                    "next_dagrun_run_after": self.next_run_after.isoformat(),
                },
            )
        if path == BASE and method == "PATCH":
            was_paused, self.paused = self.paused, False
            if was_paused and self.schedules_on == "unpause":
                self._schedule()
            return httpx.Response(200, json={"is_paused": False})
        if path == f"{BASE}/dagRuns" and method == "POST":
            self.triggers += 1
            run = self._make_run(f"manual__demo{self.triggers}", "manual")
            if self.schedules_on == "trigger":
                self._schedule()
            return httpx.Response(200, json=run)
        if path == f"{BASE}/dagRuns":
            newest_first = sorted(self.runs, key=lambda r: r["queued_at"], reverse=True)
            return httpx.Response(200, json={"dag_runs": newest_first})
        for run in self.runs:
            run_path = f"{BASE}/dagRuns/{run['dag_run_id']}"
            if path == run_path:
                return httpx.Response(200, json=run)
            if path == f"{run_path}/taskInstances":
                tis = [{"task_id": "export", "state": "success", "map_index": -1}]
                tis += [
                    {"task_id": "sync_target", "state": "success", "map_index": i} for i in (0, 1)
                ]
                return httpx.Response(200, json={"task_instances": tis})
            if path == f"{run_path}/taskInstances/sync_target/xcomEntries/return_value":
                target = ("scim-a", "scim-b")[int(request.url.params["map_index"])]
                value = _summary(target, self.writes[run["dag_run_id"]])
                return httpx.Response(200, json={"value": value})
            if path == f"{run_path}/taskInstances/report/xcomEntries/return_value":
                return httpx.Response(200, json={"value": f"/data/{run['dag_run_id']}/report.md"})
        return httpx.Response(404, json={})


def _api(tmp_path: Path, fake: FakeAirflow) -> AirflowApi:
    settings = ServicesSettings(home=tmp_path, cache=tmp_path / "cache", dags_folder=tmp_path)
    return AirflowApi(AirflowStandalone(settings), transport=httpx.MockTransport(fake))


def test_the_first_demo_follows_the_run_that_unpausing_scheduled(tmp_path: Path) -> None:
    fake = FakeAirflow(paused=True, due=True)
    told: list[tuple[str, str]] = []
    outcome = run_resync(_api(tmp_path, fake), DAG, on_start=lambda r, h: told.append((r, h)))
    scheduled = "scheduled__2026-12-04T00:00:00+00:00"
    assert fake.triggers == 0  # no second run that would find nothing to do
    assert told == [(scheduled, "scheduled")]
    assert [r.run_id for r in outcome.runs] == [scheduled]
    assert outcome.shown.run_id == scheduled
    assert outcome.shown.writes == 4000
    lines = describe_resync(outcome, DAG)
    assert lines[0].startswith(f"the run that did the work: {scheduled} (scheduled")
    assert len(lines) == 1


def test_a_scheduled_run_that_came_after_the_trigger_is_the_one_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the scheduler made the due run only after the demo had given up waiting for it and
    # triggered one; with max_active_runs=1 the demo's run ran first and did the work
    fake = FakeAirflow(paused=True, due=True, schedules_on="trigger")
    outcome = run_resync(_api(tmp_path, fake), DAG, scheduled_wait=0)
    assert fake.triggers == 1
    assert [r.run_id for r in outcome.runs] == [
        "manual__demo1",
        "scheduled__2026-12-04T00:00:00+00:00",
    ]
    assert outcome.shown.run_id == "manual__demo1"
    lines = describe_resync(outcome, DAG)
    assert lines[0] == (
        "the run that did the work: manual__demo1 (manual: triggered by the demo, as the "
        "due scheduled run had not appeared yet), 4000 writes"
    )
    assert lines[1] == (
        "also ran: scheduled__2026-12-04T00:00:00+00:00 (scheduled, success), 0 writes: "
        "nothing left to do"
    )
    # what the demo prints: the shown run's tasks and per-target table, then the names
    cli._print_resync(outcome, DAG)
    out = " ".join(capsys.readouterr().out.split())  # the table's title may wrap
    assert f"{DAG} run manual__demo1: success" in out
    assert "the run that did the work: manual__demo1" in out
    assert out.count("2000") == 2  # created, per target


def test_the_run_that_wrote_is_shown_even_when_the_demo_followed_another(
    tmp_path: Path,
) -> None:
    # the scheduled run executed first: it did the work, the demo's own found nothing
    fake = FakeAirflow(paused=True, due=True, schedules_on="trigger", writer="scheduled")
    outcome = run_resync(_api(tmp_path, fake), DAG, scheduled_wait=0)
    scheduled = "scheduled__2026-12-04T00:00:00+00:00"
    assert outcome.followed == "manual__demo1"
    assert outcome.shown.run_id == scheduled
    lines = describe_resync(outcome, DAG)
    assert lines[0].startswith(f"the run that did the work: {scheduled} (scheduled: Airflow")
    assert lines[1].startswith("also ran: manual__demo1 (manual, success), 0 writes")


def test_a_second_demo_triggers_a_run_that_finds_nothing_to_change(tmp_path: Path) -> None:
    fake = FakeAirflow(paused=False, due=False)
    fake.work_done = True  # the targets already equal Okta
    outcome = run_resync(_api(tmp_path, fake), DAG)
    assert fake.triggers == 1
    assert outcome.how == "triggered"
    assert outcome.shown.run_id == "manual__demo1"
    assert outcome.shown.writes == 0
    assert describe_resync(outcome, DAG) == [
        "manual__demo1 (manual: triggered by the demo, as no scheduled run was due) found "
        "nothing to change: every target already equals Okta (0 writes)"
    ]
