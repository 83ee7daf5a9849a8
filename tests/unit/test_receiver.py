"""The Okta Event Hook receiver, with a fake producer in place of Kafka."""

from __future__ import annotations

import copy
import itertools
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from prometheus_client import REGISTRY
from scimflow.errors import ConfigError
from scimflow.receiver import create_app, parse_hook, route
from scimflow.receiver.envelope import ShapeError
from scimflow.scim.config import KafkaConfig, ReceiverConfig, SecretRef
from scimflow.services.process import wait_until
from scimflow.stream.events import decode, slim
from scimflow.stream.events import route as stream_route
from starlette.testclient import TestClient

if TYPE_CHECKING:
    import httpx2
    from scimflow.receiver.app import DeliveryCallback, Headers
    from starlette.applications import Starlette
    from starlette.types import Message

SECRET = "s3cret-hook-value-0123456789"
SECRET_ENV = "TEST_RECEIVER_HOOK_SECRET"
PATH = "/okta/events"
AUTH = {"Authorization": SECRET}
EMAIL = "ada.lovelace@example.com"  # personal data inside events: never echoed or logged
TOPIC, DLQ = "test.events", "test.events.dlq"


# -- a producer that behaves as told ------------------------------------------------------
class FakeError:
    def __init__(self, code: str) -> None:
        self.code = code

    def name(self) -> str:
        return self.code

    def __str__(self) -> str:
        return f"KafkaError{{code={self.code}}}"


class FakeClientError(FakeError):
    """An error given to the producer's ``error_cb``: it says whether it is fatal."""

    def __init__(self, code: str, *, fatal: bool) -> None:
        super().__init__(code)
        self._fatal = fatal

    def fatal(self) -> bool:
        return self._fatal


class FakeProducer:
    """Records what is produced; delivery reports come from poll(), as librdkafka's do.

    ``mode``: ``ok`` (stored), ``fail`` (each record fails), ``silent`` (no report ever:
    Kafka is down), ``buffer`` (produce raises BufferError: the queue is full).
    ``fail_uuids`` fails only the records with those uuid headers.
    """

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.fail_uuids: set[str] = set()
        self.down = False
        self.produced: list[dict[str, Any]] = []
        self.stored: list[dict[str, Any]] = []
        self._due: list[tuple[dict[str, Any], DeliveryCallback | None]] = []
        self._cond = threading.Condition()

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        headers: Headers | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        if self.mode == "buffer":
            raise BufferError("Local: Queue full")
        msg = {"topic": topic, "key": key, "value": value, "headers": dict(headers or [])}
        self.produced.append(msg)
        with self._cond:
            self._due.append((msg, on_delivery))
            self._cond.notify_all()

    def poll(self, timeout: float = -1) -> int:
        with self._cond:
            if self.mode == "silent" or not self._due:
                if timeout > 0:
                    self._cond.wait(timeout)
                if self.mode == "silent":
                    return 0
            due, self._due = self._due, []
        for msg, callback in due:
            assert callback is not None  # the receiver wants every delivery report
            failed = self.mode == "fail" or msg["headers"]["uuid"].decode() in self.fail_uuids
            if not failed:
                self.stored.append(msg)
            callback(FakeError("_MSG_TIMED_OUT") if failed else None, msg)
        return len(due)

    def flush(self, timeout: float = -1) -> int:
        if self.mode != "silent":
            self.poll(0)
        return len(self._due)

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        if self.down:
            raise RuntimeError("metadata timed out")
        return SimpleNamespace(
            brokers={1: object()}, topics={topic or TOPIC: SimpleNamespace(error=None)}
        )


# -- events as Okta sends them ------------------------------------------------------------
def user_target(uid: str) -> dict[str, Any]:
    return {"id": uid, "type": "User", "alternateId": EMAIL, "displayName": "Ada Lovelace"}


def group_target(gid: str) -> dict[str, Any]:
    return {"id": gid, "type": "UserGroup", "alternateId": "unknown", "displayName": "Eng"}


def event(event_type: str, targets: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "uuid": str(uuid.uuid4()),
        "published": "2026-01-02T03:04:05.678Z",
        "eventType": event_type,
        "version": "0",
        "actor": {"id": "00uadmin", "type": "User", "alternateId": "admin@example.com"},
        "outcome": {"result": "SUCCESS", "reason": None},
        "target": targets,
    }


