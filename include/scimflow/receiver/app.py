"""The Okta Event Hook receiver: an ASGI app that writes each hook event to Kafka.

Endpoints (``path`` is the configured hook path, ``/okta/events`` by default):

- ``GET path`` with ``X-Okta-Verification-Challenge``: Okta's one-time verification,
  answered ``{"verification": <challenge>}`` when the auth header is right.
- ``POST path``: one batch of events. The auth header is compared with the secret in
  constant time (401); the body is read incrementally up to ``max_body_bytes`` (413, and
  at once when ``Content-Length`` says so); its shape is checked (400 naming the field,
  never a value). Each event becomes one record of ``kafka.topic`` keyed by the entity
  it concerns, or of ``kafka.dlq_topic`` with a ``reason`` header when it names none.
  The record's value is the event slimmed to its uuid, type, time and its targets' ids
  and types (:func:`scimflow.stream.events.slim`), dead letters too, unless
  ``kafka.whole_events`` keeps the whole LogEvent.
  The answer is 200 only once Kafka acknowledged every record (acks=all, idempotent
  producer); 503 with ``Retry-After`` when a record failed or the acknowledgements did
  not all arrive within ``ack_timeout`` seconds of the request, so that Okta retries.
- ``GET /healthz`` (the process answers), ``GET /readyz`` (Kafka's metadata answers
  within about a second), ``GET /metrics`` (Prometheus text format).

The producer is synchronous: records are produced from a worker thread, and one thread
per app polls the producer, which runs the delivery callbacks; those wake the waiting
request through the event loop. Nothing here blocks the loop.

Logs carry ids, counts and reasons only: never the secret, and never an event's
content, which names people.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from scimflow.errors import ConfigError, ServiceError
from scimflow.receiver.envelope import HookBatch, ShapeError, compact_json, parse_hook, route
from scimflow.receiver.metrics import CONTENT_TYPE, Metrics
from scimflow.scim.config import KafkaConfig, ReceiverConfig, ScimflowConfig
from scimflow.stream.events import slim

__all__ = [
    "VERIFICATION_HEADER",
    "EventProducer",
    "HookReceiver",
    "KafkaErrorWatch",
    "create_app",
    "producer_config",
    "receiver_sections",
]

log = logging.getLogger("scimflow.receiver")

VERIFICATION_HEADER = "X-Okta-Verification-Challenge"
RESERVED_PATHS = ("/healthz", "/readyz", "/metrics")
RETRY_AFTER_SECONDS = 5
MAX_CHALLENGE_CHARS = 1024

DeliveryCallback = Callable[[Any, Any], None]
Headers = list[tuple[str, str | bytes | None]]


class EventProducer(Protocol):
    """What the receiver needs of a producer: ``confluent_kafka.Producer``, or a fake."""

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        headers: Headers | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> None: ...

    def poll(self, timeout: float = -1) -> int: ...

    def flush(self, timeout: float = -1) -> int: ...

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any: ...


def producer_config(kafka: KafkaConfig) -> dict[str, Any]:
    """librdkafka settings of the receiver's producer: durable, and quick to reconnect."""
    return {
        "bootstrap.servers": kafka.bootstrap_servers,
        "client.id": "scimflow-receiver",
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        # a record not stored within this is reported failed (its request got 503 long
        # before: Okta's timeout is 3 s); a later retry by Okta produces it again
        "message.timeout.ms": 15_000,
        "request.timeout.ms": 5_000,
        # reconnect within a second once the broker is back (the default backs off to 10 s)
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 1_000,
        "logger": logging.getLogger("scimflow.receiver.kafka"),
    }


def receiver_sections(config: ScimflowConfig, source: str) -> tuple[ReceiverConfig, KafkaConfig]:
    """The ``receiver`` and ``kafka`` sections of a loaded file; ConfigError if one lacks."""
    missing = [name for name in ("receiver", "kafka") if getattr(config, name) is None]
    if missing:
        raise ConfigError(
            source,
            f"no {' and no '.join(f'{m}:' for m in missing)} section: `scimflow receiver` "
            "needs both (config/scimflow.example.yaml documents them)",
        )
    assert config.receiver is not None and config.kafka is not None
    return config.receiver, config.kafka


def _error_name(error: Any) -> str:
    """A short name for a Kafka error or exception (never its free text)."""
    inner = error.args[0] if isinstance(error, Exception) and error.args else error
    name = getattr(inner, "name", None)
    if callable(name):
        with contextlib.suppress(Exception):
            return str(name())
    return type(error).__name__


