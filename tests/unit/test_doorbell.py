"""The doorbell trigger: rings at most once per interval, and the triggerer can load it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from airflow.providers.apache.kafka.triggers.shared_stream import KafkaSharedStreamProducer

# the loader the triggerer uses (re-exported by Airflow without __all__)
from airflow.sdk.module_loading import import_string  # type: ignore[attr-defined]
from scimflow.airflow.stream import OKTA_EVENTS, DoorbellTrigger, ring_payload


def _ring(
    trigger: DoorbellTrigger, arrivals: list[tuple[float, bytes]], monkeypatch: pytest.MonkeyPatch
) -> list[dict[str, Any]]:
    """The trigger events fired for messages arriving at the given monotonic times."""
    clock = {"now": 0.0}
    monkeypatch.setattr(time, "monotonic", lambda: clock["now"])  # the trigger's clock

    async def messages() -> AsyncIterator[bytes]:
        for at, value in arrivals:
            clock["now"] = at
            yield value

    async def collect() -> list[dict[str, Any]]:
        return [e.payload async for e in trigger.filter_shared_stream(messages())]

    return asyncio.run(collect())


def _msg(n: int) -> bytes:
    return json.dumps({"uuid": f"u-{n}", "eventType": "user.account.update_profile"}).encode()


def test_rings_for_the_first_message_then_at_most_once_per_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trigger = DoorbellTrigger(topics=["okta.events"], kafka_config_id="c", min_interval=1.0)
    arrivals = [(10.0, _msg(1)), (10.2, _msg(2)), (10.9, _msg(3)), (11.0, _msg(4))]
    arrivals += [(11.5, _msg(5)), (30.0, _msg(6))]
    rung = _ring(trigger, arrivals, monkeypatch)
    assert [p["uuid"] for p in rung] == ["u-1", "u-4", "u-6"]


def test_a_burst_of_ten_thousand_messages_in_ten_seconds_rings_ten_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trigger = DoorbellTrigger(topics=["okta.events"], kafka_config_id="c", min_interval=1.0)
    arrivals = [(i / 1000, _msg(i)) for i in range(10_000)]
    assert len(_ring(trigger, arrivals, monkeypatch)) == 10


def test_an_interval_of_zero_rings_for_every_message(monkeypatch: pytest.MonkeyPatch) -> None:
    trigger = DoorbellTrigger(topics=["okta.events"], kafka_config_id="c", min_interval=0.0)
    arrivals = [(1.0, _msg(1)), (1.0, _msg(2)), (1.5, _msg(3))]
    assert len(_ring(trigger, arrivals, monkeypatch)) == 3


def test_the_triggerer_rebuilds_it_from_its_serialized_form() -> None:
    trigger = OKTA_EVENTS.watchers[0].trigger
    assert isinstance(trigger, DoorbellTrigger)
    classpath, kwargs = trigger.serialize()
    assert classpath == "scimflow.airflow.stream.DoorbellTrigger"
    rebuilt = import_string(classpath)(**kwargs)
    assert isinstance(rebuilt, DoorbellTrigger)
    assert rebuilt.min_interval == 1.0
    assert rebuilt.serialize() == (classpath, kwargs)
    # its own consumer, not shared with the provider's trigger on the same topic
    key = rebuilt.shared_stream_key()
    assert isinstance(key, tuple) and key[0] == "scimflow-doorbell"
    producer = DoorbellTrigger.create_shared_stream_producer(kwargs)
    assert isinstance(producer, KafkaSharedStreamProducer)
    assert producer.topics == kwargs["topics"]


@pytest.mark.parametrize("interval", [-1.0])
def test_a_negative_interval_is_refused(interval: float) -> None:
    with pytest.raises(ValueError, match="min_interval"):
        DoorbellTrigger(topics=["t"], kafka_config_id="c", min_interval=interval)


def test_a_ring_records_the_events_uuid_type_and_time_never_who() -> None:
    event = {
        "uuid": "e-1",
        "eventType": "user.lifecycle.deactivate",
        "published": "2026-11-30T09:00:00.000Z",
        "actor": {"alternateId": "admin@example.com", "displayName": "Ada Admin"},
        "target": [{"id": "00u1", "alternateId": "jo@example.com", "displayName": "Jo Doe"}],
    }
    payload = ring_payload(json.dumps(event).encode())
    assert payload == {k: event[k] for k in ("uuid", "eventType", "published")}
    assert "example.com" not in json.dumps(payload) and "Doe" not in json.dumps(payload)
    assert ring_payload(b"not json") == {} and ring_payload(b"[1, 2]") == {}
    assert ring_payload(json.dumps({"uuid": 7}).encode()) == {}