def hook(events: list[dict[str, Any]], event_id: str | None = None) -> dict[str, Any]:
    return {
        "eventType": "com.okta.event_hook",
        "eventTypeVersion": "1.0",
        "cloudEventsVersion": "0.1",
        "source": "https://example.okta.com/api/v1/eventHooks/who1",
        "eventId": event_id or str(uuid.uuid4()),
        "eventTime": "2026-01-02T03:04:06.000Z",
        "contentType": "application/json",
        "data": {"events": events},
    }


# -- fixtures -----------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


def make_app(producer: FakeProducer, *, whole_events: bool = False, **receiver: Any) -> Starlette:
    cfg = ReceiverConfig(
        secret=SecretRef(env=SECRET_ENV), **{"max_body_bytes": 4096, "ack_timeout": 1.0, **receiver}
    )
    kafka = KafkaConfig(
        bootstrap_servers="127.0.0.1:1", topic=TOPIC, dlq_topic=DLQ, whole_events=whole_events
    )
    return create_app(cfg, kafka, producer=producer, create_topics=False)


@pytest.fixture()
def producer() -> FakeProducer:
    return FakeProducer()


@pytest.fixture()
def client(producer: FakeProducer) -> Iterator[TestClient]:
    with TestClient(make_app(producer)) as c:
        yield c


def metric(client: TestClient, line_start: str) -> float:
    text = client.get("/metrics").text
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# -- verification and auth ----------------------------------------------------------------
def test_verification_echoes_the_challenge_with_the_right_auth(client: TestClient) -> None:
    resp = client.get(PATH, headers={**AUTH, "X-Okta-Verification-Challenge": "abc123"})
    assert resp.status_code == 200
    assert resp.json() == {"verification": "abc123"}
    assert client.get(PATH, headers=AUTH).status_code == 400  # no challenge
    refused = client.get(PATH, headers={"X-Okta-Verification-Challenge": "abc123"})
    assert refused.status_code == 401
    assert "abc123" not in refused.text


def test_the_emulators_verification_succeeds(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The emulator's own verification code, pointed at the app through the test client."""
    import httpx
    from scimflow.okta.emulator.hooks import HookDeliverer, HookSettings

    def get(url: str, *, headers: dict[str, str], timeout: float) -> httpx2.Response:
        return client.get(url, headers=headers)

    monkeypatch.setattr(httpx, "get", get)
    settings = HookSettings(url=f"http://testserver{PATH}", auth_value=SECRET)
    assert HookDeliverer._verify(settings) is True
    wrong = HookSettings(url=f"http://testserver{PATH}", auth_value="nope")
    assert HookDeliverer._verify(wrong) is False


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "wrong"},
        {"Authorization": SECRET[:-1]},
        {"Authorization": SECRET + "x"},
        {"Authorization": f"Bearer {SECRET}"},
        {"X-Other": SECRET},
    ],
    ids=["missing", "wrong", "prefix", "longer", "scheme", "other-header"],
)
def test_a_post_without_the_right_auth_header_is_refused(
    client: TestClient, producer: FakeProducer, headers: dict[str, str]
) -> None:
    resp = client.post(
        PATH,
        json=hook([event("user.lifecycle.create", [user_target("00u1")])]),
        headers=headers,
    )
    assert resp.status_code == 401
    assert resp.json() == {"error": "unauthorised"}
    assert SECRET not in resp.text and SECRET[:8] not in resp.text
    assert producer.produced == []


def test_a_custom_auth_header_is_the_one_checked(producer: FakeProducer) -> None:
    with TestClient(make_app(producer, auth_header="X-Hook-Key")) as c:
        body = hook([event("user.lifecycle.create", [user_target("00u1")])])
        assert c.post(PATH, json=body, headers=AUTH).status_code == 401
        assert c.post(PATH, json=body, headers={"X-Hook-Key": SECRET}).status_code == 200


# -- body size ----------------------------------------------------------------------------
def test_an_oversize_body_with_content_length_is_refused(
    client: TestClient, producer: FakeProducer
) -> None:
    big = hook([event("user.lifecycle.create", [user_target(f"00u{i}")]) for i in range(40)])
    resp = client.post(PATH, json=big, headers=AUTH)
    assert resp.status_code == 413
    assert producer.produced == []


