"""Airflow 3 as ``airflow standalone`` on SQLite, for the local demo.

Standalone runs the API server, scheduler, DAG processor and triggerer in one process
tree with the LocalExecutor. It gets its own ``AIRFLOW_HOME`` under the services home,
a fixed Fernet key (so trigger arguments stay readable across restarts), parallelism
set for a two-core machine, and a generated admin password.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from scimflow.errors import ServiceError
from scimflow.services.base import Service
from scimflow.services.settings import read_or_create_secret

__all__ = ["AirflowStandalone", "airflow_env"]

ADMIN_USER = "admin"


def airflow_env(
    airflow_home: Path, dags_folder: Path, *, fernet_key: str, parallelism: int = 4
) -> dict[str, str]:
    """The environment an Airflow process of scimflow runs with."""
    return {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(dags_folder.parent / "plugins"),
        # plugins load at start-up: plugins/scimflow_preload.py imports the heavy
        # libraries in the scheduler before the LocalExecutor forks its workers
        "AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "False",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(parallelism),
        "AIRFLOW__CORE__FERNET_KEY": fernet_key,
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "30",
        # an idle scheduler loop sleeps this long (default 1 s) before it notices a
        # finished task or a queued run: each okta_events run has three such hops
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
        "AIRFLOW__OPENLINEAGE__DISABLED": "true",
    }


class AirflowStandalone(Service):
    name = "airflow"
    start_timeout = 240.0
    stop_timeout = 60.0

    @property
    def airflow_home(self) -> Path:
        return self.settings.home / "airflow"

    def marker(self) -> str:
        return "airflow standalone"

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.settings.airflow_port}"

    def admin_password(self) -> str:
        return read_or_create_secret(self.settings.secrets / "airflow-admin.password", nbytes=12)

    def _fernet_key(self) -> str:
        path = self.settings.secrets / "airflow-fernet.key"
        if not path.exists():
            from cryptography.fernet import Fernet

            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(Fernet.generate_key().decode() + "\n")
        return path.read_text(encoding="utf-8").strip()

    def connections(self) -> dict[str, str]:
        """Airflow connections to the local stack, as ``AIRFLOW_CONN_*`` variables."""
        from scimflow.services.postgres import DATABASE, SUPERUSER, PostgresServer
        from scimflow.services.scim import ScimServer

        s = self.settings
        conns: dict[str, dict[str, object]] = {
            "scimflow_kafka": {
                "conn_type": "kafka",
                "extra": {"bootstrap.servers": s.kafka_bootstrap},
            },
            # the okta_events doorbell: its own group, committed only after the event is stored
            "scimflow_kafka_doorbell": {
                "conn_type": "kafka",
                "extra": {
                    "bootstrap.servers": s.kafka_bootstrap,
                    "group.id": "scimflow-doorbell",
                    "auto.offset.reset": "earliest",
                    "enable.auto.commit": "false",
                },
            },
            "scimflow_state": {
                "conn_type": "postgres",
                "host": "127.0.0.1",
                "port": s.postgres_port,
                "login": SUPERUSER,
                "password": PostgresServer(s).password(),
                "schema": DATABASE,
            },
        }
        for name in s.scim_ports:
            target = ScimServer(s, name)
            conns[name.replace("-", "_")] = {
                "conn_type": "http",
                "password": target.token(),
                "extra": {"base_url": target.address},
            }
        return {f"AIRFLOW_CONN_{cid.upper()}": json.dumps(c) for cid, c in conns.items()}

    def environment(self) -> dict[str, str]:
        env = airflow_env(
            self.airflow_home, self.settings.dags_folder, fernet_key=self._fernet_key()
        )
        env.update(self.connections())
        from scimflow.services.okta import stack_environment, write_stack_config

        write_stack_config(self.settings)
        env.update(stack_environment(self.settings))
        env["SCIMFLOW_DATA"] = str(self.settings.home / "data")
        # read by the okta_events DAG file at parse time for its doorbell asset
        env["SCIMFLOW_KAFKA_BOOTSTRAP"] = self.settings.kafka_bootstrap
        # standalone starts its components as `airflow ...` subprocesses: find ours first
        bindir = str(Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join([bindir, os.environ.get("PATH", "")])
        env.update(
            {
                "AIRFLOW__API__PORT": str(self.settings.airflow_port),
                # tasks report to the API server's execution API: on our port, not 8080
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": (
                    f"http://127.0.0.1:{self.settings.airflow_port}/execution/"
                ),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(
                    self.airflow_home / "passwords.json"
                ),
            }
        )
        return env

    def prepare(self) -> None:
        self.airflow_home.mkdir(parents=True, exist_ok=True)
        pw_file = self.airflow_home / "passwords.json"
        fd = os.open(pw_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({ADMIN_USER: self.admin_password()}, handle)

    def command(self) -> tuple[list[str], dict[str, str], str | None]:
        exe = Path(sys.executable).parent / "airflow"
        program = str(exe) if exe.exists() else shutil.which("airflow")
        if program is None:
            raise ServiceError(self.name, "the airflow command is not installed")
        return [program, "standalone"], self.environment(), None

    def check(self) -> tuple[bool, str]:
        import httpx

        try:
            resp = httpx.get(f"{self.address}/api/v2/monitor/health", timeout=3.0)
        except httpx.HTTPError as exc:
            return False, type(exc).__name__
        if resp.status_code != 200:
            return False, f"health answered {resp.status_code}"
        body = resp.json()
        parts = {k: v.get("status") for k, v in body.items() if isinstance(v, dict)}
        bad = [
            k
            for k in ("metadatabase", "scheduler", "triggerer", "dag_processor")
            if parts.get(k) != "healthy"
        ]
        if bad:
            return False, "not yet healthy: " + ", ".join(bad)
        return True, "all components healthy"
