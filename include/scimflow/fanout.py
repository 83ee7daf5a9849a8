"""Which targets a run fans out to: the DAGs map one task per name this returns.

One rule for every path that maps over targets (the stream's ``apply``, the resync's
``sync_target``): the configuration's targets in their configured order, or only the
ones a run asked for by name. A name that is not configured stops the run instead of
being skipped, so that a typo never looks like a target with nothing to do.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from scimflow.errors import ConfigError

if TYPE_CHECKING:
    from scimflow.scim.config import ScimflowConfig

__all__ = ["select_targets"]


def select_targets(config: ScimflowConfig, wanted: Iterable[str] = ()) -> list[str]:
    """The names of the targets to run, in configuration order.

    ``wanted`` empty: every configured target. Otherwise the configured targets named in
    ``wanted``; a name that is not configured raises :class:`ConfigError` naming it.
    """
    names = [t.name for t in config.targets]
    chosen = set(wanted)
    if not chosen:
        return names
    unknown = sorted(chosen - set(names))
    if unknown:
        raise ConfigError("configuration", f"no targets named {unknown} (targets: {names})")
    return [n for n in names if n in chosen]
