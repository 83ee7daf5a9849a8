"""Routing of Okta events: the Kafka key and every entity an event names."""

from __future__ import annotations

from typing import Any

import pytest
from scimflow.stream.events import InvalidEvent, decode, route, slim


def ev(event_type: str, targets: list[dict[str, str]], **extra: object) -> dict[str, Any]:
    return {
        "uuid": "e-1",
        "eventType": event_type,
        "published": "2026-11-29T10:00:00.000Z",
        "target": targets,
        **extra,
    }


USER = {"id": "00u1", "type": "User", "alternateId": "someone@example.com"}
GROUP = {"id": "00g1", "type": "UserGroup"}


def test_user_events_are_keyed_by_the_user_and_group_events_by_the_group() -> None:
    change = route(ev("user.lifecycle.suspend", [USER]))
    assert (change.kind, change.entity_id, change.user_ids, change.group_ids) == (
        "User",
        "00u1",
        ("00u1",),
        (),
    )
    member = route(ev("group.user_membership.add", [USER, GROUP]))
    assert (member.kind, member.entity_id) == ("Group", "00g1")
    # both are named: the group's members and the user's scope may both have changed
    assert member.user_ids == ("00u1",) and member.group_ids == ("00g1",)
    app = route(
        ev("application.user_membership.add", [{"id": "0oa1", "type": "AppInstance"}, USER])
    )
    assert (app.kind, app.entity_id) == ("User", "00u1")


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (ev("group.user_membership.add", [USER]), "group event without a UserGroup target id"),
        (ev("policy.lifecycle.update", [{"id": "p", "type": "Policy"}]), "without a User target"),
        (
            ev("user.lifecycle.create", [{"id": "", "type": "User"}]),
            r"target\[0\] \(User\) has no id",
        ),
        ({"eventType": "x", "published": "t", "target": []}, "missing uuid"),
        (ev("user.lifecycle.create", "nope"), "missing target list"),  # type: ignore[arg-type]
        ([1, 2], "must be a JSON object"),
    ],
)
def test_an_event_that_cannot_be_routed_says_why_without_values(event: object, reason: str) -> None:
    with pytest.raises(InvalidEvent, match=reason) as info:
        route(event)
    assert "someone@example.com" not in str(info.value)


def test_decode_refuses_what_is_not_an_event_object() -> None:
    assert decode(b'{"uuid": "x"}') == {"uuid": "x"}
    for raw, reason in [
        (None, "empty message"),
        (b"\xff\xfe", "not UTF-8"),
        (b"{nope", "not JSON"),
        (b"[1]", "JSON object"),
    ]:
        with pytest.raises(InvalidEvent, match=reason):
            decode(raw)


# -- what goes to Kafka: the slim event ---------------------------------------------------
def whole(event_type: str, targets: list[dict[str, str]]) -> dict[str, Any]:
    """An event as Okta's System Log and Event Hooks give it: people named all over."""
    event = ev(
        event_type,
        [],
        version="0",
        displayMessage="Update user profile",
        actor={"id": "00uadmin", "type": "User", "alternateId": "admin@example.com"},
        client={"ipAddress": "203.0.113.7", "userAgent": {"rawUserAgent": "curl"}},
        outcome={"result": "SUCCESS"},
        debugContext={"debugData": {"requestUri": "/api/v1/users"}},
    )
    event["target"] = [{**t, "displayName": "Some One", "detailEntry": {"x": "y"}} for t in targets]
    return event


ROUTABLE = [
    ("user.account.update_profile", [USER]),
    ("group.user_membership.add", [USER, GROUP]),
    ("group.lifecycle.create", [GROUP]),
    ("application.user_membership.add", [{"id": "0oa1", "type": "AppInstance"}, USER]),
]


@pytest.mark.parametrize(("event_type", "targets"), ROUTABLE)
def test_slim_keeps_what_route_needs_and_route_reads_it_alike(
    event_type: str, targets: list[dict[str, str]]
) -> None:
    event = whole(event_type, targets)
    small = slim(event)
    assert small == {
        "uuid": "e-1",
        "eventType": event_type,
        "published": "2026-11-29T10:00:00.000Z",
        "target": [{"id": t["id"], "type": t["type"]} for t in targets],
    }
    assert route(small) == route(event)
    text = repr(small)
    for gone in ("admin@example.com", "someone@example.com", "Some One", "203.0.113.7", "curl"):
        assert gone not in text
    assert slim(small) == small  # a slim event stays as it is
    assert "actor" in event and "client" in event  # the caller's event is left whole


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (ev("group.user_membership.add", [USER]), "group event without a UserGroup target id"),
        (ev("user.lifecycle.create", [{"id": "", "type": "User"}]), r"\(User\) has no id"),
        (ev("user.lifecycle.create", [{"type": "User", "id": 7}]), r"\(User\) has no id"),  # type: ignore[dict-item]
        ({"eventType": "x", "published": "t", "target": []}, "missing uuid"),
        (ev("user.lifecycle.create", "nope"), "missing target list"),  # type: ignore[arg-type]
        (ev("user.lifecycle.create", ["someone@example.com"]), r"target\[0\] is not an object"),  # type: ignore[list-item]
    ],
)
def test_a_slim_event_is_refused_for_the_same_reason_and_keeps_no_value(
    event: dict[str, Any], reason: str
) -> None:
    small = slim(event)
    for e in (event, small):
        with pytest.raises(InvalidEvent, match=reason):
            route(e)
    assert "someone@example.com" not in repr(small) and "nope" not in repr(small)
