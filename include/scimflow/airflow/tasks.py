"""What the DAGs' task bodies share, so that the DAG files only wire.

Imported by DAG files at parse time (for :func:`map_index_by`): it imports nothing
heavy, and Airflow only for types.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from scimflow.errors import ScimflowError

if TYPE_CHECKING:
    from datetime import datetime

    from airflow.sdk import Context
    from airflow.sdk.types import RuntimeTaskInstanceProtocol

__all__ = ["data_interval", "is_last_try", "map_index_by", "returned"]


def map_index_by(argument: str) -> str:
    """A ``map_index_template`` that labels each mapped task instance with the value of
    its expanded ``argument`` (a target's name) instead of 0, 1, ...

    It reads the unmapped task's ``op_kwargs``, which are there when Airflow first
    renders the label, before the task runs: the UI names a target while its task is
    still running (``"{{ argument }}"`` renders only once the callable has been called,
    when Airflow merges the arguments into the context).
    """
    if not argument.isidentifier():
        raise ValueError(f"not an argument name: {argument!r}")
    return "{{ task.op_kwargs['" + argument + "'] }}"


def is_last_try(ti: RuntimeTaskInstanceProtocol) -> bool:
    """Whether a failure of this try fails the task (no retry is left)."""
    return ti.try_number > ti.max_tries


def data_interval(context: Context) -> tuple[datetime, datetime]:
    """The run's data interval ``[start, end)``: a run without one is an error."""
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is None or end is None:
        raise ScimflowError("this run has no data interval: trigger it with a logical date")
    return start, end


def returned(values: Iterable[Mapping[str, Any] | None]) -> list[dict[str, Any]]:
    """The XComs of the mapped task instances that returned one (a failed or skipped
    instance returns none), e.g. the per-target summaries a report is built from."""
    return [dict(v) for v in values if v]
