"""An in-memory SCIM target with the interface of ``ScimTarget``, and an in-memory state
store: the model that property tests apply plans to. They satisfy the engine's
``TargetClient`` and ``Store`` protocols (mypy checks it below). Failures can be
injected before or after a write takes effect (the nastiest case: written, but the
client saw an error); like the real client, the model retries them itself (its one
retry layer) up to ``max_attempts`` before the error reaches the engine."""

from __future__ import annotations

import copy
import itertools
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from scimflow.errors import (
    ScimConflictError,
    ScimNotFoundError,
    ScimRejectedError,
    ScimTransientError,
)
from scimflow.scim.client import PATCH_SCHEMA, Capabilities
from scimflow.scim.plan import ENTERPRISE
from scimflow.state.store import AuditEntry, Parked, ParkKind

if TYPE_CHECKING:
    from scimflow.scim.protocols import Store, TargetClient

T = TypeVar("T")

_ids = itertools.count(1)


class ModelTarget:
    def __init__(
        self,
        name: str = "model",
        *,
        patch: bool = True,
        fail_rate: float = 0.0,
        seed: int = 0,
        reject_user_names: Iterable[str] = (),
        max_attempts: int = 6,
    ) -> None:
        self.name = name
        self.max_attempts = max_attempts
        self.attempts = 0
        self.capabilities = Capabilities(
            patch=patch, bulk=False, filter=True, etag=False, max_results=100
        )
        self.resources: dict[str, dict[str, dict[str, Any]]] = {"Users": {}, "Groups": {}}
        self.fail_rate = fail_rate
        self.rng = random.Random(seed)
        self.reject = {n.lower() for n in reject_user_names}
        self.writes = 0
        # every write as the real client would send it: (method, path, body)
        self.sent: list[tuple[str, str, dict[str, Any] | None]] = []

    def close(self) -> None:
        pass

    # -- failure injection ---------------------------------------------------------------
    def _maybe_fail(self, what: str, *, after: bool) -> None:
        if self.fail_rate and self.rng.random() < self.fail_rate:
            raise ScimTransientError(
                self.name, what, "injected 503 " + ("after" if after else "before"), status=503
            )

    def _write(self, what: str, fn: Callable[[], T], body: dict[str, Any] | None = None) -> T:
        """One write, retried on an injected transient failure like the real client."""
        for attempt in range(1, self.max_attempts + 1):
            self.attempts += 1
            method, _, path = what.partition(" ")
            self.sent.append((method, path, copy.deepcopy(body)))
            try:
                self._maybe_fail(what, after=False)
                result = fn()
                self.writes += 1
                self._maybe_fail(what, after=True)
                return result
            except ScimTransientError:
                if attempt == self.max_attempts:
                    raise
        raise AssertionError("unreachable")

    # -- reads ------------------------------------------------------------------------------
    def list_resources(
        self, endpoint: str, *, page_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        for r in list(self.resources[endpoint].values()):
            yield copy.deepcopy(r)

    def get(self, endpoint: str, scim_id: str) -> dict[str, Any]:
        if scim_id not in self.resources[endpoint]:
            raise ScimNotFoundError(self.name, f"GET /{endpoint}/{scim_id}", "HTTP 404", status=404)
        return copy.deepcopy(self.resources[endpoint][scim_id])

    def find_user(
        self, external_id: str | None = None, user_name: str | None = None
    ) -> dict[str, Any] | None:
        for r in self.resources["Users"].values():
            if external_id and r.get("externalId") == external_id:
                return copy.deepcopy(r)
        for r in self.resources["Users"].values():
            if user_name and str(r.get("userName", "")).lower() == user_name.lower():
                return copy.deepcopy(r)
        return None

    def lookup_users(self, keys: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for external_id, user_name in keys:
            hit = self.find_user(external_id or None, user_name or None)
            if hit is not None:
                found[str(hit["id"])] = hit
        return list(found.values())

    def groups_with_member(self, scim_id: str) -> list[str]:
        return [
            gid
            for gid, g in self.resources["Groups"].items()
            if any(m.get("value") == scim_id for m in g.get("members") or [])
        ]

    def find_group(self, display_name: str) -> dict[str, Any] | None:
        return next(
            (
                copy.deepcopy(g)
                for g in self.resources["Groups"].values()
                if g.get("displayName") == display_name
            ),
            None,
        )

    # -- writes -------------------------------------------------------------------------------
    def create(self, endpoint: str, payload: dict[str, Any]) -> dict[str, Any]:
        def do() -> dict[str, Any]:
            if endpoint == "Users":
                name = str(payload.get("userName", "")).lower()
                if name in self.reject:
                    raise ScimRejectedError(
                        self.name, "POST /Users", "HTTP 400: invalidValue", status=400
                    )
                if any(
                    str(r.get("userName", "")).lower() == name
                    for r in self.resources["Users"].values()
                ):
                    raise ScimConflictError(
                        self.name, "POST /Users", "HTTP 409: uniqueness", status=409
                    )
            else:
                if any(
                    g.get("displayName") == payload.get("displayName")
                    for g in self.resources["Groups"].values()
                ):
                    raise ScimConflictError(
                        self.name, "POST /Groups", "HTTP 409: uniqueness", status=409
                    )
            scim_id = f"s{next(_ids)}"
            self.resources[endpoint][scim_id] = {**copy.deepcopy(payload), "id": scim_id}
            return {"id": scim_id}

        return self._write(f"POST /{endpoint}", do, payload)

    def replace(self, endpoint: str, scim_id: str, payload: dict[str, Any]) -> None:
        def do() -> None:
            if scim_id not in self.resources[endpoint]:
                raise ScimNotFoundError(self.name, "PUT", "HTTP 404", status=404)
            self.resources[endpoint][scim_id] = {**copy.deepcopy(payload), "id": scim_id}

        self._write(f"PUT /{endpoint}/{scim_id}", do, {**payload, "id": scim_id})

    def patch(self, endpoint: str, scim_id: str, operations: list[dict[str, Any]]) -> None:
        def do() -> None:
            r = self.resources[endpoint].get(scim_id)
            if r is None:
                raise ScimNotFoundError(self.name, "PATCH", "HTTP 404", status=404)
            for op in operations:
                path = str(op.get("path", ""))
                if path.startswith(ENTERPRISE + ":"):
                    ext = r.setdefault(ENTERPRISE, {})
                    attr = path[len(ENTERPRISE) + 1 :]
                    if op["op"] == "remove":
                        ext.pop(attr, None)
                    else:
                        ext[attr] = copy.deepcopy(op["value"])
                elif path == "members" and op["op"] == "add":
                    have = {m["value"] for m in r.setdefault("members", [])}
                    r["members"] += [m for m in op["value"] if m["value"] not in have]
                elif path.startswith("members[value eq "):
                    gone = path.split('"')[1]
                    r["members"] = [m for m in r.get("members", []) if m["value"] != gone]
                elif op["op"] == "remove":
                    r.pop(path, None)
                else:
                    r[path] = copy.deepcopy(op["value"])

        body = {"schemas": [PATCH_SCHEMA], "Operations": operations}
        self._write(f"PATCH /{endpoint}/{scim_id}", do, body)

    def delete(self, endpoint: str, scim_id: str) -> None:
        def do() -> None:
            if self.resources[endpoint].pop(scim_id, None) is None:
                raise ScimNotFoundError(self.name, "DELETE", "HTTP 404", status=404)

        self._write(f"DELETE /{endpoint}/{scim_id}", do)


@dataclass
class MemoryLink:
    okta_id: str
    scim_id: str
    pushed_hash: str | None


@dataclass
class MemoryStore:
    """The state store's interface, in memory."""

    data: dict[tuple[str, str], dict[str, MemoryLink]] = field(default_factory=dict)
    parked_rows: dict[tuple[str, str, str], str] = field(default_factory=dict)
    parked_kinds: dict[tuple[str, str, str], ParkKind] = field(default_factory=dict)
    audit_rows: list[AuditEntry] = field(default_factory=list)

    def links(self, target: str, kind: str) -> dict[str, MemoryLink]:
        return dict(self.data.get((target, kind), {}))

    def save_links(
        self, target: str, kind: str, links: Iterable[tuple[str, str, str | None]]
    ) -> None:
        bucket = self.data.setdefault((target, kind), {})
        for okta_id, scim_id, pushed in links:
            # a resource belongs to one Okta id: linking it to another moves the link
            for other in [k for k, v in bucket.items() if v.scim_id == scim_id and k != okta_id]:
                del bucket[other]
            bucket[okta_id] = MemoryLink(okta_id, scim_id, pushed)

    def drop_links(self, target: str, kind: str, okta_ids: Iterable[str]) -> None:
        for okta_id in okta_ids:
            self.data.get((target, kind), {}).pop(okta_id, None)

    def park(
        self,
        target: str,
        kind: str,
        okta_id: str,
        reason: str,
        payload: dict[str, Any] | None = None,
        *,
        park_kind: ParkKind,
    ) -> None:
        self.parked_rows[(target, kind, okta_id)] = reason
        self.parked_kinds[(target, kind, okta_id)] = ParkKind(park_kind)

    def unpark(self, target: str, kind: str, okta_ids: Iterable[str]) -> None:
        for okta_id in okta_ids:
            self.parked_rows.pop((target, kind, okta_id), None)
            self.parked_kinds.pop((target, kind, okta_id), None)

    def parked(
        self,
        target: str | None = None,
        *,
        park_kinds: Iterable[ParkKind] | None = None,
        oldest_first: bool = False,
        limit: int | None = None,
    ) -> list[Parked]:
        kinds = None if park_kinds is None else set(park_kinds)
        now = datetime.now(UTC)
        out = [
            Parked(t, k, o, self.parked_kinds[(t, k, o)], reason, 1, now, now, None)
            for (t, k, o), reason in sorted(self.parked_rows.items())
            if (target is None or t == target)
            and (kinds is None or self.parked_kinds[(t, k, o)] in kinds)
        ]
        return out[:limit] if limit is not None else out

    def append_audit(self, entries: Sequence[AuditEntry]) -> list[int]:
        start = len(self.audit_rows)
        self.audit_rows.extend(entries)
        return list(range(start + 1, len(self.audit_rows) + 1))


if TYPE_CHECKING:  # the doubles satisfy the engine's seams
    _client: TargetClient = ModelTarget()
    _store: Store = MemoryStore()
