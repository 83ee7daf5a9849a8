"""The local demo: the whole stack up, a DAG run through Airflow's REST API.

The demo runs ``okta_resync``: a full reconcile from the Okta emulator (seeded with
2,000 users and 100 groups) to both SCIM targets, and reports what each target got.
``okta_resync`` is ``@daily`` (a cron trigger at midnight, catchup off): when its next
run time has already passed as the demo unpauses it (a home whose Airflow parsed the DAG
on an earlier day), unpausing makes Airflow create that scheduled run at once.
:func:`run_resync` then follows that run instead of triggering a second one (which would
find nothing left to do); otherwise (a fresh home: next run at the coming midnight) it
triggers a run. It reports the run that wrote, naming it and how it came about.

Then the real-time path: ``okta_events`` is unpaused, the emulator's churn driver
changes the directory for a while, its Event Hooks go through the receiver to Kafka,
the doorbell wakes ``okta_events``, and :func:`stream_phase` reports the end-to-end
latency from each change to its SCIM write (from the audit log).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from scimflow.errors import ServiceError
from scimflow.services.airflow import ADMIN_USER, AirflowStandalone
from scimflow.services.process import wait_until

__all__ = [
    "AirflowApi",
    "DagRunResult",
    "ResyncOutcome",
    "ResyncRun",
    "describe_resync",
    "run_resync",
    "stream_phase",
]

TERMINAL = {"success", "failed"}


@dataclass(frozen=True)
class DagRunResult:
    dag_id: str
    run_id: str
    state: str
    seconds: float
    tasks: list[tuple[str, str]]


class AirflowApi:
    """A small client of Airflow 3's REST API (``/api/v2``) with the simple auth manager.

    ``transport`` replaces the HTTP transport (tests pass an ``httpx.MockTransport``).
    """

    def __init__(
        self,
        airflow: AirflowStandalone,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base = airflow.address
        self._password = airflow.admin_password()
        self._http = httpx.Client(base_url=self.base, timeout=timeout, transport=transport)
        self._login()

    def _login(self) -> None:
        resp = self._http.post(
            "/auth/token", json={"username": ADMIN_USER, "password": self._password}
        )
        if resp.status_code not in (200, 201):
            raise ServiceError("airflow", f"login to the REST API answered {resp.status_code}")
        self._http.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        resp = self._http.request(method, f"/api/v2{path}", **kwargs)
        if resp.status_code >= 400 and resp.status_code != 404:
            raise ServiceError(
                "airflow", f"{method} {path} answered {resp.status_code}: {resp.text[:300]}"
            )
        return resp

    def wait_for_dag(self, dag_id: str, *, timeout: float = 120.0) -> None:
        def parsed() -> bool:
            return self._call("GET", f"/dags/{dag_id}").status_code != 404

        if not wait_until(parsed, timeout=timeout, interval=2):
            errors = self._call("GET", "/importErrors").json().get("import_errors", [])
            raise ServiceError(
                "airflow",
                f"DAG {dag_id} not parsed after {timeout:.0f} s; import errors: {errors}",
            )

    def dag(self, dag_id: str) -> dict[str, Any]:
        """The DAG as the REST API shows it (``is_paused``, ``next_dagrun_run_after``, ...)."""
        return dict(self._call("GET", f"/dags/{dag_id}").json())

    def runs(self, dag_id: str, *, limit: int = 50) -> list[dict[str, Any]]:
        """The newest ``limit`` runs of ``dag_id``, newest first."""
        resp = self._call(
            "GET", f"/dags/{dag_id}/dagRuns", params={"order_by": "-id", "limit": limit}
        )
        return list(resp.json().get("dag_runs", []))

    def unpause(self, dag_id: str) -> None:
        self._call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def wait_for_watcher(self, asset: str, *, timeout: float = 120.0) -> float:
        """Wait until the asset's watcher is registered (after its DAG is unpaused, at the
        next parse of the DAG file: up to ``min_file_process_interval``); the seconds it
        took. Changes made before then wait for it."""
        t0 = time.monotonic()

        def registered() -> bool:
            found = self._call("GET", "/assets", params={"name_pattern": asset}).json()
            return any(
                a.get("name") == asset and a.get("watchers") for a in found.get("assets", [])
            )

        if not wait_until(registered, timeout=timeout, interval=1):
            raise ServiceError("airflow", f"no watcher of asset {asset} after {timeout:.0f} s")
        return time.monotonic() - t0

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        resp = self._call(
            "POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}}
        )
        return str(resp.json()["dag_run_id"])

    def wait_for_run(self, dag_id: str, run_id: str, *, timeout: float = 300.0) -> DagRunResult:
        t0 = time.monotonic()
        run: dict[str, Any] = {}

        def finished() -> bool:
            run.update(self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}").json())
            return run["state"] in TERMINAL

        wait_until(finished, timeout=timeout, interval=2)  # past it: the state it reached
        tis = self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances").json()
        tasks = sorted(
            (
                ti["task_id"] + (f"[{ti['map_index']}]" if ti.get("map_index", -1) >= 0 else ""),
                str(ti["state"]),
            )
            for ti in tis.get("task_instances", [])
        )
        return DagRunResult(dag_id, run_id, str(run["state"]), time.monotonic() - t0, tasks)

    def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
        """A task's return value, or None."""
        resp = self._call(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
            params={"map_index": map_index, "deserialize": "true"},
        )
        if resp.status_code == 404:
            return None
        return resp.json().get("value")

    def runs_since(self, dag_id: str, since: Any) -> dict[str, int]:
        """Runs of ``dag_id`` started since ``since``, counted by state."""
        resp = self._call(
            "GET",
            f"/dags/{dag_id}/dagRuns",
            params={"start_date_gte": since.isoformat(), "limit": 100},
        )
        counts: dict[str, int] = {}
        for run in resp.json().get("dag_runs", []):
            counts[str(run["state"])] = counts.get(str(run["state"]), 0) + 1
        return counts

    def close(self) -> None:
        self._http.close()


