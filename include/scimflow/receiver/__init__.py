"""The Okta Event Hook receiver (``scimflow receiver``): hook batches in, Kafka records out.

:func:`create_app` builds the ASGI app from the ``receiver`` and ``kafka`` sections of
the configuration; :mod:`scimflow.receiver.envelope` checks a hook's shape and routes
each event to its Kafka key.
"""

from __future__ import annotations

from scimflow.receiver.app import (
    VERIFICATION_HEADER,
    EventProducer,
    HookReceiver,
    create_app,
    producer_config,
    receiver_sections,
)
from scimflow.receiver.envelope import HOOK_EVENT_TYPE, ShapeError, parse_hook, route

__all__ = [
    "HOOK_EVENT_TYPE",
    "VERIFICATION_HEADER",
    "EventProducer",
    "HookReceiver",
    "ShapeError",
    "create_app",
    "parse_hook",
    "producer_config",
    "receiver_sections",
    "route",
]
