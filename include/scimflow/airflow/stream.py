"""The ``okta.events`` topic as an Airflow Asset with a Kafka doorbell.

The AssetWatcher's trigger (one shared consumer in the triggerer, group
``scimflow-doorbell`` of the connection ``scimflow_kafka_doorbell``) only rings: each
message queues an ``okta_events`` run, and ``max_active_runs=1`` folds a burst into
few runs. The run reads the topic itself with its own consumer group and commits
only when its effect is durable (see :mod:`scimflow.stream.batch`). Events that ring
while a run is being created may attach to no run (an Airflow limitation, see the
notes); the run's last task rings again through the ``REARM`` alias when events are
left, so none waits for the next message (an alias, so that it rings only then).

Bootstrap address and topic are read from the environment at parse time (no network,
no connection look-up): ``SCIMFLOW_KAFKA_BOOTSTRAP`` (default ``localhost:9092``) and
``SCIMFLOW_KAFKA_TOPIC`` (default ``okta.events``); keep them equal to the
configuration's ``kafka`` section.
"""

from __future__ import annotations

import os

from airflow.providers.apache.kafka.triggers.shared_stream import KafkaSharedStreamTrigger
from airflow.sdk import Asset, AssetAlias, AssetWatcher

__all__ = ["DOORBELL_CONN_ID", "EVENTS_TOPIC", "OKTA_EVENTS", "REARM"]

DOORBELL_CONN_ID = "scimflow_kafka_doorbell"
EVENTS_TOPIC = os.environ.get("SCIMFLOW_KAFKA_TOPIC", "okta.events")
_BOOTSTRAP = os.environ.get("SCIMFLOW_KAFKA_BOOTSTRAP", "localhost:9092").split(",")[0]

OKTA_EVENTS = Asset(
    name="okta_events",
    uri=f"kafka://{_BOOTSTRAP}/{EVENTS_TOPIC}",
    watchers=[
        AssetWatcher(
            name="okta_events_doorbell",
            trigger=KafkaSharedStreamTrigger(
                topics=[EVENTS_TOPIC], kafka_config_id=DOORBELL_CONN_ID, poll_timeout=1.0
            ),
        )
    ],
)

# the okta_events run's last task adds an OKTA_EVENTS event through this alias only when
# events are left on the topic (a plain outlet would ring after every run, forever)
REARM = AssetAlias(name="okta_events_rearm")
