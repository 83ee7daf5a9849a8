"""docker-compose.yaml cannot run here (no Docker engine): check its shape instead."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_the_stack_has_every_service(compose: dict[str, Any]) -> None:
    services = compose["services"]
    expected = {
        "postgres",
        "kafka",
        "kafka-init",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "scim-target",
        "okta-emulator",
        "receiver",
    }
    assert expected <= set(services)


def test_long_running_services_have_health_checks(compose: dict[str, Any]) -> None:
    one_shot = {"kafka-init", "airflow-init"}
    missing = [
        name
        for name, svc in compose["services"].items()
        if name not in one_shot and not svc.get("healthcheck", {}).get("test")
    ]
    assert missing == []


def test_airflow_waits_for_its_dependencies(compose: dict[str, Any]) -> None:
    for name in (
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
    ):
        deps = compose["services"][name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy", name
        assert deps["kafka-init"]["condition"] == "service_completed_successfully", name
        assert deps["airflow-init"]["condition"] == "service_completed_successfully", name
        assert compose["services"][name]["build"]["dockerfile"] == "docker/airflow.Dockerfile"
    assert (
        compose["services"]["kafka-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    )
    assert (ROOT / "docker" / "airflow.Dockerfile").is_file()


def test_every_dependency_names_a_real_service(compose: dict[str, Any]) -> None:
    names = set(compose["services"])
    for name, svc in compose["services"].items():
        assert set(svc.get("depends_on", {})) <= names, name


def test_kafka_runs_in_kraft_mode_at_the_version_the_local_broker_uses(
    compose: dict[str, Any],
) -> None:
    kafka = compose["services"]["kafka"]
    assert "broker" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    pom = (ROOT / "include/scimflow/services/resources/kafka-pom.xml").read_text(encoding="utf-8")
    found = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert found is not None
    local_version = found.group(1)
    assert kafka["image"] == f"apache/kafka:{local_version}"


def test_slots_for_the_stream_start_only_on_request(compose: dict[str, Any]) -> None:
    for name in ("okta-emulator", "receiver"):
        assert compose["services"][name]["profiles"] == ["stream"]


def test_no_secret_is_written_in_the_file() -> None:
    text = (ROOT / "docker-compose.yaml").read_text(encoding="utf-8")
    for line in text.splitlines():
        m = re.match(r"\s*([A-Z_]*(PASSWORD|TOKEN|SECRET|FERNET_KEY)[A-Z_]*):\s*(.+)", line)
        if m and not m.group(1).endswith("_FILE"):  # a path to a secret, not one
            assert m.group(3).strip().startswith("${"), f"literal secret for {m.group(1)}"
    # connection strings interpolate their passwords too
    assert not re.search(r"://scimflow:[^$]", text)
