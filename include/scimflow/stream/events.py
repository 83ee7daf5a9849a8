"""What an Okta System Log event (as delivered by an Event Hook) concerns.

An event is a doorbell: it names what changed (its ``target`` list), never the new
values. scimflow keys each event by the entity it concerns (the group for ``group.*``
events, the user otherwise), so that Kafka keeps one entity's events in order, and
hydrates every User and UserGroup the event names.

:func:`slim` keeps of an event only what :func:`route` reads (uuid, type, time, and
the id and type of each target): what scimflow writes to Kafka unless the configuration
asks for whole events (``kafka.whole_events``). The rest of a LogEvent (the actor, the
targets' display names and logins, the client's IP address and user agent) names
people and is not needed: the stream reads each entity's current state from Okta.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "PROVISIONING_EVENT_TYPES",
    "Change",
    "InvalidEvent",
    "decode",
    "route",
    "slim",
]

# The event types that can change what a SCIM target should hold (Okta's Event Hook
# eligible provisioning events; see the Okta notes).
PROVISIONING_EVENT_TYPES = frozenset(
    {
        "user.lifecycle.create",
        "user.lifecycle.activate",
        "user.lifecycle.reactivate",
        "user.lifecycle.deactivate",
        "user.lifecycle.suspend",
        "user.lifecycle.unsuspend",
        "user.lifecycle.delete.initiated",
        "user.account.update_profile",
        "group.user_membership.add",
        "group.user_membership.remove",
        "group.lifecycle.create",
        "group.lifecycle.delete",
        "group.profile.update",
        "application.user_membership.add",
        "application.user_membership.remove",
        "application.user_membership.update",
    }
)


class InvalidEvent(ValueError):
    """An event that cannot be routed; the message is the reason (never a value)."""


@dataclass(frozen=True)
class Change:
    """One event reduced to what the stream needs: ids only, no personal data."""

    uuid: str
    event_type: str
    published: str
    kind: str  # "User" or "Group": the entity the event is keyed by
    entity_id: str
    user_ids: tuple[str, ...]
    group_ids: tuple[str, ...]


def route(event: Any) -> Change:
    """The entity ``event`` concerns and every user and group it names.

    Raises :class:`InvalidEvent` naming the missing part.
    """
    if not isinstance(event, dict):
        raise InvalidEvent("an event must be a JSON object")
    for key in ("uuid", "eventType", "published"):
        if not isinstance(event.get(key), str) or not event[key]:
            raise InvalidEvent(f"missing {key}")
    targets = event.get("target")
    if not isinstance(targets, list):
        raise InvalidEvent("missing target list")
    users: list[str] = []
    groups: list[str] = []
    for i, t in enumerate(targets):
        if not isinstance(t, dict):
            raise InvalidEvent(f"target[{i}] is not an object")
        kind, tid = t.get("type"), t.get("id")
        if kind in ("User", "UserGroup") and (not isinstance(tid, str) or not tid):
            raise InvalidEvent(f"target[{i}] ({kind}) has no id")
        if kind == "User":
            users.append(str(tid))
        elif kind == "UserGroup":
            groups.append(str(tid))
    event_type = event["eventType"]
    if event_type.startswith("group."):
        if not groups:
            raise InvalidEvent("group event without a UserGroup target id")
        kind, entity = "Group", groups[0]
    elif users:
        kind, entity = "User", users[0]
    else:
        raise InvalidEvent("event without a User target id")
    return Change(
        uuid=event["uuid"],
        event_type=event_type,
        published=event["published"],
        kind=kind,
        entity_id=entity,
        user_ids=tuple(dict.fromkeys(users)),
        group_ids=tuple(dict.fromkeys(groups)),
    )


SLIM_FIELDS = ("uuid", "eventType", "published")
SLIM_TARGET_FIELDS = ("id", "type")


def slim(event: Mapping[str, Any]) -> dict[str, Any]:
    """``event`` reduced to what :func:`route` needs: ``uuid``, ``eventType``,
    ``published`` and ``target: [{id, type}]``, nothing else.

    Only string values are copied (a field missing, or not a string, is left out, and
    :func:`route` refuses the slim event for the same reason as the whole one); a
    target that is not an object, or a ``target`` that is not a list, becomes ``null``
    (:func:`route` still refuses it, and no value of it is kept).
    """
    out: dict[str, Any] = {k: event[k] for k in SLIM_FIELDS if isinstance(event.get(k), str)}
    targets = event.get("target")
    if isinstance(targets, list):
        out["target"] = [
            {k: t[k] for k in SLIM_TARGET_FIELDS if isinstance(t.get(k), str)}
            if isinstance(t, Mapping)
            else None
            for t in targets
        ]
    elif "target" in event:
        out["target"] = None
    return out


def decode(value: bytes | str | None) -> dict[str, Any]:
    """A Kafka message value as an event object; :class:`InvalidEvent` if it is not one."""
    if value is None:
        raise InvalidEvent("empty message")
    try:
        event = json.loads(value.decode("utf-8") if isinstance(value, bytes) else value)
    except UnicodeDecodeError:
        raise InvalidEvent("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InvalidEvent(f"not JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(event, dict):
        raise InvalidEvent("an event must be a JSON object")
    return event
