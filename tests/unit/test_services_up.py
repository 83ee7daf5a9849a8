"""``scimflow services up`` leaves nothing running when a start fails."""

from __future__ import annotations

import pytest
import typer
from scimflow import cli
from scimflow.errors import ServiceError


class FakeService:
    """A service whose start succeeds (True: started, False: already running) or fails."""

    def __init__(self, name: str, outcome: bool | BaseException) -> None:
        self.name = name
        self.address = f"fake://{name}"
        self.outcome = outcome
        self.stops = 0

    def start(self) -> bool:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome

    def stop(self) -> bool:
        self.stops += 1
        return True


class FakeStack:
    def __init__(self, services: list[FakeService]) -> None:
        self.services = services

    def select(self, names: list[str] | None, *, with_airflow: bool = False) -> list[FakeService]:
        return self.services


def _up(monkeypatch: pytest.MonkeyPatch, services: list[FakeService]) -> None:
    monkeypatch.setattr(cli, "_stack", lambda: FakeStack(services))
    monkeypatch.setattr(cli, "_print_status", lambda *a: True)
    cli.services_up(names=None, with_airflow=True)


def test_a_failed_start_stops_what_this_up_started_and_only_that(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kafka = FakeService("kafka", True)
    kept = FakeService("okta", False)  # was running before: not ours to stop
    postgres = FakeService("postgres", ServiceError("postgres", "initdb failed"))
    later = FakeService("airflow", True)
    with pytest.raises(typer.Exit) as exited:
        _up(monkeypatch, [kafka, kept, postgres, later])
    assert exited.value.exit_code == 1
    assert kafka.stops == 1
    assert postgres.stops == 1  # its process may run, unhealthy
    assert kept.stops == 0
    assert later.stops == 0  # never started


def test_ctrl_c_while_starting_stops_what_was_started(monkeypatch: pytest.MonkeyPatch) -> None:
    kafka = FakeService("kafka", True)
    airflow = FakeService("airflow", KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        _up(monkeypatch, [kafka, airflow])
    assert kafka.stops == 1
    assert airflow.stops == 1


def test_a_start_that_succeeds_stops_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    services = [FakeService("kafka", True), FakeService("okta", False)]
    _up(monkeypatch, services)
    assert [s.stops for s in services] == [0, 0]