def test_an_oversize_chunked_body_is_refused(client: TestClient, producer: FakeProducer) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b" " * 512

    resp = client.post(PATH, content=chunks(), headers=AUTH)
    assert "content-length" not in {k.lower() for k in resp.request.headers}
    assert resp.request.headers["transfer-encoding"] == "chunked"
    assert resp.status_code == 413
    assert producer.produced == []


def _asgi(app: Starlette, headers: dict[str, str], chunks: Iterator[bytes]) -> tuple[int, int]:
    """Call the app directly with a streamed body: (status, chunks it pulled)."""
    pulled = 0
    status = 0

    async def receive() -> Message:
        nonlocal pulled
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }

    async def run() -> None:
        await app(scope, receive, send)

    anyio.run(run)
    return status, pulled


def test_the_body_is_read_incrementally_and_never_held_whole(producer: FakeProducer) -> None:
    app = make_app(producer)  # limit 4096
    endless = itertools.repeat(b"x" * 1024)  # a body that never ends
    status, pulled = _asgi(app, AUTH, endless)
    assert status == 413
    assert pulled == 5  # stopped at the first chunk past the limit

    # a Content-Length over the limit is refused before any of the body is read
    status, pulled = _asgi(app, {**AUTH, "Content-Length": "100000000"}, endless)
    assert (status, pulled) == (413, 0)
    status, _ = _asgi(app, {**AUTH, "Content-Length": "many"}, iter([b"{}"]))
    assert status == 400


# -- shape --------------------------------------------------------------------------------
def test_malformed_json_is_refused(client: TestClient) -> None:
    for body in (b"{not json", b"\xff\xfe", b'{"a": NaN}'):
        resp = client.post(PATH, content=body, headers=AUTH)
        assert resp.status_code == 400
        assert resp.json() == {"error": "body: not valid JSON"}


def _without(obj: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != key}


def _shapes() -> list[tuple[Any, str]]:
    good = [event("user.lifecycle.create", [user_target(f"00u{i}")]) for i in range(5)]

    def with_event(i: int, replacement: Any) -> dict[str, Any]:
        events = list(good)
        events[i] = replacement
        return hook(events)

    return [
        ([hook(good)], "body: must be a JSON object"),
        (_without(hook(good), "eventType"), "body: missing eventType"),
        ({**hook(good), "eventType": EMAIL}, "eventType: must be com.okta.event_hook"),
        (_without(hook(good), "eventId"), "body: missing eventId"),
        ({**hook(good), "eventId": 42}, "eventId: must be a non-empty string"),
        (_without(hook(good), "data"), "body: missing data"),
        ({**hook(good), "data": [EMAIL]}, "data: must be an object"),
        ({**hook(good), "data": {}}, "data: missing events"),
        ({**hook(good), "data": {"events": {"0": EMAIL}}}, "data.events: must be a list"),
        (with_event(2, EMAIL), "data.events[2]: must be an object"),
        (with_event(3, _without(good[3], "uuid")), "data.events[3]: missing uuid"),
        (with_event(1, _without(good[1], "eventType")), "data.events[1]: missing eventType"),
        (with_event(4, _without(good[4], "published")), "data.events[4]: missing published"),
        (with_event(0, _without(good[0], "target")), "data.events[0]: missing target"),
        (
            with_event(3, {**good[3], "uuid": ""}),
            "data.events[3].uuid: must be a non-empty string",
        ),
        (
            with_event(3, {**good[3], "target": user_target("00u1")}),
            "data.events[3].target: must be a list",
        ),
        (
            with_event(1, {**good[1], "target": [user_target("00u1"), EMAIL]}),
            "data.events[1].target[1]: must be an object",
        ),
    ]


@pytest.mark.parametrize(("body", "reason"), _shapes())
def test_a_wrong_shape_is_refused_naming_the_field_and_no_value(
    client: TestClient, producer: FakeProducer, body: Any, reason: str
) -> None:
    resp = client.post(PATH, json=body, headers=AUTH)
    assert resp.status_code == 400
    assert resp.json() == {"error": reason}
    assert EMAIL not in resp.text
    assert producer.produced == []