def _when(value: Any) -> datetime | None:
    """An API timestamp (ISO 8601, ``Z`` or an offset) as an aware datetime."""
    if not value:
        return None
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ResyncRun:
    """One ``okta_resync`` run as the demo reports it."""

    run_id: str
    run_type: str  # Airflow's: "scheduled", "manual", "backfill", ...
    result: DagRunResult
    summaries: list[dict[str, Any]]  # the sync_target XComs (the engine's TargetReport)
    report_path: str | None

    @property
    def writes(self) -> int:
        return sum(int(s.get("writes") or 0) for s in self.summaries)


@dataclass(frozen=True)
class ResyncOutcome:
    """Every run of the DAG made since the demo unpaused it, and the one it reports."""

    runs: list[ResyncRun]  # the followed run first, then the others by creation
    shown: ResyncRun  # the run that wrote (the most writes), else the run the demo followed
    followed: str  # the run the demo waited for
    how: str  # "scheduled" (made by unpausing) or "triggered" (by the demo)
    due: bool = False  # a scheduled run was due when the demo unpaused the DAG


def _collect(api: AirflowApi, dag_id: str, run: dict[str, Any], timeout: float) -> ResyncRun:
    run_id = str(run["dag_run_id"])
    result = api.wait_for_run(dag_id, run_id, timeout=timeout)
    summaries = []
    for task_id, _state in result.tasks:
        mapped = re.fullmatch(r"sync_target\[(\d+)\]", task_id)
        if mapped:
            summary = api.xcom(dag_id, run_id, "sync_target", int(mapped.group(1)))
            if summary:
                summaries.append(summary)
    return ResyncRun(
        run_id=run_id,
        run_type=str(run.get("run_type") or "manual"),
        result=result,
        summaries=summaries,
        report_path=api.xcom(dag_id, run_id, "report"),
    )


def run_resync(
    api: AirflowApi,
    dag_id: str = "okta_resync",
    *,
    scheduled_wait: float = 60.0,
    timeout: float = 600.0,
    on_start: Callable[[str, str], None] | None = None,
) -> ResyncOutcome:
    """Unpause ``dag_id`` and get it run once; wait for every run made meanwhile.

    If the DAG was paused and its next scheduled run is due (``next_dagrun_run_after``
    passed: its DAG parsed on an earlier day), unpausing makes Airflow create that run,
    at once; the demo follows it,
    up to ``scheduled_wait`` seconds after unpausing. Otherwise (already unpaused, or
    no interval due) it triggers a run. ``on_start(run_id, how)`` is told which.
    """
    api.wait_for_dag(dag_id)
    since = datetime.now(UTC)
    before = api.dag(dag_id)
    api.unpause(dag_id)
    due_at = _when(before.get("next_dagrun_run_after"))
    due = bool(before.get("is_paused")) and due_at is not None and due_at <= since

    def made_since() -> list[dict[str, Any]]:
        runs = [(_when(r.get("queued_at")), r) for r in api.runs(dag_id)]
        return [
            r for queued, r in sorted(runs, key=lambda x: str(x[0])) if queued and queued >= since
        ]

    followed: dict[str, Any] | None = None
    if due:
        seen: list[dict[str, Any]] = []

        def scheduled() -> bool:
            seen[:] = made_since()
            return bool(seen)

        if wait_until(scheduled, timeout=scheduled_wait, interval=1):
            followed = seen[0]
    how = "scheduled" if followed is not None else "triggered"
    if followed is None:
        followed = {"dag_run_id": api.trigger(dag_id), "run_type": "manual"}
    if on_start is not None:
        on_start(str(followed["dag_run_id"]), how)
    first = _collect(api, dag_id, followed, timeout)
    runs = [first]
    # a run made meanwhile (a scheduled run that came after the trigger): waited for too
    for other in made_since():
        if str(other["dag_run_id"]) != first.run_id:
            runs.append(_collect(api, dag_id, other, timeout))
    runs.sort(key=lambda r: r.run_id != first.run_id)
    wrote = [r for r in runs if r.writes]
    shown = max(wrote, key=lambda r: r.writes) if wrote else first
    return ResyncOutcome(runs=runs, shown=shown, followed=first.run_id, how=how, due=due)


