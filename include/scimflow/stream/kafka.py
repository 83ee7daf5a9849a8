"""Bounded micro-batches from ``okta.events`` with manually committed offsets.

A batch is read by assigning every partition at the consumer group's committed offset
(no group join, so no rebalance wait; ``okta_events`` runs one at a time) up to the end
offsets seen when the read started, or ``max_events``. Nothing is committed here:
:func:`commit` is called by the caller once the batch's effect is durable, so a crash
anywhere before that replays the batch (harmless: applying a state twice changes
nothing). Messages that are not events go to the dead-letter topic with their reason
before their offsets can be committed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from scimflow.errors import ServiceError
from scimflow.stream.events import Change, InvalidEvent, decode, route, slim

__all__ = ["Batch", "commit", "lag", "publish", "read_batch"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Batch:
    """Events read, their changes, the offsets to commit (next offset per partition)."""

    events: list[dict[str, Any]] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    offsets: dict[int, int] = field(default_factory=dict)
    dead_lettered: int = 0
    seconds: float = 0.0


def _consumer(kafka: Any) -> Any:
    from confluent_kafka import Consumer

    return Consumer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "group.id": kafka.group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "log_level": 0,
        }
    )


def _producer(kafka: Any) -> Any:
    from confluent_kafka import Producer

    return Producer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "log_level": 0,
        }
    )


def _waits() -> frozenset[int]:
    from confluent_kafka import KafkaError

    # a group coordinator still loading (a new group, a broker just started) is not
    # flagged retriable by librdkafka, but it is
    return frozenset(
        {
            KafkaError.NOT_COORDINATOR,
            KafkaError.COORDINATOR_NOT_AVAILABLE,
            KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
            KafkaError.LEADER_NOT_AVAILABLE,
            KafkaError._TIMED_OUT,
            KafkaError._TRANSPORT,
        }
    )


def _transient(exc: BaseException) -> bool:
    """Whether Kafka says trying again may succeed (a coordinator loading, a leader moving)."""
    from confluent_kafka import KafkaException

    if not isinstance(exc, KafkaException) or not exc.args:
        return False
    err = exc.args[0]
    return bool(err.retriable() or err.code() in _waits())


def _retrying(
    what: str,
    fn: Callable[[], T],
    timeout: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn`` again while Kafka says the error is transient, for up to ``timeout``
    seconds (backing off from 0.1 s to 2 s); ServiceError once it is not, or time is up."""
    from confluent_kafka import KafkaException

    def note(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        err = exc.args[0] if exc is not None and exc.args else exc
        wait = state.next_action.sleep if state.next_action else 0.0
        log.info(
            "%s: %s; retrying in %.1f s (attempt %d)", what, err, wait, state.attempt_number + 1
        )

    retrying = Retrying(
        retry=retry_if_exception(_transient),
        stop=stop_after_delay(timeout),
        wait=wait_exponential(multiplier=0.1, max=2.0),
        before_sleep=note,
        sleep=sleep,
        reraise=True,
    )
    try:
        return retrying(fn)
    except KafkaException as exc:
        raise ServiceError("kafka", f"{what}: {exc.args[0] if exc.args else exc}") from exc


def _partitions(consumer: Any, topic: str, timeout: float) -> list[int]:
    meta = consumer.list_topics(topic, timeout=timeout)
    info = meta.topics.get(topic)
    if info is None or info.error is not None:
        raise ServiceError("kafka", f"topic {topic} is not available ({info and info.error})")
    return sorted(info.partitions)


def _positions(consumer: Any, topic: str, timeout: float) -> tuple[dict[int, int], dict[int, int]]:
    """Per partition: where the group stands (committed, else the low mark) and the end."""
    from confluent_kafka import TopicPartition

    parts = _partitions(consumer, topic, timeout)
    committed = _retrying(
        f"reading the committed offsets of {topic}",
        lambda: consumer.committed([TopicPartition(topic, p) for p in parts], timeout=timeout),
        timeout,
    )
    start: dict[int, int] = {}
    end: dict[int, int] = {}
    for tp in committed:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, tp.partition), timeout=timeout
        )
        start[tp.partition] = tp.offset if tp.offset >= 0 else low
        # a committed offset below the low mark (retention passed it) starts at the low mark
        start[tp.partition] = max(start[tp.partition], low)
        end[tp.partition] = high
    return start, end