def test_parse_hook_and_route() -> None:
    user_event = event("user.account.update_profile", [user_target("00uA")])
    membership = event("group.user_membership.add", [user_target("00uB"), group_target("00gC")])
    group_only = event("group.lifecycle.create", [group_target("00gD")])
    app_member = event(
        "application.user_membership.add",
        [{"id": "0oa1", "type": "AppInstance"}, user_target("00uE")],
    )
    batch = parse_hook(json.dumps(hook([user_event, membership], "hook-1")).encode())
    assert batch.event_id == "hook-1" and len(batch.events) == 2
    assert route(user_event).key == "00uA"
    assert route(membership).key == "00gC"
    assert route(group_only).key == "00gD"
    assert route(app_member).key == "00uE"
    no_group = route(event("group.user_membership.add", [user_target("00uB")]))
    assert (no_group.key, no_group.reason_code) == (None, "no_group_target")
    no_user = route(event("policy.lifecycle.update", [{"id": "00p1", "type": "PolicyEntity"}]))
    assert (no_user.key, no_user.reason_code) == (None, "no_user_target")
    assert route(event("user.lifecycle.create", [{"type": "User", "id": ""}])).key is None
    with pytest.raises(ShapeError, match=r"data\.events\[0\]: missing uuid"):
        parse_hook(json.dumps(hook([_without(user_event, "uuid")])).encode())


# -- routing to Kafka ---------------------------------------------------------------------
def test_each_event_is_keyed_by_its_entity_with_headers(
    client: TestClient, producer: FakeProducer
) -> None:
    events = [
        event("user.lifecycle.create", [user_target("00uA")]),
        event("group.user_membership.add", [user_target("00uB"), group_target("00gC")]),
        event("user.account.update_profile", [user_target("00uB")]),
    ]
    body = hook(events, "hook-event-1")
    resp = client.post(PATH, json=body, headers=AUTH)
    assert resp.status_code == 200
    assert resp.content == b""
    assert [m["topic"] for m in producer.stored] == [TOPIC] * 3
    assert [m["key"] for m in producer.stored] == [b"00uA", b"00gC", b"00uB"]
    for msg, sent in zip(producer.stored, events, strict=True):
        assert json.loads(msg["value"]) == slim(sent)
        assert b" " not in msg["value"]  # compact
        assert msg["headers"] == {
            "uuid": sent["uuid"].encode(),
            "eventType": sent["eventType"].encode(),
            "hookEventId": b"hook-event-1",
        }


def test_an_unroutable_event_goes_to_the_dlq_and_the_rest_go_on(
    client: TestClient, producer: FakeProducer
) -> None:
    events = [
        event("user.lifecycle.create", [user_target("00uA")]),
        event("group.user_membership.add", [user_target("00uB")]),  # no UserGroup target
        event("user.lifecycle.suspend", [user_target("00uC")]),
    ]
    resp = client.post(PATH, json=hook(events), headers=AUTH)
    assert resp.status_code == 200
    main = [m for m in producer.stored if m["topic"] == TOPIC]
    dead = [m for m in producer.stored if m["topic"] == DLQ]
    assert [m["key"] for m in main] == [b"00uA", b"00uC"]
    assert len(dead) == 1
    assert dead[0]["key"] is None
    assert dead[0]["headers"]["uuid"] == events[1]["uuid"].encode()
    assert dead[0]["headers"]["reason"] == b"group event without a UserGroup target id"
    assert json.loads(dead[0]["value"]) == slim(events[1])  # enough to see why, no names
    assert metric(client, 'scimflow_receiver_events_dead_lettered_total{reason="no_group_target"}')
    assert metric(client, "scimflow_receiver_events_produced_total") == 2


def _client_event(event_type: str, targets: list[dict[str, Any]]) -> dict[str, Any]:
    """An event with everything Okta puts in one that names people or their machines."""
    e = event(event_type, targets)
    e["actor"]["displayName"] = "Grace Hopper"
    e["client"] = {
        "ipAddress": "203.0.113.7",
        "userAgent": {"rawUserAgent": "Mozilla/5.0", "os": "Mac OS X", "browser": "SAFARI"},
        "geographicalContext": {"city": "Arlington", "country": "United States"},
    }
    e["request"] = {"ipChain": [{"ip": "203.0.113.7"}]}
    e["displayMessage"] = "Update user profile for Okta"
    e["debugContext"] = {"debugData": {"requestUri": "/api/v1/users/00uA"}}
    return e


