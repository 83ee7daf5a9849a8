"""Test session set-up shared by every tier.

The session gets its own services home, its own free ports and its own Airflow home,
so the tests never touch a running demo. Services start on first use (the ``stack``
fixtures) through the same code as ``scimflow services up`` and stop when the session
ends. The Airflow environment is set here, before anything imports Airflow.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from scimflow.okta.emulator.server import EmulatorServer
    from scimflow.services import KafkaBroker, PostgresServer, ScimServer, Stack

    from tests.support.fixtures import ScimTenant, StartEmulator

ROOT = Path(__file__).resolve().parent.parent
SESSION_DIR = Path(tempfile.mkdtemp(prefix="scimflow-tests-"))
# PostgreSQL runs as the 'postgres' user when the tests run as root: let it reach its data.
SESSION_DIR.chmod(0o755)
atexit.register(shutil.rmtree, SESSION_DIR, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _airflow_environment() -> None:
    import json

    from cryptography.fernet import Fernet
    from scimflow.services.airflow import airflow_env

    env = airflow_env(
        SESSION_DIR / "airflow", ROOT / "dags", fernet_key=Fernet.generate_key().decode()
    )
    env["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
    env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
    # OpenLineage on (airflow_env turns it off for the demo): every event of the session is
    # appended, one JSON line each, to the file named by SCIMFLOW_TEST_OPENLINEAGE_EVENTS.
    # Emission runs in a thread, not a forked process per event (which costs ~0.25 s a task).
    events = SESSION_DIR / "openlineage" / "events.jsonl"
    events.parent.mkdir()
    env["SCIMFLOW_TEST_OPENLINEAGE_EVENTS"] = str(events)
    env["AIRFLOW__OPENLINEAGE__DISABLED"] = "false"
    env["AIRFLOW__OPENLINEAGE__NAMESPACE"] = "scimflow"
    env["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps(
        {"type": "file", "log_file_path": str(events), "append": True}
    )
    env["AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD"] = "True"
    os.environ.update(env)


_airflow_environment()


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The session's services (not started: ask for ``kafka``, ``postgres`` or ``scim_targets``)."""
    from scimflow.services import ServicesSettings, Stack

    settings = ServicesSettings(
        home=SESSION_DIR / "services",
        cache=Path(os.environ.get("SCIMFLOW_CACHE") or Path.home() / ".cache" / "scimflow"),
        dags_folder=ROOT / "dags",
        kafka_port=_free_port(),
        kafka_controller_port=_free_port(),
        postgres_port=_free_port(),
        scim_ports={"scim-a": _free_port(), "scim-b": _free_port()},
        airflow_port=_free_port(),
        okta_port=_free_port(),
        receiver_port=_free_port(),
        okta_users=200,
        okta_groups=10,
    )
    stack = Stack(settings)
    try:
        yield stack
    finally:
        for service in reversed(list(stack.services.values())):
            service.stop()


@pytest.fixture(scope="session")
def kafka(stack: Stack) -> KafkaBroker:
    stack.kafka.start()
    return stack.kafka


@pytest.fixture(scope="session")
def postgres(stack: Stack) -> PostgresServer:
    stack.postgres.start()
    return stack.postgres


@pytest.fixture(scope="session")
def scim_targets(stack: Stack) -> list[ScimServer]:
    servers = [stack.scim(name) for name in stack.settings.scim_ports]
    for server in servers:
        server.start()
    return servers


@pytest.fixture()
def okta_emulator() -> Iterator[StartEmulator]:
    """Start an Okta emulator (a real HTTP server on loopback): ``okta_emulator(users=..)``."""
    from scimflow.okta.emulator.server import EmulatorServer, make_state

    servers: list[EmulatorServer] = []

    def start(
        *,
        users: int = 50,
        groups: int = 5,
        seed: int = 1,
        token: str = "emulator-token",
        time_scale: float = 1.0,
        logs_limit: int | None = None,
    ) -> EmulatorServer:
        port = _free_port()
        state = make_state(
            users=users,
            groups=groups,
            seed=seed,
            token=token,
            port=port,
            time_scale=time_scale,
            logs_limit=logs_limit,
        )
        server = EmulatorServer(state, port=port).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


@pytest.fixture(scope="session")
def _tenant_server(stack: Stack) -> Iterator[tuple[int, str]]:
    """One scim2-server with dynamic tenants: each test gets an empty store of its own."""
    import sys

    from scimflow.services.process import ManagedProcess, wait_until
    from scimflow.services.settings import read_or_create_secret

    port = _free_port()
    token = read_or_create_secret(stack.settings.secrets / "scim-tenants.token")
    proc = ManagedProcess(
        name="scim-tenants",
        pid_file=stack.settings.run / "scim-tenants.pid",
        log_file=stack.settings.logs / "scim-tenants.log",
        marker=f"--port {port}",
    )
    exe = str(Path(sys.executable).parent / "scim2-server")
    proc.start([exe, "--port", str(port), f"--bearer-token={token}", "--dynamic-tenants"])
    import httpx

    def up() -> bool:
        try:
            return (
                httpx.get(f"http://127.0.0.1:{port}/probe/v2/ServiceProviderConfig").status_code
                == 200
            )
        except httpx.HTTPError:
            return False

    assert wait_until(up, timeout=30, alive=proc.is_running), proc.log_tail()
    try:
        yield port, token
    finally:
        proc.stop()


@pytest.fixture()
def scim_tenant(_tenant_server: tuple[int, str]) -> ScimTenant:
    """(base URL, token) of a fresh, empty SCIM target."""
    import uuid

    port, token = _tenant_server
    return f"http://127.0.0.1:{port}/t{uuid.uuid4().hex[:12]}/v2", token


def pytest_sessionfinish(session: pytest.Session, exitstatus: int | pytest.ExitCode) -> None:
    """No process started by the tests outlives them: report and stop any left behind."""
    from scimflow.services import process

    for pid, child in list(process._CHILDREN.items()):
        if child.poll() is None:
            argv = child.args[:3] if isinstance(child.args, list) else child.args
            print(f"\nleft running at the end of the tests, stopping: pid {pid} {argv!r}")
            child.terminate()
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        process._CHILDREN.pop(pid, None)
