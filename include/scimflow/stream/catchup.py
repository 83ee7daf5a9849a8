"""System Log catch-up: re-publish the provisioning events the stream never saw.

An Event Hook delivery can be lost (Okta gave up after its one retry, the receiver was
down for longer, a hook was disabled). Okta's System Log keeps every event 90 days, so
for a time window this reads the log, keeps the provisioning event types, and publishes
to ``okta.events`` the events whose uuid the stream never marked seen. Duplicates (an
event still on its way through Kafka) are harmless: the stream dedupes and applies
current state.

Each run also forgets the uuids seen more than :data:`SEEN_RETENTION` ago: their events
have left the System Log, so no catch-up can read them again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from scimflow.errors import ScimflowError
from scimflow.stream.events import PROVISIONING_EVENT_TYPES, InvalidEvent, route

if TYPE_CHECKING:
    from scimflow.scim.config import ScimflowConfig
    from scimflow.state.store import StateStore

__all__ = ["SEEN_RETENTION", "catch_up"]

# Okta keeps its System Log 90 days; two more for clocks and late runs
SEEN_RETENTION = timedelta(days=92)

log = logging.getLogger(__name__)


def catch_up(
    config: ScimflowConfig,
    since: datetime,
    until: datetime,
    *,
    store: StateStore | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Publish the unseen provisioning events published in [since, until)."""
    from scimflow.okta.source import OktaSettings, OktaSource
    from scimflow.runtime import open_store
    from scimflow.stream.kafka import publish

    kafka = config.kafka_section()
    if until <= since:
        raise ScimflowError(f"empty window: until {until} is not after since {since}")
    t0 = time.monotonic()
    settings = OktaSettings(org_url=str(config.okta.org_url), token=config.okta.token.resolve())

    async def read() -> list[dict[str, Any]]:
        async with OktaSource(settings) as source:
            return await source.system_log(_utc_text(since), _utc_text(until))

    events = asyncio.run(read())
    wanted = [e for e in events if e.get("eventType") in PROVISIONING_EVENT_TYPES]
    routable = []
    for e in wanted:
        try:
            route(e)
        except InvalidEvent as exc:
            log.warning("System Log event %s left out: %s", e.get("uuid"), exc)
            continue
        routable.append(e)
    with open_store(config, store) as st:
        unseen = st.unseen(e["uuid"] for e in routable)
        pruned = 0 if dry_run else st.prune_seen(datetime.now(UTC) - SEEN_RETENTION)
    missing = [e for e in routable if e["uuid"] in unseen]
    published = 0 if dry_run else publish(kafka, missing)
    return {
        "since": _utc_text(since),
        "until": _utc_text(until),
        "log_events": len(events),
        "provisioning_events": len(wanted),
        "unseen": len(missing),
        "published": published,
        "pruned_seen": pruned,
        "dry_run": dry_run,
        "seconds": round(time.monotonic() - t0, 2),
    }


def _utc_text(value: datetime) -> str:
    """Okta's time format: UTC, milliseconds, ``Z``."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{value.astimezone(UTC).microsecond // 1000:03d}Z"
    )
