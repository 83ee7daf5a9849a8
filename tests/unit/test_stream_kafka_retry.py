"""The stream's Kafka retries: transient errors are tried again, bounded in time, logged."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaError, KafkaException
from scimflow.errors import ServiceError
from scimflow.stream.kafka import _retrying


class Flaky:
    """Raises the given Kafka errors in turn, then answers ``done``."""

    def __init__(self, *codes: int) -> None:
        self.codes = list(codes)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.codes:
            raise KafkaException(KafkaError(self.codes.pop(0)))
        return "done"


def test_a_loading_coordinator_is_waited_for_with_growing_pauses(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="scimflow.stream.kafka")
    pauses: list[float] = []
    fn = Flaky(
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,  # not flagged retriable by librdkafka
        KafkaError.NOT_COORDINATOR,
        KafkaError._TRANSPORT,
    )
    assert _retrying("committing t offsets", fn, 30.0, sleep=pauses.append) == "done"
    assert fn.calls == 4
    assert pauses == pytest.approx([0.1, 0.2, 0.4])
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 3
    assert retries[0].getMessage().startswith("committing t offsets: ")


def test_a_permanent_error_is_not_retried() -> None:
    pauses: list[float] = []
    fn = Flaky(KafkaError.TOPIC_AUTHORIZATION_FAILED)
    with pytest.raises(ServiceError, match="committing t offsets"):
        _retrying("committing t offsets", fn, 30.0, sleep=pauses.append)
    assert fn.calls == 1
    assert pauses == []


def test_retries_stop_once_the_time_is_up() -> None:
    fn = Flaky(*[KafkaError.COORDINATOR_NOT_AVAILABLE] * 10)
    with pytest.raises(ServiceError, match="reading the committed offsets") as info:
        _retrying("reading the committed offsets", fn, 0.0, sleep=lambda _s: None)
    assert fn.calls == 1
    assert isinstance(info.value.__cause__, KafkaException)


def test_other_exceptions_pass_through_untouched() -> None:
    def broken() -> str:
        raise ValueError("not Kafka's")

    with pytest.raises(ValueError, match="not Kafka's"):
        _retrying("x", broken, 30.0, sleep=lambda _s: None)
