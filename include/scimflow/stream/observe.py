"""How fast the stream is: end-to-end latency from an Okta change to the SCIM write.

A change's clock starts when Okta published its event (the System Log ``published``
time, kept with the event's uuid when the stream marks it seen) and stops at the first
audit-log write in a target that names the event as its cause. Events whose state was
already written by an earlier event's write cause no write of their own and are not
counted. Only events published at or after the measurement's start count: a write
caused by an event published earlier (a replay, a catch-up, a uuid seen in an earlier
run) would otherwise add that earlier run's age to this one's figures. Used by the demo
and by ``bench/stream.py``.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scimflow.state.store import StateStore

__all__ = ["Latency", "latency"]


@dataclass(frozen=True)
class Latency:
    events: int  # (event, target) pairs with a write
    p50: float
    p95: float
    p99: float
    max: float
    per_target: dict[str, int]
    earlier: int = 0  # (event, target) writes left out: the event was published before ``since``

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "p50_s": round(self.p50, 2),
            "p95_s": round(self.p95, 2),
            "p99_s": round(self.p99, 2),
            "max_s": round(self.max, 2),
            "per_target": self.per_target,
            "earlier": self.earlier,
        }


def _quantile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def latency(store: StateStore, since: datetime) -> Latency | None:
    """Latency of the writes recorded since ``since`` that events published since then
    caused; None if there are none."""
    found = [(u, t, at, pub) for u, t, at, pub in store.event_writes(since) if pub is not None]
    rows = [row for row in found if row[3] >= since]
    if not rows:
        return None
    seconds = sorted(max(0.0, (at - pub).total_seconds()) for _u, _t, at, pub in rows)
    per_target: dict[str, int] = {}
    for _u, t, _at, _pub in rows:
        per_target[t] = per_target.get(t, 0) + 1
    return Latency(
        events=len(rows),
        p50=_quantile(seconds, 0.50),
        p95=_quantile(seconds, 0.95),
        p99=_quantile(seconds, 0.99),
        max=seconds[-1],
        per_target=dict(sorted(per_target.items())),
        earlier=len(found) - len(rows),
    )
