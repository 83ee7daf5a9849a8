"""The receiver against the real broker: stored once, keyed, 503 while Kafka is down.

Each test has topics of its own (``kafka.topic`` of its configuration), so nothing here
lands on ``okta.events``.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    ResourceType,
)
from scimflow.receiver import create_app
from scimflow.scim.config import KafkaConfig, ReceiverConfig, SecretRef
from scimflow.services.process import wait_until
from scimflow.stream.events import decode, route, slim

from tests.support.servers import BackgroundServer

if TYPE_CHECKING:
    from confluent_kafka import Message
    from scimflow.services import KafkaBroker, Stack
    from starlette.applications import Starlette

    from tests.support.fixtures import StartEmulator

pytestmark = pytest.mark.integration

SECRET_ENV = "TEST_RECEIVER_KAFKA_SECRET"
SECRET = "integration-hook-secret-42"
PATH = "/okta/events"
AUTH = {"Authorization": SECRET}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def receiver_server(app: Starlette, port: int) -> BackgroundServer:
    """The real app (real producer, topics created at start) under uvicorn, in a thread."""
    return BackgroundServer(app, name="receiver", lifespan="on", port=port, start_timeout=60)


def _config(
    kafka_address: str, topic: str, port: int, **receiver: Any
) -> tuple[ReceiverConfig, KafkaConfig]:
    rcv = ReceiverConfig(port=port, path=PATH, secret=SecretRef(env=SECRET_ENV), **receiver)
    kafka = KafkaConfig(
        bootstrap_servers=kafka_address, topic=topic, dlq_topic=f"{topic}.dlq", partitions=3
    )
    return rcv, kafka


@pytest.fixture()
def receiver(
    kafka: KafkaBroker, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[BackgroundServer, KafkaConfig]]:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    port = _free_port()
    rcv, kcfg = _config(kafka.address, f"test.receiver.{uuid.uuid4().hex[:8]}", port)
    with receiver_server(create_app(rcv, kcfg), port) as server:
        yield server, kcfg


def _user(uid: str) -> dict[str, Any]:
    return {"id": uid, "type": "User", "alternateId": f"{uid}@example.com", "displayName": "A B"}


def _group(gid: str) -> dict[str, Any]:
    return {"id": gid, "type": "UserGroup", "alternateId": "unknown", "displayName": "G"}


def _event(event_type: str, targets: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "uuid": str(uuid.uuid4()),
        "published": "2026-01-02T03:04:05.678Z",
        "eventType": event_type,
        "target": targets,
    }


def _hook(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "eventType": "com.okta.event_hook",
        "eventTypeVersion": "1.0",
        "eventId": str(uuid.uuid4()),
        "data": {"events": events},
    }


def _consume(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list[Message]:
    """Read every partition of ``topic`` from the start until ``count`` records came, then
    a second more, long enough to show a duplicate."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    grace: float | None = None
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None:
                assert msg.error() is None, msg.error()
                got.append(msg)
            if len(got) >= count:
                grace = grace or time.monotonic() + 1.0
                if time.monotonic() > grace:
                    break
    finally:
        consumer.close()
    return got


def _headers(msg: Message) -> dict[str, bytes]:
    headers = msg.headers() or []  # a consumed message's: a list of (name, value) pairs
    assert isinstance(headers, list)
    pairs = [(name, value) for name, value in headers if isinstance(value, bytes)]
    assert len(pairs) == len(headers), headers  # the receiver sends every header with a value
    return dict(pairs)


