"""A single-node Apache Kafka 4 broker (KRaft), run from the official jars.

The jars come from Maven Central, resolved by Maven into a cache folder keyed by the
POM's hash: the first start downloads them (with the Log4j2 runtime that the published
artifact lacks), every later start reuses them. The storage is formatted once.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from scimflow.errors import ServiceError
from scimflow.scim.config import DEFAULT_RETENTION_HOURS, retention_config
from scimflow.services.base import Service

__all__ = ["EVENTS_DLQ_TOPIC", "EVENTS_TOPIC", "KafkaBroker", "ensure_topics", "port_open"]

EVENTS_TOPIC = "okta.events"
EVENTS_DLQ_TOPIC = "okta.events.dlq"


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _resource(name: str) -> bytes:
    return (resources.files("scimflow.services") / "resources" / name).read_bytes()


def resolve_kafka_jars(cache: Path) -> Path:
    """Return a folder holding the broker's runtime jars, downloading them only once."""
    pom = _resource("kafka-pom.xml")
    digest = hashlib.sha256(pom).hexdigest()[:16]
    lib = cache / f"kafka-{digest}" / "lib"
    stamp = lib.parent / "complete"
    if stamp.exists():
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceError(
            "kafka", "Maven (mvn) is needed to fetch the broker jars: apt-get install maven"
        )
    if shutil.which("java") is None:
        raise ServiceError(
            "kafka", "Java 17+ is needed to run the broker: apt-get install openjdk-17-jre-headless"
        )
    lib.parent.mkdir(parents=True, exist_ok=True)
    pom_file = lib.parent / "pom.xml"
    pom_file.write_bytes(pom)
    shutil.rmtree(lib, ignore_errors=True)
    result = subprocess.run(
        [
            mvn,
            "-B",
            "-q",
            "-f",
            str(pom_file),
            f"-Dmaven.repo.local={cache / 'm2'}",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={lib}",
            "-DincludeScope=runtime",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
        raise ServiceError("kafka", f"Maven could not resolve the broker jars:\n{tail}")
    stamp.write_text(digest + "\n", encoding="utf-8")
    return lib


class KafkaBroker(Service):
    """Kafka in combined broker+controller mode on 127.0.0.1."""

    name = "kafka"
    start_timeout = 90.0

    @property
    def dir(self) -> Path:
        return self.settings.home / "kafka"

    @property
    def config_file(self) -> Path:
        return self.dir / "server.properties"

    def marker(self) -> str:
        return str(self.config_file)

    @property
    def address(self) -> str:
        return self.settings.kafka_bootstrap

    def _server_properties(self) -> str:
        s = self.settings
        lines = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{s.kafka_controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{s.kafka_port},CONTROLLER://127.0.0.1:{s.kafka_controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{s.kafka_port},CONTROLLER://127.0.0.1:{s.kafka_controller_port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.dir / "data"),
            "num.partitions": str(s.kafka_partitions),
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "min.insync.replicas": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
        }
        return "".join(f"{k}={v}\n" for k, v in lines.items())

    def _java(self, lib: Path, main: str, *args: str, heap: str = "256m") -> list[str]:
        return [
            "java",
            f"-Xms{heap}",
            f"-Xmx{heap}",
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.yaml'}",
            f"-Dkafka.logs.dir={self.settings.logs}",
            "-cp",
            f"{lib}/*",
            main,
            *args,
        ]

    def prepare(self) -> None:
        lib = resolve_kafka_jars(self.settings.cache)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self._server_properties(), encoding="utf-8")
        (self.dir / "log4j2.yaml").write_bytes(_resource("log4j2.yaml"))
        if (self.dir / "data" / "meta.properties").exists():
            return
        uuid = subprocess.run(
            self._java(lib, "kafka.tools.StorageTool", "random-uuid", heap="64m"),
            capture_output=True,
            text=True,
            check=False,
        )
        cluster_id = uuid.stdout.strip().splitlines()[-1] if uuid.stdout.strip() else ""
        if uuid.returncode != 0 or not cluster_id:
            raise ServiceError("kafka", f"cannot make a cluster id: {uuid.stderr[-500:]}")
        fmt = subprocess.run(
            self._java(
                lib,
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "-t",
                cluster_id,
                "-c",
                str(self.config_file),
                heap="128m",
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if fmt.returncode != 0:
            raise ServiceError(
                "kafka", f"cannot format storage: {(fmt.stdout + fmt.stderr)[-800:]}"
            )

    def command(self) -> tuple[list[str], dict[str, str], str | None]:
        lib = resolve_kafka_jars(self.settings.cache)
        return self._java(lib, "kafka.Kafka", str(self.config_file), heap="512m"), {}, None

    def check(self) -> tuple[bool, str]:
        if not port_open("127.0.0.1", self.settings.kafka_port):
            return False, "port closed"
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.address, "log_level": 0})
        try:
            meta = admin.list_topics(timeout=3)
        except Exception as exc:  # KafkaException: broker not ready yet
            return False, f"metadata request failed: {exc}"
        if not meta.brokers:
            return False, "no broker in metadata"
        return True, f"{len(meta.topics)} topics"

    def after_start(self) -> None:
        # the receiver's start sets the configured retention (kafka.retention_hours)
        ensure_topics(
            self.address,
            {EVENTS_TOPIC: self.settings.kafka_partitions, EVENTS_DLQ_TOPIC: 1},
            config=retention_config(DEFAULT_RETENTION_HOURS),
        )


def ensure_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    *,
    config: Mapping[str, str] | None = None,
    update_existing: bool = False,
    timeout: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet (name → partitions); return those created.

    Idempotent: a topic that already exists keeps its partitions. ``config`` holds
    topic-level settings (``retention.ms``) given to the topics created, and, with
    ``update_existing``, set on the existing ones too (only those entries: the rest of
    their configuration is left as it is).
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    existing = set(admin.list_topics(timeout=timeout).topics)
    settings = dict(config or {})
    wanted = [
        NewTopic(name, num_partitions=parts, replication_factor=1, config=settings)
        for name, parts in topics.items()
        if name not in existing
    ]
    created = []
    if wanted:
        for name, future in admin.create_topics(wanted, operation_timeout=timeout).items():
            try:
                future.result(timeout=timeout)
                created.append(name)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise ServiceError("kafka", f"cannot create topic {name}: {exc}") from exc
    if settings and update_existing:
        _set_topic_config(admin, [t for t in topics if t not in created], settings, timeout)
    return created


def _set_topic_config(
    admin: Any, topics: list[str], settings: Mapping[str, str], timeout: float
) -> None:
    """Set ``settings`` on each of ``topics`` (an incremental alter: nothing else changes)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (  # type: ignore[attr-defined]
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        ResourceType,
    )

    if not topics:
        return
    resources = [
        ConfigResource(
            ResourceType.TOPIC,
            name,
            incremental_configs=[
                ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                for k, v in settings.items()
            ],
        )
        for name in topics
    ]
    futures = admin.incremental_alter_configs(resources, request_timeout=timeout)
    for resource, future in futures.items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            raise ServiceError(
                "kafka", f"cannot set {', '.join(settings)} on topic {resource.name}: {exc}"
            ) from exc