def read_batch(kafka: Any, *, max_events: int | None = None, timeout: float = 30.0) -> Batch:
    """Read the next micro-batch (see the module docstring); commit nothing."""
    from confluent_kafka import KafkaError, TopicPartition

    t0 = time.monotonic()
    limit = max_events or kafka.batch_max
    batch = Batch()
    dead: list[tuple[Any, Any, str]] = []
    consumer = _consumer(kafka)
    try:
        start, end = _positions(consumer, kafka.topic, timeout)
        batch.offsets = dict(start)
        todo = {p for p in start if start[p] < end[p]}
        if not todo:
            return batch
        consumer.assign([TopicPartition(kafka.topic, p, start[p]) for p in sorted(todo)])
        deadline = time.monotonic() + timeout
        taken = 0
        while todo and taken < limit:
            if time.monotonic() > deadline:
                raise ServiceError(
                    "kafka", f"reading {kafka.topic} stalled: partitions {sorted(todo)} unread"
                )
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise ServiceError("kafka", f"reading {kafka.topic}: {msg.error()}")
            p, off = msg.partition(), msg.offset()
            if p not in todo or off >= end[p]:
                continue  # past the end seen at the start: the next batch's
            taken += 1
            batch.offsets[p] = off + 1
            if batch.offsets[p] >= end[p]:
                todo.discard(p)
            try:
                event = decode(msg.value())
                change = route(event)
            except InvalidEvent as exc:
                where = f"{kafka.topic}[{p}]@{off}"
                log.warning("dead-lettering %s: %s", where, exc)
                dead.append((msg.key(), msg.value(), f"{where}: {exc}"))
                continue
            batch.events.append(event)
            batch.changes.append(change)
    finally:
        consumer.close()
    if dead:
        _dead_letter(kafka, dead, timeout)
        batch.dead_lettered = len(dead)
    batch.seconds = time.monotonic() - t0
    return batch


def _deliver(producer: Any, what: str, timeout: float) -> Any:
    errors: list[str] = []

    def done(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    return done, lambda: _wait(producer, errors, what, timeout)


def _wait(producer: Any, errors: list[str], what: str, timeout: float) -> None:
    left = producer.flush(timeout)
    if left or errors:
        reason = errors[0] if errors else f"{left} messages unconfirmed after {timeout:.0f} s"
        raise ServiceError("kafka", f"{what}: {reason}")


def _dead_letter(kafka: Any, dead: Iterable[tuple[Any, Any, str]], timeout: float) -> None:
    producer = _producer(kafka)
    callback, wait = _deliver(producer, f"writing to {kafka.dlq_topic}", timeout)
    for key, value, reason in dead:
        producer.produce(
            kafka.dlq_topic,
            key=key,
            value=value,
            headers=[("reason", reason.encode())],
            on_delivery=callback,
        )
    wait()


def publish(kafka: Any, events: Iterable[Mapping[str, Any]], *, timeout: float = 30.0) -> int:
    """Produce events to the topic keyed by their entity; return when all are stored.

    Each record holds the event slimmed to what the stream needs
    (:func:`~scimflow.stream.events.slim`), as the receiver writes it, unless
    ``kafka.whole_events`` asks for the whole event.
    """
    producer = _producer(kafka)
    callback, wait = _deliver(producer, f"publishing to {kafka.topic}", timeout)
    whole = bool(kafka.whole_events)
    n = 0
    for event in events:
        change = route(event)
        value = dict(event) if whole else slim(event)
        producer.produce(
            kafka.topic,
            key=change.entity_id.encode(),
            value=json.dumps(value, separators=(",", ":")).encode(),
            headers=[("uuid", change.uuid.encode()), ("eventType", change.event_type.encode())],
            on_delivery=callback,
        )
        n += 1
        producer.poll(0)
    wait()
    return n


def commit(kafka: Any, offsets: Mapping[int, int], *, timeout: float = 30.0) -> None:
    """Commit ``offsets`` (next offset per partition) for the consumer group, synchronously."""
    from confluent_kafka import TopicPartition

    if not offsets:
        return
    consumer = _consumer(kafka)
    try:
        parts = [TopicPartition(kafka.topic, int(p), int(o)) for p, o in offsets.items()]
        result = _retrying(
            f"committing {kafka.topic} offsets",
            lambda: consumer.commit(offsets=parts, asynchronous=False),
            timeout,
        )
        bad = [tp for tp in result or [] if tp.error is not None]
        if bad:
            where = f"{kafka.topic}[{bad[0].partition}]"
            raise ServiceError("kafka", f"committing {where}: {bad[0].error}")
    finally:
        consumer.close()


def lag(kafka: Any, *, timeout: float = 10.0) -> int:
    """Events on the topic the consumer group has not committed past."""
    consumer = _consumer(kafka)
    try:
        start, end = _positions(consumer, kafka.topic, timeout)
    finally:
        consumer.close()
    return sum(max(0, end[p] - start[p]) for p in end)
