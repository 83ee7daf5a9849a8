"""The local broker keeps what a consumer group committed across a broker restart."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from scimflow.services import EVENTS_DLQ_TOPIC, EVENTS_TOPIC, ensure_topics

if TYPE_CHECKING:
    from confluent_kafka import KafkaError, Message
    from scimflow.services import KafkaBroker

pytestmark = pytest.mark.integration


def _producer(bootstrap: str) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})


def _consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
        }
    )


def _produce(bootstrap: str, topic: str, values: list[str]) -> None:
    producer = _producer(bootstrap)
    errors: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            errors.append(str(err))

    for i, value in enumerate(values):
        producer.produce(topic, key=f"00u{i % 5}", value=value.encode(), on_delivery=on_delivery)
    assert producer.flush(30) == 0, "messages still in flight after 30 s"
    assert errors == []


def _poll(consumer: Consumer, count: int, timeout: float = 30.0) -> list[str]:
    import time

    got: list[str] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        assert msg.error() is None, msg.error()
        value = msg.value()
        assert value is not None
        got.append(value.decode())
    return got


def test_services_up_created_the_event_topics(kafka: KafkaBroker) -> None:
    from confluent_kafka.admin import AdminClient

    meta = AdminClient({"bootstrap.servers": kafka.address}).list_topics(timeout=10)
    assert len(meta.topics[EVENTS_TOPIC].partitions) == kafka.settings.kafka_partitions
    assert len(meta.topics[EVENTS_DLQ_TOPIC].partitions) == 1
    # a second call finds both and creates nothing
    assert ensure_topics(kafka.address, {EVENTS_TOPIC: 3, EVENTS_DLQ_TOPIC: 1}) == []


def test_committed_offsets_survive_a_broker_restart(kafka: KafkaBroker) -> None:
    topic = f"test.restart.{uuid.uuid4().hex[:8]}"
    group = f"test-group-{uuid.uuid4().hex[:8]}"
    assert ensure_topics(kafka.address, {topic: 1}) == [topic]
    values = [f"event-{i}" for i in range(20)]
    _produce(kafka.address, topic, values)

    consumer = _consumer(kafka.address, group)
    consumer.subscribe([topic])
    first = _poll(consumer, 12)
    assert first == values[:12]
    # commit only the first 8 as if the batch beyond them had not become durable
    consumer.commit(offsets=[TopicPartition(topic, 0, 8)], asynchronous=False)
    consumer.close()

    old_pid = kafka.process.pid()
    assert kafka.stop() is True
    assert kafka.process.pid() is None
    assert kafka.start() is True
    assert kafka.process.pid() not in (None, old_pid)

    consumer = _consumer(kafka.address, group)
    committed = consumer.committed([TopicPartition(topic, 0)], timeout=30)
    assert committed[0].offset == 8
    consumer.subscribe([topic])
    rest = _poll(consumer, 12)
    consumer.close()
    # resumes exactly at the committed offset: the 4 read-but-uncommitted come again
    assert rest == values[8:]


def test_start_is_idempotent(kafka: KafkaBroker) -> None:
    pid = kafka.process.pid()
    assert kafka.start() is False
    assert kafka.process.pid() == pid
