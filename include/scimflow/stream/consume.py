"""The two ends of one ``okta_events`` run: consume a micro-batch, then commit it.

:func:`consume_batch` reads the next bounded batch from ``okta.events`` (nothing
committed), saves its changes in the run's folder, hydrates and validates them, and
says which targets the batch goes to (none when it is empty). :func:`commit_batch`
runs once every target's effect is durable: it remembers the events and commits the
offsets (:func:`scimflow.stream.batch.finish`), then measures how many events are left
on the topic, so that the caller can ring the doorbell again when some are (see
:func:`scimflow.airflow.stream.rearm`).

Both return small JSON-ready results for XCom: counts, paths and ids, never values.
No Airflow here: the DAG's tasks call these, and so can anything else.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scimflow.scim.config import ScimflowConfig

__all__ = ["CommitResult", "ConsumeResult", "commit_batch", "consume_batch"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsumeResult:
    """One consumed micro-batch: what was read, where it lives, where it goes."""

    run_dir: Path
    events: int  # routed events read (duplicates included)
    dead_lettered: int
    read_seconds: float
    hydrate: dict[str, Any]  # what :func:`scimflow.stream.batch.hydrate` returned
    target_names: tuple[str, ...] = ()  # the targets to apply it to: none when empty

    def to_xcom(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "events": self.events,
            "dead_lettered": self.dead_lettered,
            "read_seconds": round(self.read_seconds, 2),
            "hydrate": self.hydrate,
        }


@dataclass(frozen=True)
class CommitResult:
    """One committed micro-batch, and the events left on the topic after it."""

    finished: dict[str, Any]  # what :func:`scimflow.stream.batch.finish` returned
    left: int  # events on the topic the consumer group has not committed past

    def to_xcom(self, applied: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
        """With the batch's per-target summaries under ``targets``."""
        return {**self.finished, "left": self.left, "targets": [dict(a) for a in applied]}


def consume_batch(
    config: ScimflowConfig, run_dir: Path, *, max_events: int | None = None
) -> ConsumeResult:
    """Read, save and hydrate the next micro-batch into ``run_dir``; commit nothing.

    ``max_events`` bounds the batch (default: the configuration's ``kafka.batch_max``).
    """
    from scimflow.fanout import select_targets
    from scimflow.stream.batch import hydrate, save_changes
    from scimflow.stream.kafka import read_batch

    batch = read_batch(config.kafka_section(), max_events=max_events)
    save_changes(run_dir, batch.changes, batch.offsets)
    if not batch.changes:
        return ConsumeResult(
            run_dir=run_dir,
            events=0,
            dead_lettered=batch.dead_lettered,
            read_seconds=batch.seconds,
            hydrate={"events": 0},
        )
    hydrated = hydrate(config, run_dir)
    log.info("data quality report: %s (%s)", hydrated["report"], hydrated)
    return ConsumeResult(
        run_dir=run_dir,
        events=len(batch.changes),
        dead_lettered=batch.dead_lettered,
        read_seconds=batch.seconds,
        hydrate=hydrated,
        target_names=tuple(select_targets(config)),
    )


def commit_batch(config: ScimflowConfig, run_dir: Path) -> CommitResult:
    """Finish the batch in ``run_dir`` (events remembered, offsets committed), then
    count the events left on the topic. Call it only when every target's effect is
    durable: what it commits is never read again."""
    from scimflow.stream.batch import finish
    from scimflow.stream.kafka import lag

    kafka = config.kafka_section()
    finished = finish(config, run_dir)
    return CommitResult(finished=finished, left=lag(kafka))
