"""The ``okta.events`` topic as an Airflow Asset with a Kafka doorbell.

The AssetWatcher's trigger (one shared consumer in the triggerer, group
``scimflow-doorbell`` of the connection ``scimflow_kafka_doorbell``) only rings: a
message queues an ``okta_events`` run, and ``max_active_runs=1`` folds a burst into
few runs. It rings at most once a second (:class:`DoorbellTrigger`): a burst of 10,000
messages is a few dozen asset events, not 10,000 rows in Airflow's database and minutes
of the triggerer's and scheduler's time. The run reads the topic itself with its own
consumer group and commits only when its effect is durable (see
:mod:`scimflow.stream.batch`). A ring may attach to no run (an event arriving while a
run is being created: an Airflow limitation, see the notes), and a message may arrive
after the run read the topic: the run's last task measures the lag and rings again
through the ``REARM`` alias when events are left, so none waits for the next message
(an alias, so that it rings only then).

Bootstrap address and topic are read from the environment at parse time (no network,
no connection look-up): ``SCIMFLOW_KAFKA_BOOTSTRAP`` (default ``localhost:9092``) and
``SCIMFLOW_KAFKA_TOPIC`` (default ``okta.events``); keep them equal to the
configuration's ``kafka`` section.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Hashable, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.apache.kafka.triggers.shared_stream import KafkaSharedStreamTrigger
from airflow.sdk import Asset, AssetAlias, AssetWatcher
from airflow.triggers.base import TriggerEvent

if TYPE_CHECKING:
    from airflow.sdk.types import OutletEventAccessorsProtocol

__all__ = [
    "DOORBELL_CONN_ID",
    "EVENTS_TOPIC",
    "OKTA_EVENTS",
    "REARM",
    "DoorbellTrigger",
    "rearm",
    "ring_payload",
]


def ring_payload(value: Any) -> dict[str, str]:
    """What a ring records in Airflow's database (the asset event's ``extra``, shown in
    the UI): the Okta event's uuid, type and time, never the event itself, which names
    people (actor and target display names, logins)."""
    try:
        event = json.loads(value)
    except (TypeError, ValueError):
        return {}
    if not isinstance(event, dict):
        return {}
    return {
        k: event[k] for k in ("uuid", "eventType", "published") if isinstance(event.get(k), str)
    }


class DoorbellTrigger(KafkaSharedStreamTrigger):
    """The provider's shared-stream trigger, ringing at most once per ``min_interval``.

    A message that arrives less than ``min_interval`` seconds after the last ring is
    passed over (and committed past, like any message the trigger has handled): the run
    queued by that ring reads the topic itself, from the consumer group's committed
    offsets to the end offsets it sees when it starts. A message stored after that
    start is not lost either: the run's last task measures the lag and rings again
    through ``REARM`` when events are left. So the throttle drops rings, never events.
    """

    def __init__(
        self,
        *,
        topics: Sequence[str],
        kafka_config_id: str = "kafka_default",
        poll_timeout: float = 1.0,
        dlq_topic: str | None = None,
        min_interval: float = 1.0,
    ) -> None:
        super().__init__(
            topics=topics,
            kafka_config_id=kafka_config_id,
            poll_timeout=poll_timeout,
            dlq_topic=dlq_topic,
        )
        if min_interval < 0:
            raise ValueError(f"min_interval must be at least 0, not {min_interval}")
        self.min_interval = min_interval
        self._last_ring: float | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()
        return f"{__name__}.{type(self).__name__}", {**kwargs, "min_interval": self.min_interval}

    def shared_stream_key(self) -> Hashable:
        # not shared with the provider's own trigger class on the same topics
        return "scimflow-doorbell", tuple(self.topics), self.kafka_config_id

    async def filter_shared_stream(
        self, shared_stream: AsyncIterator[Any]
    ) -> AsyncIterator[TriggerEvent]:
        async for value in shared_stream:
            now = time.monotonic()
            if self._last_ring is not None and now - self._last_ring < self.min_interval:
                continue
            self._last_ring = now
            yield TriggerEvent(ring_payload(value))  # type: ignore[no-untyped-call]


DOORBELL_CONN_ID = "scimflow_kafka_doorbell"
EVENTS_TOPIC = os.environ.get("SCIMFLOW_KAFKA_TOPIC", "okta.events")
_BOOTSTRAP = os.environ.get("SCIMFLOW_KAFKA_BOOTSTRAP", "localhost:9092").split(",")[0]

OKTA_EVENTS = Asset(
    name="okta_events",
    uri=f"kafka://{_BOOTSTRAP}/{EVENTS_TOPIC}",
    watchers=[
        AssetWatcher(
            name="okta_events_doorbell",
            trigger=DoorbellTrigger(
                topics=[EVENTS_TOPIC],
                kafka_config_id=DOORBELL_CONN_ID,
                poll_timeout=1.0,
                min_interval=1.0,
            ),
        )
    ],
)

# the okta_events run's last task adds an OKTA_EVENTS event through this alias only when
# events are left on the topic (a plain outlet would ring after every run, forever)
REARM = AssetAlias(name="okta_events_rearm")


def rearm(outlet_events: OutletEventAccessorsProtocol, left: int, *, why: str = "left") -> bool:
    """Ring the doorbell once more, through :data:`REARM`, when ``left`` events are on
    the topic after a run committed its batch: they may have arrived after the run read
    the topic, with their rings passed over or attached to no run. Whether it rang.

    The System Log catch-up rings the same way, with ``why="published"``, only when it
    published something: an empty catch-up run queues no empty ``okta_events`` run."""
    if left <= 0:
        return False
    outlet_events[REARM].add(OKTA_EVENTS, extra={why: left})
    return True