def _error(status: int, reason: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": reason}, status_code=status, headers=headers)


class KafkaErrorWatch:
    """The producer's ``error_cb``: logs client-level errors, remembers a fatal one.

    An idempotent producer can fail fatally (the broker lost its producer state, say):
    from then on nothing can be produced, so the receiver reports itself dead
    (``/healthz`` 503) for its supervisor to restart it.
    """

    def __init__(self) -> None:
        self.fatal: str | None = None

    def __call__(self, error: Any) -> None:
        name = _error_name(error)
        fatal = getattr(error, "fatal", None)
        if callable(fatal) and fatal():
            self.fatal = name
            log.error("kafka producer failed for good (%s): restart the receiver", name)
        else:
            log.warning("kafka: %s", name)


class _TooLarge(Exception):
    pass


class _BadRequest(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class _Record:
    topic: str
    key: bytes | None
    value: bytes
    headers: Headers
    uuid: str
    event_type: str
    dlq_reason: str | None  # a reason code when the record goes to the dead-letter topic


class _Pending:
    """The delivery reports of one batch; resolves its future once all came, or one failed."""

    def __init__(self, loop: asyncio.AbstractEventLoop, total: int) -> None:
        self._loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self._lock = threading.Lock()
        self._waiting = total
        self._errors: list[str] = []

    def report(self, error: str | None) -> None:
        with self._lock:
            self._waiting -= 1
            if error is not None:
                self._errors.append(error)
            finished = self._waiting == 0 or error is not None
        if finished:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                self._loop.call_soon_threadsafe(self._resolve)

    def _resolve(self) -> None:
        if not self.future.done():
            self.future.set_result(None)

    def errors(self) -> list[str]:
        with self._lock:
            return list(self._errors)


class HookReceiver:
    """The receiver's state and request handling (the app is :func:`create_app`)."""

    def __init__(
        self,
        receiver: ReceiverConfig,
        kafka: KafkaConfig,
        producer: EventProducer,
        secret: str,
        *,
        errors: KafkaErrorWatch | None = None,
    ) -> None:
        self.receiver = receiver
        self.kafka = kafka
        self.producer = producer
        self.errors = errors or KafkaErrorWatch()
        self.metrics = Metrics()
        self._secret = secret.encode("utf-8")
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._poller_lock = threading.Lock()

    # -- the producer's polling thread --------------------------------------------------
    def start(self) -> None:
        """Start polling the producer (idempotent): delivery reports need it."""
        with self._poller_lock:
            if self._poller is not None and self._poller.is_alive():
                return
            self._stop.clear()
            self._poller = threading.Thread(
                target=self._poll_loop, name="receiver-kafka-poll", daemon=True
            )
            self._poller.start()

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.producer.poll(0.1)
            except Exception as exc:  # a callback raised: keep serving the others
                log.error("kafka poll failed: %s", type(exc).__name__)
                time.sleep(0.1)

    def close(self, flush_timeout: float = 5.0) -> None:
        """Stop polling and give in-flight records ``flush_timeout`` seconds to land."""
        with self._poller_lock:
            self._stop.set()
            if self._poller is not None:
                self._poller.join(timeout=5)
                self._poller = None
        left = self.producer.flush(flush_timeout)
        if left:
            log.warning("%d record(s) still unacknowledged at shutdown", left)

    # -- endpoints ----------------------------------------------------------------------
    async def hook(self, request: Request) -> Response:
        started = time.monotonic()
        try:
            response = await self._hook(request, started)
        except Exception:
            self.metrics.request(request.method, 500)
            raise
        self.metrics.request(request.method, response.status_code)
        return response

    async def healthz(self, _request: Request) -> Response:
        if self.errors.fatal is not None:
            return JSONResponse(
                {"status": "failed", "detail": f"kafka producer failed ({self.errors.fatal})"},
                status_code=503,
            )
        return JSONResponse({"status": "ok"})

    async def readyz(self, _request: Request) -> Response:
        if self.errors.fatal is not None:
            detail = f"kafka producer failed ({self.errors.fatal})"
            return JSONResponse({"ready": False, "detail": detail}, status_code=503)
        ready, detail = False, "kafka metadata did not answer within 1 s"
        with anyio.move_on_after(1.5):
            ready, detail = await anyio.to_thread.run_sync(
                self._kafka_ready, abandon_on_cancel=True
            )
        return JSONResponse({"ready": ready, "detail": detail}, status_code=200 if ready else 503)

    async def metrics_text(self, _request: Request) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)

    # -- the hook -----------------------------------------------------------------------
    def _authorised(self, request: Request) -> bool:
        supplied = request.headers.get(self.receiver.auth_header)
        if supplied is None:
            return False
        # headers arrive as latin-1 text: back to the bytes that were sent
        return hmac.compare_digest(supplied.encode("latin-1", "replace"), self._secret)

    async def _hook(self, request: Request, started: float) -> Response:
        if not self._authorised(request):
            log.warning("hook %s refused: wrong or missing auth header", request.method)
            return _error(401, "unauthorised")
        if request.method != "POST":  # GET, and the HEAD that Starlette adds to it
            return self._verify(request)
        try:
            body = await self._read_body(request)
        except _TooLarge:
            log.warning("hook batch refused: body over %d bytes", self.receiver.max_body_bytes)
            return _error(413, f"body over {self.receiver.max_body_bytes} bytes")
        except _BadRequest as exc:
            log.warning("hook batch refused: %s", exc.reason)
            return _error(400, exc.reason)
        except ClientDisconnect:
            log.warning("hook batch abandoned: the client disconnected")
            return _error(400, "client disconnected")
        try:
            batch = parse_hook(body)
        except ShapeError as exc:
            log.warning("hook batch refused: %s", exc.reason)
            return _error(400, exc.reason)
        self.metrics.received(len(batch.events))
        if not batch.events:
            return Response(status_code=200)
        return await self._store(batch, started)

    def _verify(self, request: Request) -> Response:
        challenge = request.headers.get(VERIFICATION_HEADER)
        if not challenge:
            return _error(400, f"missing {VERIFICATION_HEADER} header")
        if len(challenge) > MAX_CHALLENGE_CHARS:
            return _error(400, f"{VERIFICATION_HEADER} over {MAX_CHALLENGE_CHARS} characters")
        log.info("hook verification answered")
        return JSONResponse({"verification": challenge})

    async def _read_body(self, request: Request) -> bytes:
        limit = self.receiver.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            declared = declared.strip()
            if not (declared.isascii() and declared.isdigit()):
                raise _BadRequest("Content-Length: not a number")
            if int(declared) > limit:
                raise _TooLarge
        body = bytearray()
        async with contextlib.aclosing(request.stream()) as chunks:
            async for chunk in chunks:
                body += chunk
                if len(body) > limit:
                    raise _TooLarge
        return bytes(body)

    def _record(self, event_id: str, event: dict[str, Any]) -> _Record:
        routed = route(event)
        headers: Headers = [
            ("uuid", event["uuid"].encode()),
            ("eventType", event["eventType"].encode()),
            ("hookEventId", event_id.encode()),
        ]
        # what the stream needs (ids, types, time), unless whole events are asked for:
        # the rest names people (actor, logins, display names, client IP)
        value = compact_json(event if self.kafka.whole_events else slim(event))
        if routed.key is None:
            assert routed.reason is not None
            headers.append(("reason", routed.reason.encode()))
            return _Record(
                topic=self.kafka.dlq_topic,
                key=None,
                value=value,
                headers=headers,
                uuid=event["uuid"],
                event_type=event["eventType"],
                dlq_reason=routed.reason_code,
            )
        return _Record(
            topic=self.kafka.topic,
            key=routed.key.encode(),
            value=value,
            headers=headers,
            uuid=event["uuid"],
            event_type=event["eventType"],
            dlq_reason=None,
        )

    def _on_delivery(self, pending: _Pending, record: _Record) -> DeliveryCallback:
        def delivered(error: Any, _message: Any) -> None:
            if error is None:
                if record.dlq_reason is None:
                    self.metrics.produced()
                else:
                    self.metrics.dead_lettered(record.dlq_reason)
                pending.report(None)
                return
            name = _error_name(error)
            self.metrics.delivery_error(name)
            log.warning("kafka did not store event %s: %s", record.uuid, name)
            pending.report(name)

        return delivered

    def _produce_all(self, records: list[_Record], pending: _Pending) -> None:
        for record in records:
            self.producer.produce(
                record.topic,
                value=record.value,
                key=record.key,
                headers=record.headers,
                on_delivery=self._on_delivery(pending, record),
            )
        self.producer.poll(0)

    def _unavailable(self, event_id: str, reason: str, detail: str) -> Response:
        self.metrics.batch_failed(reason)
        log.warning("hook batch %s not stored (%s): answered 503", event_id, detail)
        return _error(
            503,
            f"not stored: {detail}; retry later",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    async def _store(self, batch: HookBatch, started: float) -> Response:
        records = [self._record(batch.event_id, event) for event in batch.events]
        dead = [r for r in records if r.dlq_reason is not None]
        for record in dead:
            log.warning(
                "event %s (%s) goes to %s: %s",
                record.uuid,
                record.event_type,
                self.kafka.dlq_topic,
                record.dlq_reason,
            )
        self.start()
        pending = _Pending(asyncio.get_running_loop(), len(records))
        try:
            await anyio.to_thread.run_sync(self._produce_all, records, pending)
        except BufferError:
            return self._unavailable(batch.event_id, "queue_full", "the producer queue is full")
        except Exception as exc:  # KafkaException and the like: the batch is not stored
            name = _error_name(exc)
            return self._unavailable(batch.event_id, "produce_error", f"produce failed ({name})")
        remaining = self.receiver.ack_timeout - (time.monotonic() - started)
        try:
            await asyncio.wait_for(pending.future, timeout=max(remaining, 0.0))
        except TimeoutError:
            return self._unavailable(
                batch.event_id,
                "timeout",
                f"kafka did not acknowledge within {self.receiver.ack_timeout:g} s",
            )
        errors = pending.errors()
        if errors:
            return self._unavailable(
                batch.event_id, "delivery_error", f"kafka refused a record ({errors[0]})"
            )
        elapsed = time.monotonic() - started
        self.metrics.observe_latency(elapsed)
        log.info(
            "hook batch %s stored: %d event(s), %d dead-lettered, in %.3f s",
            batch.event_id,
            len(records),
            len(dead),
            elapsed,
        )
        return Response(status_code=200)

    # -- readiness ----------------------------------------------------------------------
    def _kafka_ready(self) -> tuple[bool, str]:
        topic = self.kafka.topic
        try:
            meta = self.producer.list_topics(topic, timeout=1.0)
        except Exception as exc:
            return False, f"kafka metadata request failed ({_error_name(exc)})"
        if not getattr(meta, "brokers", None):
            return False, "kafka metadata names no broker"
        found = meta.topics.get(topic)
        if found is None or found.error is not None:
            return False, f"topic {topic} is not available"
        return True, "kafka answers"


def create_app(
    receiver: ReceiverConfig,
    kafka: KafkaConfig,
    *,
    producer: EventProducer | None = None,
    create_topics: bool = True,
) -> Starlette:
    """The receiver app. The secret is resolved now (ConfigError if it cannot be).

    ``producer`` defaults to a ``confluent_kafka.Producer`` with :func:`producer_config`;
    tests pass a fake. With ``create_topics`` the app's start-up creates ``kafka.topic``
    (``kafka.partitions`` partitions) and ``kafka.dlq_topic`` (1) if they are missing,
    sets both topics' ``retention.ms`` from ``kafka.retention_hours`` (the existing ones'
    too), and fails if Kafka cannot be reached. ``app.state.receiver`` is the
    :class:`HookReceiver` (its ``metrics`` for tests).
    """
    if receiver.path in RESERVED_PATHS:
        raise ConfigError("receiver.path", f"{receiver.path} is one of the receiver's own paths")
    secret = receiver.secret.resolve()
    errors = KafkaErrorWatch()
    if producer is None:
        from confluent_kafka import Producer

        producer = Producer({**producer_config(kafka), "error_cb": errors})
    core = HookReceiver(receiver, kafka, producer, secret, errors=errors)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if create_topics:
            await anyio.to_thread.run_sync(_create_topics, kafka)
        core.start()
        log.info(
            "receiver ready: hook %s -> %s (dead letters: %s)",
            receiver.path,
            kafka.topic,
            kafka.dlq_topic,
        )
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(core.close)

    app = Starlette(
        routes=[
            Route(receiver.path, core.hook, methods=["GET", "POST"]),
            Route("/healthz", core.healthz, methods=["GET"]),
            Route("/readyz", core.readyz, methods=["GET"]),
            Route("/metrics", core.metrics_text, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.receiver = core
    return app


def _create_topics(kafka: KafkaConfig) -> None:
    from scimflow.services.kafka import ensure_topics

    topics = {kafka.topic: kafka.partitions, kafka.dlq_topic: 1}
    try:
        created = ensure_topics(
            kafka.bootstrap_servers,
            topics,
            config=kafka.topic_config,
            update_existing=True,
            timeout=15.0,
        )
    except ServiceError:
        raise
    except Exception as exc:  # KafkaException: the broker did not answer
        raise ServiceError(
            "receiver",
            f"cannot create the topics at {kafka.bootstrap_servers} ({_error_name(exc)})",
        ) from None
    if created:
        log.info("created topic(s) %s", ", ".join(created))
    log.info("topics %s keep records %d h", ", ".join(topics), kafka.retention_hours)