def describe_resync(outcome: ResyncOutcome, dag_id: str = "okta_resync") -> list[str]:
    """Sentences naming the run whose report the demo shows, and why that one."""
    shown = outcome.shown
    origin = {
        "scheduled": (
            f"scheduled: Airflow made it for {dag_id}'s due @daily interval when the demo "
            "unpaused the DAG"
        ),
        "manual": "manual",
        "backfill": "a backfill",
    }.get(shown.run_type, shown.run_type)
    if shown.run_id == outcome.followed and outcome.how == "triggered":
        origin = "manual: triggered by the demo, as " + (
            "the due scheduled run had not appeared yet"
            if outcome.due
            else "no scheduled run was due"
        )
    lines = []
    if shown.writes:
        lines.append(f"the run that did the work: {shown.run_id} ({origin}), {shown.writes} writes")
    else:
        lines.append(
            f"{shown.run_id} ({origin}) found nothing to change: every target already "
            "equals Okta (0 writes)"
        )
    for run in outcome.runs:
        if run is not shown:
            lines.append(
                f"also ran: {run.run_id} ({run.run_type}, {run.result.state}), "
                f"{run.writes} writes" + (": nothing left to do" if not run.writes else "")
            )
    return lines


def stream_phase(
    api: AirflowApi,
    settings: Any,
    *,
    rate: float = 2.0,
    seconds: float = 30.0,
    burst: int = 0,
    timeout: float = 240.0,
) -> dict[str, Any]:
    """Churn for ``seconds`` at ``rate`` changes a second (or, with ``burst``, that many
    profile changes at once); wait until the stream drained it.

    Returns what happened: changes made, ``okta_events`` runs, writes per target and the
    latency from change to write (see :mod:`scimflow.stream.observe`); ``seconds`` is
    from the first change until the hooks and Kafka were drained.
    """
    import os
    from datetime import UTC, datetime

    from scimflow.scim.config import load_config
    from scimflow.services.okta import OktaEmulator, stack_environment
    from scimflow.state.store import StateStore
    from scimflow.stream.kafka import lag
    from scimflow.stream.observe import latency

    os.environ.update(stack_environment(settings))
    config = load_config(settings.home / "scimflow.yaml")
    api.wait_for_dag("okta_events")
    api.unpause("okta_events")
    api.wait_for_watcher("okta_events")  # the doorbell: unpaused is not yet listening
    okta = OktaEmulator(settings)
    auth = {"Authorization": f"SSWS {okta.token()}"}
    before = httpx.get(f"{okta.address}/emulator/hooks/stats", headers=auth, timeout=10).json()
    started = datetime.now(UTC)
    t0 = time.monotonic()
    if burst:
        httpx.post(
            f"{okta.address}/emulator/mutate",
            json={"action": "mover", "count": burst, "seed": int(t0) % 1000},
            headers=auth,
            timeout=300,
        ).raise_for_status()
        seconds = 0.0
    else:
        httpx.post(
            f"{okta.address}/emulator/churn",
            json={"rate": rate, "seconds": seconds, "seed": int(t0) % 1000},
            headers=auth,
            timeout=10,
        ).raise_for_status()
        time.sleep(seconds)
    stats: dict[str, Any] = {}

    def is_drained() -> bool:
        """The hooks delivered everything, and the stream committed past all of it."""
        stats.clear()
        stats.update(
            httpx.get(f"{okta.address}/emulator/hooks/stats", headers=auth, timeout=10).json()
        )
        return stats.get("pending", 0) == 0 and lag(config.kafka) == 0

    wait_until(
        is_drained, timeout=max(seconds + timeout - (time.monotonic() - t0), 0), interval=0.5
    )
    drained = time.monotonic() - t0
    runs = api.runs_since("okta_events", started)
    with StateStore(config.state.resolved_url()) as store:
        measured = latency(store, started)
    return {
        "changes": stats.get("events_submitted", 0) - before.get("events_submitted", 0),
        "delivered": stats.get("events_delivered", 0) - before.get("events_delivered", 0),
        "lag": lag(config.kafka),
        "runs": runs,
        "seconds": round(drained, 1),
        "latency": measured.as_dict() if measured else None,
    }
