"""okta_catchup's schedule: a new install never floods, an operator's start turns catchup on."""

from __future__ import annotations

import runpy
from datetime import UTC, datetime
from pathlib import Path

import pytest
from airflow.sdk import DAG

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "okta_catchup.py"


def _parse(monkeypatch: pytest.MonkeyPatch, start: str | None) -> DAG:
    """The okta_catchup DAG as the file builds it with this environment."""
    if start is None:
        monkeypatch.delenv("SCIMFLOW_CATCHUP_START", raising=False)
    else:
        monkeypatch.setenv("SCIMFLOW_CATCHUP_START", start)
    factory = runpy.run_path(str(DAG_FILE))["okta_catchup"]
    dag = factory()
    assert isinstance(dag, DAG)
    return dag


def test_without_a_start_catchup_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unpausing a new install runs the latest hour only (before: a run for every hour
    since 2026-11-29)."""
    dag = _parse(monkeypatch, None)
    assert dag.catchup is False


def test_an_operators_start_turns_catchup_on_from_that_hour(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dag = _parse(monkeypatch, "2026-12-01T06:00:00+00:00")
    assert dag.catchup is True
    assert dag.start_date == datetime(2026, 12, 1, 6, tzinfo=UTC)