PERSONAL = (
    b"actor",
    b"displayName",
    b"alternateId",
    b"login",
    b"ipAddress",
    b"203.0.113.7",
    b"client",
    b"Ada Lovelace",
    b"Grace Hopper",
    EMAIL.encode(),
    b"admin@example.com",
)


def test_a_record_holds_only_ids_types_and_time_by_default(
    client: TestClient, producer: FakeProducer
) -> None:
    events = [
        _client_event("user.account.update_profile", [user_target("00uA")]),
        _client_event("group.user_membership.add", [user_target("00uB"), group_target("00gC")]),
        _client_event("group.user_membership.add", [user_target("00uD")]),  # dead letter
    ]
    events[0]["target"][0]["login"] = EMAIL
    assert client.post(PATH, json=hook(events), headers=AUTH).status_code == 200
    assert [m["topic"] for m in producer.stored] == [TOPIC, TOPIC, DLQ]
    for msg, sent in zip(producer.stored, events, strict=True):
        value = msg["value"]
        for word in PERSONAL:
            assert word not in value, (word, value)
        assert json.loads(value) == {
            "uuid": sent["uuid"],
            "eventType": sent["eventType"],
            "published": sent["published"],
            "target": [{"id": t["id"], "type": t["type"]} for t in sent["target"]],
        }
        # the headers carry ids and types too, never a name
        assert all(word not in b"".join(msg["headers"].values()) for word in PERSONAL)
    # the stream routes the slim record as it would the whole event
    for msg, sent in zip(producer.stored[:2], events, strict=False):
        assert stream_route(decode(msg["value"])) == stream_route(sent)
    assert producer.stored[2]["headers"]["reason"] == b"group event without a UserGroup target id"


def test_whole_events_keeps_the_whole_logevent(producer: FakeProducer) -> None:
    events = [_client_event("user.account.update_profile", [user_target("00uA")])]
    with TestClient(make_app(producer, whole_events=True)) as c:
        assert c.post(PATH, json=hook(events), headers=AUTH).status_code == 200
    (msg,) = producer.stored
    assert json.loads(msg["value"]) == events[0]
    for word in (b"actor", b"Ada Lovelace", EMAIL.encode(), b"203.0.113.7"):
        assert word in msg["value"]


def test_an_empty_batch_is_accepted(client: TestClient, producer: FakeProducer) -> None:
    assert client.post(PATH, json=hook([]), headers=AUTH).status_code == 200
    assert producer.produced == []


# -- nothing acknowledged that was not stored ---------------------------------------------
def test_a_delivery_failure_answers_503(client: TestClient, producer: FakeProducer) -> None:
    events = [event("user.lifecycle.create", [user_target(f"00u{i}")]) for i in range(3)]
    producer.fail_uuids = {events[1]["uuid"]}
    resp = client.post(PATH, json=hook(events), headers=AUTH)
    assert resp.status_code == 503
    assert resp.headers["retry-after"] == "5"
    assert "not stored" in resp.json()["error"]
    assert metric(client, 'scimflow_receiver_batches_failed_total{reason="delivery_error"}') == 1
    assert metric(client, 'scimflow_receiver_delivery_errors_total{error="_MSG_TIMED_OUT"}') == 1
    assert metric(client, 'scimflow_receiver_requests_total{method="POST",status="503"}') == 1
    assert metric(client, 'scimflow_receiver_requests_total{method="POST",status="200"}') == 0
    assert metric(client, "scimflow_receiver_produce_seconds_count") == 0


def test_every_record_failing_answers_503() -> None:
    producer = FakeProducer("fail")
    with TestClient(make_app(producer)) as c:
        events = [event("user.lifecycle.create", [user_target("00u1")])]
        assert c.post(PATH, json=hook(events), headers=AUTH).status_code == 503
        assert producer.stored == []
        assert metric(c, "scimflow_receiver_events_produced_total") == 0


