"""The receiver's metrics, in the Prometheus text exposition format (version 0.0.4).

``prometheus_client`` is not in the project's lock, and the receiver needs only a few
counters and one histogram, so they are kept here, per app instance (two apps in one
process, as in the tests, never share a count). Thread-safe: Kafka's delivery callbacks
update them from the producer's polling thread.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable

__all__ = ["CONTENT_TYPE", "LATENCY_BUCKETS", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PREFIX = "scimflow_receiver"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{name}="{_escape(value)}"' for name, value in pairs)
    return f"{{{inner}}}" if inner else ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class Metrics:
    """Counters of one receiver: requests, events produced and dead-lettered, latency."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, str]] = Counter()  # (method, status)
        self.events_received = 0
        self.events_produced = 0
        self.events_dead_lettered: Counter[str] = Counter()  # reason
        self.delivery_errors: Counter[str] = Counter()  # Kafka error name
        self.batches_failed: Counter[str] = Counter()  # reason
        self._latency_buckets = [0] * len(LATENCY_BUCKETS)
        self._latency_count = 0
        self._latency_sum = 0.0

    # -- updates ------------------------------------------------------------------------
    def request(self, method: str, status: int) -> None:
        with self._lock:
            self.requests[(method, str(status))] += 1

    def received(self, n: int) -> None:
        with self._lock:
            self.events_received += n

    def produced(self) -> None:
        with self._lock:
            self.events_produced += 1

    def dead_lettered(self, reason: str) -> None:
        with self._lock:
            self.events_dead_lettered[reason] += 1

    def delivery_error(self, error: str) -> None:
        with self._lock:
            self.delivery_errors[error] += 1

    def batch_failed(self, reason: str) -> None:
        with self._lock:
            self.batches_failed[reason] += 1

    def observe_latency(self, seconds: float) -> None:
        with self._lock:
            self._latency_count += 1
            self._latency_sum += seconds
            for i, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    self._latency_buckets[i] += 1

    @property
    def latency_count(self) -> int:
        with self._lock:
            return self._latency_count

    # -- exposition ---------------------------------------------------------------------
    def render(self) -> str:
        """Every metric in the text format."""
        out: list[str] = []

        def family(name: str, kind: str, help_text: str) -> str:
            full = f"{PREFIX}_{name}"
            out.append(f"# HELP {full} {help_text}")
            out.append(f"# TYPE {full} {kind}")
            return full

        with self._lock:
            name = family(
                "requests_total", "counter", "Requests to the Event Hook path by method and status."
            )
            for (method, status), n in sorted(self.requests.items()):
                out.append(f"{name}{_labels([('method', method), ('status', status)])} {n}")
            name = family(
                "events_received_total", "counter", "Events in Event Hook batches of a valid shape."
            )
            out.append(f"{name} {self.events_received}")
            name = family(
                "events_produced_total",
                "counter",
                "Events Kafka acknowledged on the events topic.",
            )
            out.append(f"{name} {self.events_produced}")
            name = family(
                "events_dead_lettered_total",
                "counter",
                "Events Kafka acknowledged on the dead-letter topic, by reason.",
            )
            for reason, n in sorted(self.events_dead_lettered.items()):
                out.append(f"{name}{_labels([('reason', reason)])} {n}")
            name = family(
                "delivery_errors_total", "counter", "Records Kafka failed to store, by error."
            )
            for error, n in sorted(self.delivery_errors.items()):
                out.append(f"{name}{_labels([('error', error)])} {n}")
            name = family(
                "batches_failed_total",
                "counter",
                "Event Hook batches answered 503 (not stored), by reason.",
            )
            for reason, n in sorted(self.batches_failed.items()):
                out.append(f"{name}{_labels([('reason', reason)])} {n}")
            name = family(
                "produce_seconds",
                "histogram",
                "Time from a batch's arrival until Kafka acknowledged all its records.",
            )
            for bound, n in zip(LATENCY_BUCKETS, self._latency_buckets, strict=True):
                out.append(f"{name}_bucket{_labels([('le', _number(bound))])} {n}")
            out.append(f'{name}_bucket{{le="+Inf"}} {self._latency_count}')
            out.append(f"{name}_sum {_number(self._latency_sum)}")
            out.append(f"{name}_count {self._latency_count}")
        return "\n".join(out) + "\n"
