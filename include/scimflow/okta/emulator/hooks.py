"""Event Hook delivery with Okta's real semantics.

Okta verifies a hook once (GET with ``X-Okta-Verification-Challenge``, expecting the
value back as ``{"verification": ...}``), then POSTs batches of System Log events with
the configured authorisation header, verbatim. Delivery is at-least-once and unordered:
a batch may come twice and events may arrive out of order. Each POST has a 3 s timeout;
a timeout or a 5xx is retried once; a 4xx is not retried. After that the batch is lost
to the hook (the System Log still has it). A switch drops deliveries, to test catch-up.
"""

from __future__ import annotations

import queue
import random
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx

from scimflow.okta.emulator.directory import okta_time
from scimflow.services.process import wait_until

__all__ = ["HookDeliverer", "HookSettings"]


@dataclass(frozen=True, kw_only=True)
class HookSettings:
    url: str
    auth_header: str = "Authorization"
    auth_value: str = ""
    batch_size: int = 50
    batch_wait: float = 0.2
    duplicate_rate: float = 0.0
    reorder: bool = False
    drop: bool = False
    timeout: float = 3.0
    verify: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError("url must be http(s)")
        if not 0.0 <= self.duplicate_rate <= 1.0:
            raise ValueError("duplicate_rate must be within 0 and 1")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")


class HookDeliverer:
    """Delivers the directory's events to one configured hook, in a background thread."""

    def __init__(self) -> None:
        self.settings: HookSettings | None = None
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self._held: list[dict[str, Any]] = []
        self._counts = {
            "events_submitted": 0,
            "events_delivered": 0,
            "duplicates_sent": 0,
            "batches_delivered": 0,
            "retries": 0,
            "batches_failed": 0,
            "events_dropped": 0,
        }
        self._lock = threading.Lock()
        self._outstanding = 0  # events queued or held and not yet attempted
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._rng = random.Random(0)

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def stats(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = dict(self._counts)
        out["pending"] = self._queue.qsize() + len(self._held)
        out["configured"] = self.settings is not None
        if self.settings is not None:
            out["settings"] = {k: v for k, v in asdict(self.settings).items() if k != "auth_value"}
        return out

    async def configure(self, settings: HookSettings) -> bool:
        """Verify the endpoint (unless told not to) and start delivering to it."""
        if settings.verify:
            ok = await anyio.to_thread.run_sync(self._verify, settings)
            if not ok:
                return False
        self.settings = settings
        self._rng = random.Random(settings.seed)
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="okta-event-hooks", daemon=True)
            self._thread.start()
        return True

    @staticmethod
    def _verify(settings: HookSettings) -> bool:
        challenge = uuid.uuid4().hex
        try:
            resp = httpx.get(
                settings.url,
                headers={
                    "X-Okta-Verification-Challenge": challenge,
                    settings.auth_header: settings.auth_value,
                },
                timeout=settings.timeout,
            )
            return resp.status_code == 200 and resp.json().get("verification") == challenge
        except (httpx.HTTPError, ValueError):
            return False

    def submit(self, event: dict[str, Any]) -> None:
        """Called by the directory for every new System Log event."""
        self._count("events_submitted")
        if self.settings is None:
            return
        if self.settings.drop:
            self._count("events_dropped")
            return
        with self._lock:
            self._outstanding += 1
        self._queue.put(event)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything submitted was attempted (delivered or failed)."""

        def idle() -> bool:
            with self._lock:
                return self._outstanding == 0

        return wait_until(idle, timeout=timeout, interval=0.05)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _next_batch(self, settings: HookSettings) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        try:
            batch.append(self._queue.get(timeout=0.2))
        except queue.Empty:
            if self._held:  # a batch held back is sent once nothing newer comes
                held, self._held = self._held, []
                return held
            return batch
        deadline = time.monotonic() + settings.batch_wait
        while len(batch) < settings.batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        with httpx.Client() as client:
            while not self._stop.is_set():
                settings = self.settings
                if settings is None:
                    time.sleep(0.1)
                    continue
                batch = self._next_batch(settings)
                if not batch:
                    continue
                if settings.reorder:
                    self._rng.shuffle(batch)
                    if not self._held and len(batch) > 1 and self._rng.random() < 0.3:
                        # hold a part back: it will arrive after the next batch
                        cut = self._rng.randrange(1, len(batch))
                        self._held, batch = batch[:cut], batch[cut:]
                    elif self._held:
                        batch, self._held = batch + self._held, []
                try:
                    dupes = [e for e in batch if self._rng.random() < settings.duplicate_rate]
                    self._post(client, settings, batch)
                    if dupes:  # at-least-once: some events come again, in a later delivery
                        self._count("duplicates_sent", len(dupes))
                        self._post(client, settings, dupes)
                finally:
                    with self._lock:  # held events count as outstanding until posted
                        self._outstanding -= len(batch)

    def _post(
        self, client: httpx.Client, settings: HookSettings, events: list[dict[str, Any]]
    ) -> None:
        envelope = {
            "eventType": "com.okta.event_hook",
            "eventTypeVersion": "1.0",
            "cloudEventsVersion": "0.1",
            "source": "https://emulator.okta.local/api/v1/eventHooks/who8emulator",
            "eventId": str(uuid.uuid4()),
            "eventTime": okta_time(datetime.now(UTC)),
            "contentType": "application/json",
            "data": {"events": events},
        }
        headers = {"Content-Type": "application/json", settings.auth_header: settings.auth_value}
        for attempt in range(2):  # one retry on timeout or 5xx
            try:
                resp = client.post(
                    settings.url, json=envelope, headers=headers, timeout=settings.timeout
                )
            except httpx.HTTPError:
                status = None
            else:
                status = resp.status_code
            if status is not None and status < 300:
                self._count("batches_delivered")
                self._count("events_delivered", len(events))
                return
            if status is not None and status < 500:
                break  # 4xx: Okta does not retry
            if attempt == 0:
                self._count("retries")
        self._count("batches_failed")