def test_no_acknowledgement_within_ack_timeout_answers_503() -> None:
    producer = FakeProducer("silent")  # Kafka down: no delivery report comes
    with TestClient(make_app(producer, ack_timeout=0.3)) as c:
        t0 = time.monotonic()
        resp = c.post(
            PATH, json=hook([event("user.lifecycle.create", [user_target("00u1")])]), headers=AUTH
        )
        elapsed = time.monotonic() - t0
        assert resp.status_code == 503
        assert resp.headers["retry-after"] == "5"
        assert 0.25 <= elapsed < 1.5
        assert metric(c, 'scimflow_receiver_batches_failed_total{reason="timeout"}') == 1
        assert metric(c, "scimflow_receiver_events_produced_total") == 0
        # the loop was never blocked meanwhile: another request is served at once
        assert c.get("/healthz").status_code == 200


def test_a_full_producer_queue_answers_503() -> None:
    with TestClient(make_app(FakeProducer("buffer"))) as c:
        resp = c.post(
            PATH, json=hook([event("user.lifecycle.create", [user_target("00u1")])]), headers=AUTH
        )
        assert resp.status_code == 503
        assert metric(c, 'scimflow_receiver_batches_failed_total{reason="queue_full"}') == 1


def test_the_event_loop_serves_others_while_a_batch_waits_for_kafka() -> None:
    producer = FakeProducer("silent")
    with TestClient(make_app(producer, ack_timeout=1.0)) as c:
        done: list[float] = []

        def post() -> None:
            c.post(
                PATH,
                json=hook([event("user.lifecycle.create", [user_target("00u")])]),
                headers=AUTH,
            )
            done.append(time.monotonic())

        t = threading.Thread(target=post)
        t.start()
        # the batch is with the producer, waiting for an acknowledgement that never comes
        assert wait_until(lambda: bool(producer.produced), timeout=5, interval=0.01)
        t0 = time.monotonic()
        assert c.get("/healthz").status_code == 200
        assert time.monotonic() - t0 < 0.5
        assert not done  # the POST still waits for Kafka
        t.join(5)
        assert done


# -- health, readiness, metrics -----------------------------------------------------------
def test_health_readiness_and_metrics(client: TestClient, producer: FakeProducer) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    producer.down = True
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["ready"] is False

    before = metric(client, "scimflow_receiver_events_produced_total")
    events = [event("user.lifecycle.create", [user_target(f"00u{i}")]) for i in range(4)]
    assert client.post(PATH, json=hook(events), headers=AUTH).status_code == 200
    assert client.post(PATH, json=hook(events)).status_code == 401
    resp = client.get("/metrics")
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert metric(client, "scimflow_receiver_events_produced_total") == before + 4
    assert metric(client, "scimflow_receiver_events_received_total") == 4
    assert metric(client, 'scimflow_receiver_requests_total{method="POST",status="200"}') == 1
    assert metric(client, 'scimflow_receiver_requests_total{method="POST",status="401"}') == 1
    assert metric(client, "scimflow_receiver_produce_seconds_count") == 1
    assert metric(client, 'scimflow_receiver_produce_seconds_bucket{le="+Inf"}') == 1
    assert "# TYPE scimflow_receiver_produce_seconds histogram" in resp.text


def test_a_fatal_producer_error_makes_the_receiver_report_itself_dead(
    producer: FakeProducer,
) -> None:
    app = make_app(producer)
    with TestClient(app) as c:
        watch = app.state.receiver.errors
        watch(FakeClientError("_TRANSPORT", fatal=False))
        assert c.get("/healthz").status_code == 200
        watch(FakeClientError("_FENCED", fatal=True))
        assert c.get("/healthz").status_code == 503
        ready = c.get("/readyz")
        assert ready.status_code == 503 and "_FENCED" in ready.json()["detail"]


def test_two_apps_keep_their_own_counts() -> None:
    with TestClient(make_app(FakeProducer())) as a, TestClient(make_app(FakeProducer())) as b:
        events = [event("user.lifecycle.create", [user_target("00u1")])]
        assert a.post(PATH, json=hook(events), headers=AUTH).status_code == 200
        assert metric(a, "scimflow_receiver_events_produced_total") == 1
        assert metric(b, "scimflow_receiver_events_produced_total") == 0
    # nothing lands in prometheus_client's process-wide registry
    assert REGISTRY.get_sample_value("scimflow_receiver_events_produced_total") is None


