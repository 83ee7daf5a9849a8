"""Preload scimflow's heavy libraries in the Airflow scheduler, for the stream's latency.

The LocalExecutor forks its task workers from the scheduler process, and each task from
a worker, so whatever the scheduler imported is already loaded in every task. The
``okta_events`` tasks otherwise import the official Okta SDK (about 4 s) and
great-expectations (about 7 s) again in every run, which is most of a micro-batch's
time. This module is imported when Airflow loads its plugins; with
``[core] lazy_load_plugins = False`` (the local stack and docker-compose set it) that is
at start-up, before the executor forks. It does the work only in the scheduler process
and defines no plugin; elsewhere it is a no-op.
"""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger(__name__)

PRELOAD = (
    "okta.client",
    "great_expectations",
    "confluent_kafka",
    "alembic.command",
    "scimflow.quality",
    "scimflow.okta.source",
    "scimflow.resync",
    "scimflow.scim.config",
    "scimflow.scim.mapping",
    "scimflow.scim.plan",
    "scimflow.scim.apply",
    "scimflow.scim.reconcile",
    "scimflow.state.store",
    "scimflow.stream.batch",
    "scimflow.stream.kafka",
    "scimflow.stream.catchup",
)


def _in_scheduler() -> bool:
    return len(sys.argv) > 1 and sys.argv[0].endswith("airflow") and sys.argv[1] == "scheduler"


if _in_scheduler():
    import importlib

    t0 = time.monotonic()
    # tasks forked from the scheduler load plugins again: they find everything loaded
    todo = [name for name in PRELOAD if name not in sys.modules]
    for name in todo:
        try:
            importlib.import_module(name)
        except Exception as exc:  # a preload must never stop the scheduler
            log.warning("scimflow preload: %s not loaded (%s)", name, type(exc).__name__)
    if todo:
        log.info("scimflow preload: %d modules in %.1f s", len(todo), time.monotonic() - t0)
