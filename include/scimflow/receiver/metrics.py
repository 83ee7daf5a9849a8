"""The receiver's metrics, on ``prometheus_client``, in a registry of the app's own.

Each :class:`Metrics` holds its own :class:`~prometheus_client.CollectorRegistry`, not
the process-wide default one: two apps in one process (as in the tests) never share a
count, and building a second app never fails on names already registered. The
collectors are thread-safe: Kafka's delivery callbacks update them from the producer's
polling thread.

Served as the text exposition format, version 0.0.4. Besides the series below each
counter and the histogram carry ``prometheus_client``'s ``_created`` timestamp.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

__all__ = ["CONTENT_TYPE", "LATENCY_BUCKETS", "PREFIX", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PREFIX = "scimflow_receiver"


class Metrics:
    """Counters of one receiver: requests, events produced and dead-lettered, latency."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self._requests = Counter(
            "requests",
            "Requests to the Event Hook path by method and status.",
            ["method", "status"],
            namespace=PREFIX,
            registry=reg,
        )
        self._received = Counter(
            "events_received",
            "Events in Event Hook batches of a valid shape.",
            namespace=PREFIX,
            registry=reg,
        )
        self._produced = Counter(
            "events_produced",
            "Events Kafka acknowledged on the events topic.",
            namespace=PREFIX,
            registry=reg,
        )
        self._dead_lettered = Counter(
            "events_dead_lettered",
            "Events Kafka acknowledged on the dead-letter topic, by reason.",
            ["reason"],
            namespace=PREFIX,
            registry=reg,
        )
        self._delivery_errors = Counter(
            "delivery_errors",
            "Records Kafka failed to store, by error.",
            ["error"],
            namespace=PREFIX,
            registry=reg,
        )
        self._batches_failed = Counter(
            "batches_failed",
            "Event Hook batches answered 503 (not stored), by reason.",
            ["reason"],
            namespace=PREFIX,
            registry=reg,
        )
        self._produce_seconds = Histogram(
            "produce_seconds",
            "Time from a batch's arrival until Kafka acknowledged all its records.",
            namespace=PREFIX,
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )

    # -- updates ------------------------------------------------------------------------
    def request(self, method: str, status: int) -> None:
        self._requests.labels(method=method, status=str(status)).inc()

    def received(self, n: int) -> None:
        self._received.inc(n)

    def produced(self) -> None:
        self._produced.inc()

    def dead_lettered(self, reason: str) -> None:
        self._dead_lettered.labels(reason=reason).inc()

    def delivery_error(self, error: str) -> None:
        self._delivery_errors.labels(error=error).inc()

    def batch_failed(self, reason: str) -> None:
        self._batches_failed.labels(reason=reason).inc()

    def observe_latency(self, seconds: float) -> None:
        self._produce_seconds.observe(seconds)

    # -- exposition ---------------------------------------------------------------------
    def render(self) -> bytes:
        """Every metric of this receiver in the text format (:data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)
