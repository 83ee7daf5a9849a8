"""What every local service offers: idempotent start, health check, clean stop."""

from __future__ import annotations

import abc
import signal
from dataclasses import dataclass

from scimflow.errors import ServiceError
from scimflow.services.process import ManagedProcess, wait_until
from scimflow.services.settings import ServicesSettings

__all__ = ["Service", "ServiceStatus"]


@dataclass(frozen=True)
class ServiceStatus:
    """What ``scimflow services status`` shows for one service."""

    name: str
    running: bool
    healthy: bool
    pid: int | None
    address: str
    log_file: str
    memory_bytes: int = 0
    detail: str = ""

    @property
    def state(self) -> str:
        if self.healthy:
            return "healthy"
        return "unhealthy" if self.running else "stopped"


class Service(abc.ABC):
    """A local service run as one detached process.

    Subclasses say how to prepare (install, initialise), which command to run, and how
    to check health. ``start`` is idempotent: a healthy running service is left alone.
    """

    name: str
    start_timeout: float = 60.0
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 30.0

    def __init__(self, settings: ServicesSettings) -> None:
        self.settings = settings
        self.process = ManagedProcess(
            name=self.name,
            pid_file=settings.run / f"{self.name}.pid",
            log_file=settings.logs / f"{self.name}.log",
            marker=self.marker(),
        )

    @abc.abstractmethod
    def marker(self) -> str:
        """A string in the command line that identifies this service's process."""

    @property
    @abc.abstractmethod
    def address(self) -> str:
        """Where clients reach it, with no secret in it."""

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """Install or initialise what the first start needs; must be idempotent."""

    @abc.abstractmethod
    def command(self) -> tuple[list[str], dict[str, str], str | None]:
        """The argv, extra environment and user (None: the current one) to run."""

    @abc.abstractmethod
    def check(self) -> tuple[bool, str]:
        """Whether the running service answers as it should, and why not."""

    def after_start(self) -> None:  # noqa: B027 - optional hook
        """Work that needs the service up (create a database, topics); idempotent."""

    def start(self) -> bool:
        """Start the service if it is not running; wait until healthy.

        Returns True if a process was started, False if a running one was kept.
        """
        started = False
        if not self.process.is_running():
            self.prepare()
            argv, env, user = self.command()
            self.process.start(argv, env=env, cwd=self.settings.home, user=user)
            started = True
        healthy = wait_until(
            lambda: self.check()[0],
            timeout=self.start_timeout,
            interval=0.5,
            alive=self.process.is_running,
        )
        if not healthy:
            if self.process.is_running():
                reason = f"not healthy {self.start_timeout:.0f} s after start: {self.check()[1]}"
            else:
                reason = "exited while starting"
            raise ServiceError(
                self.name, f"{reason}; log {self.process.log_file}:\n{self.process.log_tail()}"
            )
        self.after_start()
        return started

    def stop(self) -> bool:
        return self.process.stop(sig=self.stop_signal, timeout=self.stop_timeout)

    def status(self) -> ServiceStatus:
        pid = self.process.pid()
        healthy, detail = self.check() if pid is not None else (False, "not running")
        return ServiceStatus(
            name=self.name,
            running=pid is not None,
            healthy=healthy,
            pid=pid,
            address=self.address,
            log_file=str(self.process.log_file),
            memory_bytes=self.process.memory_bytes(),
            detail=detail,
        )
