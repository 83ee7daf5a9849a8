"""Where the local services live and which ports they use.

Every value has a default for the local demo and can be overridden by an environment
variable, so that tests can run a second, isolated stack beside a running demo.

The home (``SCIMFLOW_HOME``) holds everything scimflow writes on this machine: the
stack's data, logs, PID files and generated secrets, and the files of commands run
outside a stack (``scimflow okta-emulator serve``, ``scimflow stream once``). Its default
is a per-user folder, ``$XDG_DATA_HOME/scimflow`` (``~/.local/share/scimflow``), never
the current folder: a command run from anywhere finds the same stack and writes no
secret into a source tree.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ServicesSettings", "default_home", "read_or_create_secret"]


def default_home() -> Path:
    """``SCIMFLOW_HOME``, else ``$XDG_DATA_HOME/scimflow`` (``~/.local/share/scimflow``)."""
    raw = os.environ.get("SCIMFLOW_HOME")
    if raw:
        return Path(raw).expanduser().resolve()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data).expanduser().resolve() / "scimflow"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer port or count, got {raw!r}") from exc


def _env_path(name: str, default: Path) -> Path:
    raw = os.environ.get(name)
    return Path(raw).expanduser().resolve() if raw else default


@dataclass(frozen=True, kw_only=True)
class ServicesSettings:
    """The local stack: state folder, jar cache, and one port per listener."""

    home: Path
    """Run state: data, logs (``home/logs``), PID files (``home/run``), generated secrets."""
    cache: Path
    """Downloads that survive a reset of ``home``: the Kafka jars and their Maven repository."""
    dags_folder: Path
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_partitions: int = 3
    postgres_port: int = 15432
    scim_ports: dict[str, int] = field(default_factory=lambda: {"scim-a": 18081, "scim-b": 18082})
    airflow_port: int = 8080
    okta_port: int = 8090
    receiver_port: int = 8089
    okta_users: int = 2000
    okta_groups: int = 100

    @classmethod
    def from_env(cls) -> ServicesSettings:
        """Read the settings from ``SCIMFLOW_*`` variables (home: :func:`default_home`; DAGs:
        the current project's ``dags``)."""
        cwd = Path.cwd()
        xdg = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        return cls(
            home=default_home(),
            cache=_env_path("SCIMFLOW_CACHE", xdg / "scimflow"),
            dags_folder=_env_path("SCIMFLOW_DAGS_FOLDER", cwd / "dags"),
            kafka_port=_env_int("SCIMFLOW_KAFKA_PORT", 9092),
            kafka_controller_port=_env_int("SCIMFLOW_KAFKA_CONTROLLER_PORT", 9093),
            kafka_partitions=_env_int("SCIMFLOW_KAFKA_PARTITIONS", 3),
            postgres_port=_env_int("SCIMFLOW_POSTGRES_PORT", 15432),
            scim_ports={
                "scim-a": _env_int("SCIMFLOW_SCIM_A_PORT", 18081),
                "scim-b": _env_int("SCIMFLOW_SCIM_B_PORT", 18082),
            },
            airflow_port=_env_int("SCIMFLOW_AIRFLOW_PORT", 8080),
            okta_port=_env_int("SCIMFLOW_OKTA_PORT", 8090),
            receiver_port=_env_int("SCIMFLOW_RECEIVER_PORT", 8089),
            okta_users=_env_int("SCIMFLOW_OKTA_USERS", 2000),
            okta_groups=_env_int("SCIMFLOW_OKTA_GROUPS", 100),
        )

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def run(self) -> Path:
        return self.home / "run"

    @property
    def secrets(self) -> Path:
        return self.home / "secrets"

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"


def read_or_create_secret(path: Path, nbytes: int = 24) -> str:
    """Return the secret stored at ``path``, creating a random one (mode 0600) if absent.

    Local services get generated credentials so that none is ever written in code.
    """
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    if not path.parent.exists():
        # a folder of our own is private; an existing one (say /tmp) is left as it is
        path.parent.mkdir(parents=True, mode=0o700)
    value = secrets.token_urlsafe(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return value
