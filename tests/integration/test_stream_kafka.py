"""The stream's micro-batches against the real broker: read, dead-letter, commit, lag.

Each test has topics and a consumer group of its own, so nothing here touches
``okta.events``.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest
from confluent_kafka import Producer
from scimflow.scim.config import KafkaConfig
from scimflow.services import ensure_topics
from scimflow.stream.events import route, slim
from scimflow.stream.kafka import commit, lag, publish, read_batch

if TYPE_CHECKING:
    from scimflow.services import KafkaBroker

pytestmark = pytest.mark.integration


def _event(uid: str) -> dict[str, Any]:
    return {
        "uuid": str(uuid.uuid4()),
        "published": "2026-01-02T03:04:05.678Z",
        "eventType": "user.account.update_profile",
        "target": [{"id": uid, "type": "User"}],
    }


@pytest.fixture()
def config(kafka: KafkaBroker) -> KafkaConfig:
    name = f"test.stream.{uuid.uuid4().hex[:8]}"
    cfg = KafkaConfig(
        bootstrap_servers=kafka.address,
        topic=name,
        dlq_topic=f"{name}.dlq",
        partitions=3,
        group=f"test-group-{uuid.uuid4().hex[:8]}",
    )
    ensure_topics(cfg.bootstrap_servers, {cfg.topic: cfg.partitions, cfg.dlq_topic: 1})
    return cfg


def test_a_batch_is_read_dead_letters_the_bad_and_commits_only_when_told(
    config: KafkaConfig,
) -> None:
    events = [_event(f"00u{i}") for i in range(5)]
    assert publish(config, events) == 5
    bad = Producer({"bootstrap.servers": config.bootstrap_servers})
    bad.produce(config.topic, key=b"x", value=b"{not json")
    assert bad.flush(10) == 0

    batch = read_batch(config, timeout=30)
    assert sorted(e["uuid"] for e in batch.events) == sorted(e["uuid"] for e in events)
    assert batch.dead_lettered == 1
    assert lag(config) == 6  # read, not committed: a crash now replays it

    again = read_batch(config, timeout=30)
    assert len(again.events) == 5

    commit(config, batch.offsets)
    assert lag(config) == 0
    assert read_batch(config, timeout=30).events == []


def test_a_batch_stops_at_max_events_and_the_next_one_goes_on(config: KafkaConfig) -> None:
    publish(config, [_event("00uA") for _ in range(4)])  # one key: one partition, in order
    first = read_batch(config, max_events=3, timeout=30)
    assert len(first.events) == 3
    commit(config, first.offsets)
    rest = read_batch(config, timeout=30)
    assert len(rest.events) == 1
    commit(config, rest.offsets)
    assert lag(config) == 0


def test_publish_writes_slim_events_unless_whole_events(config: KafkaConfig) -> None:
    """The catch-up publishes System Log events: slimmed as the receiver's are."""
    logged = {
        **_event("00uL"),
        "actor": {"id": "00uadmin", "type": "User", "alternateId": "admin@example.com"},
        "client": {"ipAddress": "203.0.113.7"},
    }
    logged["target"] = [{"id": "00uL", "type": "User", "alternateId": "l@example.com"}]
    assert publish(config, [logged]) == 1
    batch = read_batch(config, timeout=30)
    assert batch.events == [slim(logged)]
    assert batch.changes == [route(logged)]
    commit(config, batch.offsets)

    whole = config.model_copy(update={"whole_events": True})
    assert publish(whole, [logged]) == 1
    assert read_batch(whole, timeout=30).events == [logged]
