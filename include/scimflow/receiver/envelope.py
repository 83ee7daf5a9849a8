"""The Okta Event Hook envelope: its shape, and which Kafka record each event becomes.

Okta POSTs ``{"eventType": "com.okta.event_hook", "eventId": ..., "data": {"events":
[LogEvent, ...]}}``. :func:`parse_hook` checks that shape and raises :class:`ShapeError`
with a reason that names the field at fault (``data.events[3]: missing uuid``), never a
value: the events carry personal data (logins, names).

:func:`route` says which entity an event concerns, the key of its Kafka record: the
group (the ``UserGroup`` target) for ``group.*`` events, the user (the ``User`` target)
for every other one. An event without that target cannot be routed: it goes to the
dead-letter topic with the reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "HOOK_EVENT_TYPE",
    "HookBatch",
    "Routed",
    "ShapeError",
    "compact_json",
    "parse_hook",
    "route",
]

HOOK_EVENT_TYPE = "com.okta.event_hook"


class ShapeError(ValueError):
    """The body is not an Okta Event Hook; ``reason`` names the field, not its value."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class HookBatch:
    """One delivery: the hook's ``eventId`` and its LogEvents, in the order received."""

    event_id: str
    events: list[dict[str, Any]]


@dataclass(frozen=True)
class Routed:
    """Where one event goes: ``key`` (an Okta id), or no key and the dead-letter reason."""

    key: str | None
    reason_code: str | None = None
    reason: str | None = None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _non_empty_string(obj: dict[str, Any], name: str, where: str) -> str:
    if name not in obj:
        raise ShapeError(f"{where}: missing {name}")
    value = obj[name]
    if not isinstance(value, str) or not value:
        raise ShapeError(f"{where}.{name}: must be a non-empty string")
    return value


def parse_hook(body: bytes) -> HookBatch:
    """Check an Event Hook body; raises :class:`ShapeError` naming the first problem."""
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError):  # JSONDecodeError is a ValueError
        raise ShapeError("body: not valid JSON") from None
    if not isinstance(data, dict):
        raise ShapeError("body: must be a JSON object")
    if "eventType" not in data:
        raise ShapeError("body: missing eventType")
    if data["eventType"] != HOOK_EVENT_TYPE:
        raise ShapeError(f"eventType: must be {HOOK_EVENT_TYPE}")
    if "eventId" not in data:
        raise ShapeError("body: missing eventId")
    event_id = data["eventId"]
    if not isinstance(event_id, str) or not event_id:
        raise ShapeError("eventId: must be a non-empty string")
    if "data" not in data:
        raise ShapeError("body: missing data")
    payload = data["data"]
    if not isinstance(payload, dict):
        raise ShapeError("data: must be an object")
    if "events" not in payload:
        raise ShapeError("data: missing events")
    events = payload["events"]
    if not isinstance(events, list):
        raise ShapeError("data.events: must be a list")
    for i, event in enumerate(events):
        where = f"data.events[{i}]"
        if not isinstance(event, dict):
            raise ShapeError(f"{where}: must be an object")
        for name in ("uuid", "eventType", "published"):
            _non_empty_string(event, name, where)
        if "target" not in event:
            raise ShapeError(f"{where}: missing target")
        targets = event["target"]
        if not isinstance(targets, list):
            raise ShapeError(f"{where}.target: must be a list")
        for j, target in enumerate(targets):
            if not isinstance(target, dict):
                raise ShapeError(f"{where}.target[{j}]: must be an object")
    return HookBatch(event_id=event_id, events=events)


def route(event: dict[str, Any]) -> Routed:
    """The entity a (shape-checked) event concerns: the key of its Kafka record.

    The rule is :func:`scimflow.stream.events.route`, shared with the System Log
    catch-up, so that both publish an entity's events under the same key.
    """
    from scimflow.stream.events import InvalidEvent
    from scimflow.stream.events import route as route_event

    try:
        return Routed(key=route_event(event).entity_id)
    except InvalidEvent as exc:
        code = (
            "no_group_target"
            if str(event.get("eventType", "")).startswith("group.")
            else ("no_user_target")
        )
        return Routed(None, code, str(exc))


def compact_json(obj: Any) -> bytes:
    """The record value: compact JSON, UTF-8."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