def test_logs_carry_no_secret_and_no_personal_data(
    client: TestClient, producer: FakeProducer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ok = [event("user.lifecycle.create", [user_target("00u1")])]
    dead = [event("group.user_membership.add", [user_target("00u2")])]
    client.post(PATH, json=hook(ok + dead), headers=AUTH)
    client.post(PATH, json=hook(ok), headers={"Authorization": "guess-" + SECRET[:10]})
    bad = copy.deepcopy(hook(ok))
    del bad["data"]["events"][0]["uuid"]
    client.post(PATH, json=bad, headers=AUTH)
    producer.fail_uuids = {ok[0]["uuid"]}
    client.post(PATH, json=hook(ok), headers=AUTH)
    assert caplog.records
    text = caplog.text
    assert SECRET not in text and SECRET[:10] not in text
    assert EMAIL not in text and "Lovelace" not in text


# -- configuration ------------------------------------------------------------------------
def test_a_reserved_path_or_an_unset_secret_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigError, match="receiver's own paths"):
        make_app(FakeProducer(), path="/metrics")
    monkeypatch.delenv(SECRET_ENV)
    with pytest.raises(ConfigError, match=f"environment variable {SECRET_ENV}"):
        make_app(FakeProducer())


MINIMAL = """\
okta: {org_url: "https://example.okta.com", token: {env: OKTA_API_TOKEN}}
state: {url: "sqlite:///state.db"}
targets:
  - name: a
    base_url: https://a.example.com/scim/v2
    auth: {type: bearer, token: {env: A_TOKEN}}
"""


@pytest.mark.parametrize(
    ("extra", "missing"),
    [
        ("", "no receiver: and no kafka: section"),
        ("kafka: {bootstrap_servers: '127.0.0.1:9092'}\n", "no receiver: section"),
        (f"receiver: {{secret: {{env: {SECRET_ENV}}}}}\n", "no kafka: section"),
    ],
)
def test_the_receiver_command_needs_both_sections(tmp_path: Path, extra: str, missing: str) -> None:
    from scimflow.cli import app
    from typer.testing import CliRunner

    config = tmp_path / "scimflow.yaml"
    config.write_text(MINIMAL + extra, encoding="utf-8")
    result = CliRunner().invoke(app, ["receiver", "--config", str(config)])
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())  # rich may wrap the line
    assert f"{config}: {missing}" in output


def test_the_receiver_command_names_an_unset_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scimflow.cli import app
    from typer.testing import CliRunner

    monkeypatch.delenv(SECRET_ENV)
    config = tmp_path / "scimflow.yaml"
    config.write_text(
        MINIMAL
        + "kafka: {bootstrap_servers: '127.0.0.1:9092'}\n"
        + f"receiver: {{secret: {{env: {SECRET_ENV}}}}}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["receiver", "--config", str(config)])
    assert result.exit_code == 2
    assert f"environment variable {SECRET_ENV}" in " ".join(result.output.split())


def test_the_stack_configuration_has_kafka_and_receiver_sections(tmp_path: Path) -> None:
    from scimflow.scim.config import load_config
    from scimflow.services import Receiver, ServicesSettings, Stack
    from scimflow.services.okta import stack_environment, write_stack_config

    settings = ServicesSettings(
        home=tmp_path / "home",
        cache=tmp_path / "cache",
        dags_folder=tmp_path / "dags",
        kafka_port=19092,
        receiver_port=18089,
    )
    config = load_config(write_stack_config(settings))
    assert config.kafka is not None and config.receiver is not None
    assert config.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert config.kafka.partitions == settings.kafka_partitions
    assert config.receiver.port == 18089
    assert config.receiver.secret == SecretRef(env="OKTA_HOOK_SECRET")
    env = stack_environment(settings)
    receiver = Receiver(settings)
    assert env["OKTA_HOOK_SECRET"] == receiver.secret()
    assert receiver.secret() not in (settings.home / "scimflow.yaml").read_text()
    assert receiver.address == f"http://127.0.0.1:18089{config.receiver.path}"
    names = [s.name for s in Stack(settings).select(None)]
    assert names.index("receiver") > names.index("kafka")
    assert names.index("receiver") > names.index("okta")
    argv, child_env, _ = receiver.command()
    assert argv[-4:] == ["--config", str(receiver.config_file), "--port", "18089"]
    assert receiver.marker() in " ".join(argv)
    assert child_env == {"OKTA_HOOK_SECRET": receiver.secret()}
