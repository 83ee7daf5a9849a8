"""Local services for development, the demo and the tests.

``scimflow services up|down|status`` drives them: a Kafka broker, a PostgreSQL server,
the Okta emulator, the Okta Event Hook receiver (wired to the emulator's hook by
:func:`connect_hooks`), two SCIM 2.0 targets and, on request, Airflow standalone. Each
runs detached, logs to ``<home>/logs/<name>.log`` and is stopped by its PID file.
"""

from __future__ import annotations

from scimflow.services.airflow import AirflowStandalone
from scimflow.services.base import Service, ServiceStatus
from scimflow.services.kafka import EVENTS_DLQ_TOPIC, EVENTS_TOPIC, KafkaBroker, ensure_topics
from scimflow.services.okta import OktaEmulator
from scimflow.services.postgres import PostgresServer
from scimflow.services.receiver import Receiver, connect_hooks
from scimflow.services.scim import ScimServer
from scimflow.services.settings import ServicesSettings

__all__ = [
    "EVENTS_DLQ_TOPIC",
    "EVENTS_TOPIC",
    "AirflowStandalone",
    "KafkaBroker",
    "OktaEmulator",
    "PostgresServer",
    "Receiver",
    "ScimServer",
    "Service",
    "ServiceStatus",
    "ServicesSettings",
    "Stack",
    "connect_hooks",
    "ensure_topics",
]

CORE = ("kafka", "postgres", "okta", "receiver", "scim-a", "scim-b")


class Stack:
    """The local services of one services home, started in dependency order."""

    def __init__(self, settings: ServicesSettings) -> None:
        self.settings = settings
        services: list[Service] = [KafkaBroker(settings), PostgresServer(settings)]
        services.append(OktaEmulator(settings))
        services.append(Receiver(settings))  # after kafka (its topics), and okta (its hook)
        services += [ScimServer(settings, name) for name in settings.scim_ports]
        services.append(AirflowStandalone(settings))
        self.services: dict[str, Service] = {s.name: s for s in services}

    def select(self, names: list[str] | None, *, with_airflow: bool = False) -> list[Service]:
        if names:
            unknown = [n for n in names if n not in self.services]
            if unknown:
                raise KeyError(
                    f"unknown service {', '.join(unknown)}; known: {', '.join(self.services)}"
                )
            return [self.services[n] for n in names]
        chosen = [s for s in self.services.values() if s.name != "airflow"]
        if with_airflow:
            chosen.append(self.services["airflow"])
        return chosen

    @property
    def kafka(self) -> KafkaBroker:
        return self.services["kafka"]  # type: ignore[return-value]

    @property
    def postgres(self) -> PostgresServer:
        return self.services["postgres"]  # type: ignore[return-value]

    @property
    def receiver(self) -> Receiver:
        return self.services["receiver"]  # type: ignore[return-value]

    def scim(self, name: str) -> ScimServer:
        return self.services[name]  # type: ignore[return-value]

    @property
    def airflow(self) -> AirflowStandalone:
        return self.services["airflow"]  # type: ignore[return-value]
