"""``scimflow services up|down|status`` as a user runs them, on the session's stack."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from scimflow.services import KafkaBroker, PostgresServer, ScimServer, Stack

pytestmark = pytest.mark.integration


def _run(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    s = stack.settings
    env = dict(os.environ)
    env.update(
        {
            "SCIMFLOW_HOME": str(s.home),
            "SCIMFLOW_CACHE": str(s.cache),
            "SCIMFLOW_KAFKA_PORT": str(s.kafka_port),
            "SCIMFLOW_KAFKA_CONTROLLER_PORT": str(s.kafka_controller_port),
            "SCIMFLOW_POSTGRES_PORT": str(s.postgres_port),
            "SCIMFLOW_SCIM_A_PORT": str(s.scim_ports["scim-a"]),
            "SCIMFLOW_SCIM_B_PORT": str(s.scim_ports["scim-b"]),
            "SCIMFLOW_AIRFLOW_PORT": str(s.airflow_port),
            "SCIMFLOW_OKTA_PORT": str(s.okta_port),
        }
    )
    exe = Path(sys.executable).parent / "scimflow"
    return subprocess.run(
        [str(exe), "services", *args], capture_output=True, text=True, env=env, timeout=180
    )


def _row(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if f" {name} " in line)


def test_status_up_down_round_trip(
    stack: Stack, kafka: KafkaBroker, postgres: PostgresServer, scim_targets: list[ScimServer]
) -> None:
    status = _run(stack, "status", "kafka", "postgres", "scim-a", "scim-b")
    assert status.returncode == 0, status.stdout + status.stderr
    for name in ("kafka", "postgres", "scim-a", "scim-b"):
        assert "healthy" in _row(status.stdout, name)
    # no secret in what the command prints
    for secret in (postgres.password(), scim_targets[0].token(), scim_targets[1].token()):
        assert secret not in status.stdout

    pid_b = scim_targets[1].process.pid()
    again = _run(stack, "up", "scim-b")
    assert again.returncode == 0
    assert "scim-b: already running" in again.stdout
    assert scim_targets[1].process.pid() == pid_b

    down = _run(stack, "down", "scim-b")
    assert "scim-b: stopped" in down.stdout
    assert scim_targets[1].process.pid() is None
    status = _run(stack, "status", "scim-b")
    assert status.returncode == 1
    assert "stopped" in _row(status.stdout, "scim-b")

    up = _run(stack, "up", "scim-b")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "scim-b: started" in up.stdout
    assert scim_targets[1].status().healthy


def test_an_unknown_service_is_refused(stack: Stack) -> None:
    result = _run(stack, "up", "zookeeper")
    assert result.returncode == 2
    assert "unknown service zookeeper" in result.stdout + result.stderr


def test_the_okta_emulator_service_and_the_stack_configuration(stack: Stack) -> None:
    from scimflow.scim.config import load_config
    from scimflow.services.okta import OktaEmulator, stack_environment, write_stack_config

    okta = stack.services["okta"]
    assert isinstance(okta, OktaEmulator)
    assert okta.start() is True
    status = _run(stack, "status", "okta")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "200 users, 10 groups" in _row(status.stdout, "okta")
    assert okta.token() not in status.stdout

    path = write_stack_config(stack.settings)
    env = stack_environment(stack.settings)
    text = path.read_text()
    assert not any(secret in text for secret in env.values() if secret != env["SCIMFLOW_CONFIG"])
    config = load_config(path)
    assert [t.name for t in config.targets] == ["scim-a", "scim-b"]
    assert str(config.okta.org_url).startswith(okta.address)
    assert okta.stop() is True
