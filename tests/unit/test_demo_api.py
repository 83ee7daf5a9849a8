"""The demo's Airflow REST client waits with the project's one ``wait_until``."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from scimflow.demo import AirflowApi
from scimflow.errors import ServiceError
from scimflow.services.airflow import AirflowStandalone
from scimflow.services.settings import ServicesSettings


class FakeAirflow:
    """Answers the REST calls the demo makes; ``polls`` counts them by path."""

    def __init__(self, *, parsed_after: int = 0, states: list[str] | None = None) -> None:
        self.parsed_after = parsed_after
        self.states = list(states or ["success"])
        self.polls: dict[str, int] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.polls[path] = self.polls.get(path, 0) + 1
        if path == "/auth/token":
            return httpx.Response(201, json={"access_token": "t"})
        if path == "/api/v2/dags/demo":
            found = self.polls[path] > self.parsed_after
            return httpx.Response(200 if found else 404, json={})
        if path == "/api/v2/importErrors":
            return httpx.Response(200, json={"import_errors": ["demo.py: boom"]})
        if path == "/api/v2/assets":
            watchers = [{"name": "w"}] if self.polls[path] > 1 else []
            return httpx.Response(200, json={"assets": [{"name": "a", "watchers": watchers}]})
        if path == "/api/v2/dags/demo/dagRuns/r1":
            state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
            return httpx.Response(200, json={"state": state})
        if path == "/api/v2/dags/demo/dagRuns/r1/taskInstances":
            return httpx.Response(200, json={"task_instances": [{"task_id": "t", "state": "ok"}]})
        return httpx.Response(404, json={})


def _api(tmp_path: Path, fake: FakeAirflow) -> AirflowApi:
    settings = ServicesSettings(home=tmp_path, cache=tmp_path / "cache", dags_folder=tmp_path)
    return AirflowApi(AirflowStandalone(settings), transport=httpx.MockTransport(fake))


def test_a_dag_not_parsed_in_time_names_the_import_errors(tmp_path: Path) -> None:
    fake = FakeAirflow(parsed_after=10**6)
    api = _api(tmp_path, fake)
    with pytest.raises(ServiceError, match=r"demo\.py: boom"):
        api.wait_for_dag("demo", timeout=0)
    assert fake.polls["/api/v2/dags/demo"] == 1


def test_a_parsed_dag_and_a_registered_watcher_end_the_waits(tmp_path: Path) -> None:
    fake = FakeAirflow()
    api = _api(tmp_path, fake)
    api.wait_for_dag("demo", timeout=5)
    assert api.wait_for_watcher("a", timeout=5) >= 0
    assert fake.polls["/api/v2/assets"] == 2


def test_a_run_is_reported_in_the_state_it_reached(tmp_path: Path) -> None:
    api = _api(tmp_path, FakeAirflow(states=["running"]))
    result = api.wait_for_run("demo", "r1", timeout=0)  # timed out: still running
    assert result.state == "running"
    assert result.tasks == [("t", "ok")]
    done = _api(tmp_path, FakeAirflow(states=["success"])).wait_for_run("demo", "r1", timeout=5)
    assert done.state == "success"