def test_a_batch_lands_once_keyed_with_its_headers(
    kafka: KafkaBroker, receiver: tuple[BackgroundServer, KafkaConfig]
) -> None:
    server, kcfg = receiver
    challenge = httpx.get(
        f"{server.url}{PATH}", headers={**AUTH, "X-Okta-Verification-Challenge": "c-1"}
    )
    assert challenge.json() == {"verification": "c-1"}
    assert httpx.get(f"{server.url}/readyz").status_code == 200

    events = [
        _event("user.lifecycle.create", [_user("00uA")]),
        _event("user.account.update_profile", [_user("00uA")]),
        _event("group.user_membership.add", [_user("00uB"), _group("00gC")]),
        _event("group.user_membership.remove", [_user("00uA"), _group("00gC")]),
        _event("user.lifecycle.suspend", [_user("00uD")]),
        _event("group.user_membership.add", [_user("00uE")]),  # no group: dead letter
    ]
    body = _hook(events)
    resp = httpx.post(f"{server.url}{PATH}", json=body, headers=AUTH, timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.content == b""

    got = _consume(kafka.address, kcfg.topic, 5)
    by_uuid = {_headers(m)["uuid"].decode(): m for m in got}
    assert len(got) == 5 and len(by_uuid) == 5  # each once
    expected_keys = {
        events[0]["uuid"]: b"00uA",
        events[1]["uuid"]: b"00uA",
        events[2]["uuid"]: b"00gC",
        events[3]["uuid"]: b"00gC",
        events[4]["uuid"]: b"00uD",
    }
    assert {u: m.key() for u, m in by_uuid.items()} == expected_keys
    for sent in events[:5]:
        msg = by_uuid[sent["uuid"]]
        assert _headers(msg)["eventType"] == sent["eventType"].encode()
        assert _headers(msg)["hookEventId"] == body["eventId"].encode()
        assert msg.value() == json.dumps(slim(sent), separators=(",", ":")).encode()
    # one entity, one partition: its events keep their order
    a_events = [m for m in got if m.key() == b"00uA"]
    assert len({m.partition() for m in a_events}) == 1
    assert [
        _headers(m)["uuid"].decode() for m in sorted(a_events, key=lambda m: m.offset() or 0)
    ] == [
        events[0]["uuid"],
        events[1]["uuid"],
    ]

    dead = _consume(kafka.address, kcfg.dlq_topic, 1)
    assert len(dead) == 1
    assert _headers(dead[0])["uuid"] == events[5]["uuid"].encode()
    assert _headers(dead[0])["reason"] == b"group event without a UserGroup target id"

    text = httpx.get(f"{server.url}/metrics").text
    assert "scimflow_receiver_events_produced_total 5" in text
    assert 'scimflow_receiver_events_dead_lettered_total{reason="no_group_target"} 1' in text


def _retention_ms(bootstrap: str, topic: str) -> str:
    """The topic's ``retention.ms`` as the broker reports it."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(timeout=15)
    return str(entries["retention.ms"].value)


def _personal_event(event_type: str, targets: list[dict[str, Any]]) -> dict[str, Any]:
    """An event with what Okta puts in one about people and their machines."""
    return {
        **_event(event_type, targets),
        "actor": {
            "id": "00uadmin",
            "type": "User",
            "alternateId": "admin@example.com",
            "displayName": "Grace Hopper",
        },
        "client": {"ipAddress": "203.0.113.7", "userAgent": {"rawUserAgent": "curl/8"}},
        "displayMessage": "Update user profile for Okta",
    }


PERSONAL = (b"actor", b"displayName", b"alternateId", b"login", b"ipAddress", b"203.0.113.7")


def test_kafka_holds_only_ids_types_and_time_and_the_retention_is_set(
    kafka: KafkaBroker, receiver: tuple[BackgroundServer, KafkaConfig]
) -> None:
    server, kcfg = receiver
    # the topics the receiver created at start carry the configured retention
    assert kcfg.retention_hours == 168
    for topic in (kcfg.topic, kcfg.dlq_topic):
        assert _retention_ms(kafka.address, topic) == str(168 * 3_600_000)

    events = [
        _personal_event("user.account.update_profile", [_user("00uP")]),
        _personal_event("group.user_membership.add", [_user("00uQ"), _group("00gR")]),
        _personal_event("group.user_membership.add", [_user("00uS")]),  # dead letter
    ]
    events[0]["target"][0]["login"] = "00uP@example.com"
    resp = httpx.post(f"{server.url}{PATH}", json=_hook(events), headers=AUTH, timeout=10)
    assert resp.status_code == 200, resp.text
    got = _consume(kafka.address, kcfg.topic, 2) + _consume(kafka.address, kcfg.dlq_topic, 1)
    by_uuid = {_headers(m)["uuid"].decode(): m for m in got}
    assert set(by_uuid) == {e["uuid"] for e in events}
    for sent in events:
        value = by_uuid[sent["uuid"]].value() or b""
        for word in (*PERSONAL, b"@example.com", b"Grace Hopper", b"A B"):
            assert word not in value, (word, value)
        assert json.loads(value) == {
            "uuid": sent["uuid"],
            "eventType": sent["eventType"],
            "published": sent["published"],
            "target": [{"id": t["id"], "type": t["type"]} for t in sent["target"]],
        }
    # the stream reads the slim records as it would the whole events
    for sent in events[:2]:
        assert route(decode(by_uuid[sent["uuid"]].value())) == route(sent)


def test_whole_events_and_a_changed_retention_on_existing_topics(
    kafka: KafkaBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    topic = f"test.receiver.{uuid.uuid4().hex[:8]}"
    port = _free_port()
    rcv, kcfg = _config(kafka.address, topic, port)
    with receiver_server(create_app(rcv, kcfg), port):
        pass  # the topics now exist, with the default retention
    assert _retention_ms(kafka.address, topic) == str(168 * 3_600_000)

    kcfg = kcfg.model_copy(update={"whole_events": True, "retention_hours": 6})
    with receiver_server(create_app(rcv, kcfg), port) as server:
        for name in (topic, kcfg.dlq_topic):
            assert _retention_ms(kafka.address, name) == str(6 * 3_600_000)
        sent = _personal_event("user.account.update_profile", [_user("00uW")])
        resp = httpx.post(f"{server.url}{PATH}", json=_hook([sent]), headers=AUTH, timeout=10)
        assert resp.status_code == 200, resp.text
    (msg,) = _consume(kafka.address, topic, 1)
    assert json.loads(msg.value() or b"") == sent  # whole: actor, names, IP and all
    assert b"203.0.113.7" in (msg.value() or b"")


def test_kafka_down_answers_503_and_back_up_stores_again(
    kafka: KafkaBroker, receiver: tuple[BackgroundServer, KafkaConfig]
) -> None:
    server, kcfg = receiver
    url = f"{server.url}{PATH}"
    first = [_event("user.lifecycle.create", [_user(f"00u{i}")]) for i in range(3)]
    assert httpx.post(url, json=_hook(first), headers=AUTH, timeout=10).status_code == 200

    assert kafka.stop() is True
    try:
        during = [_event("user.lifecycle.deactivate", [_user(f"00u{i}")]) for i in range(3)]
        t0 = time.monotonic()
        resp = httpx.post(url, json=_hook(during), headers=AUTH, timeout=10)
        elapsed = time.monotonic() - t0
        assert resp.status_code == 503, resp.text
        assert resp.headers["retry-after"]
        assert elapsed < 3.0  # inside Okta's 3 s: it retries instead of timing out
        ready = httpx.get(f"{server.url}/readyz", timeout=5)
        assert ready.status_code == 503
    finally:
        assert kafka.start() is True

    back = wait_until(
        lambda: httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200,
        timeout=30,
        interval=0.5,
    )
    assert back, "the receiver did not see Kafka come back"
    after = [_event("user.lifecycle.activate", [_user(f"00u{i}")]) for i in range(3)]
    resp = httpx.post(url, json=_hook(after), headers=AUTH, timeout=10)
    assert resp.status_code == 200, resp.text

    got = _consume(kafka.address, kcfg.topic, 6)
    uuids = [_headers(m)["uuid"].decode() for m in got]
    for sent in first + after:
        assert uuids.count(sent["uuid"]) == 1
    # the batch answered 503 may land later (Okta's retry would bring it again: at least
    # once), but never twice from one delivery
    for sent in during:
        assert uuids.count(sent["uuid"]) <= 1
    text = httpx.get(f"{server.url}/metrics").text
    assert 'scimflow_receiver_batches_failed_total{reason="timeout"} 1' in text


def test_the_emulator_delivers_its_hooks_through_the_receiver_to_kafka(
    kafka: KafkaBroker,
    stack: Stack,
    okta_emulator: StartEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """connect_hooks wires a (local) emulator to the receiver: verification, then batches."""
    from scimflow.services import OktaEmulator, Receiver, connect_hooks

    settings = dataclasses.replace(
        stack.settings, home=tmp_path / "home", receiver_port=_free_port()
    )
    server = okta_emulator(users=10, groups=2, token=OktaEmulator(settings).token())
    settings = dataclasses.replace(settings, okta_port=int(server.url.rsplit(":", 1)[1]))
    monkeypatch.setenv(SECRET_ENV, Receiver(settings).secret())
    rcv, kcfg = _config(
        kafka.address, f"test.receiver.{uuid.uuid4().hex[:8]}", settings.receiver_port
    )
    with receiver_server(create_app(rcv, kcfg), settings.receiver_port):
        assert connect_hooks(settings, batch_size=5) == {"verified": True}
        d = server.state.directory
        uid, gid = d.user_ids[0], d.group_ids[0]
        d.update_profile(uid, {"title": "Engineer"})
        if uid in d.members[gid]:
            d.remove_member(gid, uid)
            membership = "group.user_membership.remove"
        else:
            d.add_member(gid, uid)
            membership = "group.user_membership.add"
        assert server.state.hooks.flush(15)
        stats = server.state.hooks.stats()
        assert stats["batches_failed"] == 0 and stats["events_delivered"] == 2
    got = _consume(kafka.address, kcfg.topic, 2)
    assert sorted(
        (_headers(m)["eventType"].decode(), (m.key() or b"").decode()) for m in got
    ) == sorted([("user.account.update_profile", uid), (membership, gid)])


def test_the_receiver_service_runs_the_command(
    kafka: KafkaBroker, stack: Stack, tmp_path: Path
) -> None:
    """``scimflow receiver`` as the stack runs it: healthy by /readyz, verifies, stops."""
    from scimflow.services import Receiver

    settings = dataclasses.replace(
        stack.settings, home=tmp_path / "home", receiver_port=_free_port()
    )
    service = Receiver(settings)
    try:
        assert service.start() is True
        status = service.status()
        assert status.healthy, status.detail
        resp = httpx.get(
            service.address,
            headers={"Authorization": service.secret(), "X-Okta-Verification-Challenge": "x9"},
        )
        assert resp.json() == {"verification": "x9"}
        assert httpx.get(service.address, headers={"Authorization": "no"}).status_code == 401
        assert service.secret() not in service.process.log_file.read_text()
    finally:
        assert service.stop() is True
    assert not service.status().running
