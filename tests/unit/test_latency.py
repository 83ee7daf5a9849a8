"""The stream's change-to-write latency counts only events published since it began."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, cast

from scimflow.stream.observe import latency

if TYPE_CHECKING:
    from scimflow.state.store import StateStore

T0 = datetime(2026, 12, 5, 20, 0, tzinfo=UTC)


class FakeStore:
    """``event_writes`` as the state store answers it: (uuid, target, write, published)."""

    def __init__(self, rows: list[tuple[str, str, datetime, datetime | None]]) -> None:
        self.rows = rows

    def event_writes(self, since: datetime) -> list[tuple[str, str, datetime, datetime | None]]:
        return [row for row in self.rows if row[2] >= since]


def test_an_event_published_before_the_start_is_left_out() -> None:
    rows: list[tuple[str, str, datetime, datetime | None]] = [
        ("new-1", "a", T0 + timedelta(seconds=3), T0 + timedelta(seconds=1)),
        ("new-2", "b", T0 + timedelta(seconds=5), T0 + timedelta(seconds=2)),
        # a uuid seen ten minutes earlier (a replay, or an emulator that reissued it)
        ("old", "a", T0 + timedelta(seconds=4), T0 - timedelta(minutes=10)),
        ("unknown", "a", T0 + timedelta(seconds=4), None),
    ]
    measured = latency(cast("StateStore", FakeStore(rows)), T0)
    assert measured is not None
    assert measured.events == 2
    assert measured.max == 3.0
    assert measured.p50 == 2.5
    assert measured.per_target == {"a": 1, "b": 1}
    assert measured.earlier == 1
    assert measured.as_dict()["earlier"] == 1


def test_only_earlier_events_give_no_figures() -> None:
    rows: list[tuple[str, str, datetime, datetime | None]] = [
        ("old", "a", T0 + timedelta(seconds=4), T0 - timedelta(minutes=10)),
    ]
    assert latency(cast("StateStore", FakeStore(rows)), T0) is None
