"""What every entry point shares: the state store and a target's client, opened and
closed the same way, with errors classified once.

- :func:`open_store`: the configuration's state store, migrated; a
  :class:`~scimflow.errors.StateStoreError` (fail the task, loudly) if it cannot be.
- :func:`connect`: a target's client, its capabilities discovered; a target that cannot
  be reached is :class:`~scimflow.errors.TargetUnavailableError`, a refused credential
  or a bad answer stays the :class:`~scimflow.errors.ScimError` it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from scimflow.errors import ScimTransientError, TargetUnavailableError

if TYPE_CHECKING:
    from scimflow.scim.client import ScimTarget
    from scimflow.scim.config import ScimflowConfig, TargetConfig
    from scimflow.state.store import StateStore

__all__ = ["connect", "open_store"]


@contextmanager
def open_store(config: ScimflowConfig, given: StateStore | None = None) -> Iterator[StateStore]:
    """The configuration's state store, migrated, closed at the end; or ``given`` as it is
    (a caller that opened one already keeps it open)."""
    from scimflow.state.store import StateStore

    if given is not None:
        yield given
        return
    store = StateStore(config.state.resolved_url())
    try:
        store.migrate()
        yield store
    finally:
        store.close()


@contextmanager
def connect(target_config: TargetConfig) -> Iterator[ScimTarget]:
    from scimflow.scim.client import open_client

    try:
        client = open_client(target_config)
    except ScimTransientError as exc:
        raise TargetUnavailableError(target_config.name, str(exc)) from exc
    try:
        yield client
    finally:
        client.close()
