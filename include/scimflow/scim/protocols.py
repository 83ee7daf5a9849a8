"""The seams of the engine: what a target client and a state store must offer.

:class:`TargetClient` is satisfied by :class:`scimflow.scim.client.ScimTarget` (a SCIM
2.0 server) and by the in-memory model target of the tests; :class:`Store` by
:class:`scimflow.state.store.StateStore` and the in-memory store of the tests. mypy checks
both (``tests/`` is type-checked too), so a double cannot drift from the real class.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from scimflow.scim.client import Capabilities
    from scimflow.scim.plan import LinkLike
    from scimflow.state.store import AuditEntry, Parked, ParkKind

__all__ = ["Store", "TargetClient"]


class TargetClient(Protocol):
    """A connection to one target. Every method raises the classified errors of
    :mod:`scimflow.errors` (transient after its own retries, conflict, not found,
    rejected); it is the one place that retries."""

    @property
    def name(self) -> str: ...

    @property
    def capabilities(self) -> Capabilities: ...

    def close(self) -> None: ...

    def list_resources(
        self, endpoint: str, *, page_size: int | None = None
    ) -> Iterator[dict[str, Any]]: ...

    def get(self, endpoint: str, scim_id: str) -> dict[str, Any]: ...

    def find_user(
        self, external_id: str | None = None, user_name: str | None = None
    ) -> dict[str, Any] | None: ...

    def lookup_users(self, keys: Iterable[tuple[str, str]]) -> list[dict[str, Any]]: ...

    def find_group(self, display_name: str) -> dict[str, Any] | None: ...

    def groups_with_member(self, scim_id: str) -> list[str]: ...

    def create(self, endpoint: str, payload: dict[str, Any]) -> dict[str, Any]: ...

    def replace(self, endpoint: str, scim_id: str, payload: dict[str, Any]) -> None: ...

    def patch(self, endpoint: str, scim_id: str, operations: list[dict[str, Any]]) -> None: ...

    def delete(self, endpoint: str, scim_id: str) -> None: ...


class Store(Protocol):
    """Links, parked records and the audit log of every target."""

    def links(self, target: str, kind: str) -> Mapping[str, LinkLike]: ...

    def save_links(
        self, target: str, kind: str, links: Iterable[tuple[str, str, str | None]]
    ) -> None: ...

    def drop_links(self, target: str, kind: str, okta_ids: Iterable[str]) -> None: ...

    def park(
        self,
        target: str,
        kind: str,
        okta_id: str,
        reason: str,
        payload: dict[str, Any] | None = None,
        *,
        park_kind: ParkKind,
    ) -> None: ...

    def unpark(self, target: str, kind: str, okta_ids: Iterable[str]) -> None: ...

    def parked(
        self,
        target: str | None = None,
        *,
        park_kinds: Iterable[ParkKind] | None = None,
        oldest_first: bool = False,
        limit: int | None = None,
    ) -> list[Parked]: ...

    def append_audit(self, entries: Sequence[AuditEntry]) -> list[int]: ...
