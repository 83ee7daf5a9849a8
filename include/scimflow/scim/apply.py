"""The executor: applies a plan to one target, idempotently, with its own caps and retries.

Each target has its own concurrency and requests-per-second caps, so a slow target never
slows another. Transient failures (429 with Retry-After honoured, 5xx, timeouts) are
retried with exponential backoff and jitter; a 409 on create links the existing
resource; a 404 on update recreates it; any other refusal parks the record with its
reason and the rest goes on. Every write is recorded in the audit log with its cause,
and links (Okta id → SCIM id, hash pushed) are saved as the writes land, so a crash or
a retry of the whole run resumes without duplicates.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Protocol

from pyrate_limiter import Duration, Limiter, Rate

from scimflow.errors import (
    ScimConflictError,
    ScimNotFoundError,
    ScimRejectedError,
    ScimTransientError,
)
from scimflow.scim.client import ScimTarget, last_status, retrying
from scimflow.scim.plan import DEPROVISIONED_HASH, PENDING, Operation, Plan

__all__ = ["ApplyResult", "Executor", "Outcome"]


class StoreLike(Protocol):
    def links(self, target: str, kind: str) -> dict[str, Any]: ...
    def save_links(
        self, target: str, kind: str, links: Iterable[tuple[str, str, str | None]]
    ) -> None: ...
    def drop_links(self, target: str, kind: str, okta_ids: Iterable[str]) -> None: ...
    def park(
        self, target: str, kind: str, okta_id: str, reason: str, payload: dict[str, Any] | None
    ) -> None: ...
    def unpark(self, target: str, kind: str, okta_ids: Iterable[str]) -> None: ...
    def append_audit(self, entries: Any) -> Any: ...


@dataclass
class Outcome:
    """What happened to one operation."""

    op: Operation
    result: str  # applied, linked, parked, failed
    scim_id: str | None = None
    pushed_hash: str | None = None
    status: int | None = None
    reason: str = ""
    request: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    drop_link: bool = False


@dataclass
class ApplyResult:
    target: str
    counts: Counter[str] = field(default_factory=Counter)
    parked: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def merge(self, other: ApplyResult) -> None:
        self.counts.update(other.counts)
        self.parked += other.parked
        self.failed += other.failed
        self.seconds += other.seconds


class Executor:
    """Applies plans to one target; thread pool sized by the target's concurrency."""

    def __init__(
        self,
        target: ScimTarget,
        store: StoreLike,
        *,
        run_id: str,
        cause: str,
        causes: Mapping[str, str] | None = None,
        concurrency: int = 4,
        requests_per_second: float = 50.0,
        max_attempts: int = 5,
        flush_every: int = 500,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.target = target
        self.store = store
        self.run_id = run_id
        self.cause = cause
        # per Okta id, a more precise cause (the Okta event uuids that named it)
        self.causes: Mapping[str, str] = causes or {}
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.flush_every = flush_every
        self.sleep = sleep
        per_second = max(1, round(requests_per_second))
        self._limiter = Limiter(Rate(per_second, Duration.SECOND))
        self._group_ids: dict[str, str] = {}
        self._lock = threading.Lock()

    # -- one request with caps and retries ---------------------------------------------------
    def _send(self, fn: Callable[..., Any], *args: Any) -> Any:
        for attempt in retrying(self.max_attempts, self.sleep):
            with attempt:
                self._limiter.try_acquire(self.target.name)
                return fn(*args)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- users ---------------------------------------------------------------------------------
    def _user(self, op: Operation) -> Outcome:
        t = self.target
        try:
            if op.action == "link":
                return Outcome(op, "linked", op.scim_id, op.fingerprint, reason=op.reason)
            if op.action == "create":
                return self._create_user(op)
            if op.action == "update":
                assert op.scim_id is not None and op.payload is not None
                try:
                    if op.patch and t.capabilities.patch:
                        self._send(t.patch, "Users", op.scim_id, list(op.patch))
                        request: dict[str, Any] = {"Operations": list(op.patch)}
                    else:
                        self._send(t.replace, "Users", op.scim_id, op.payload)
                        request = op.payload
                except ScimNotFoundError:  # deleted by hand in the target: recreate
                    return self._create_user(op, reason="recreated: gone from the target")
                return Outcome(
                    op, "applied", op.scim_id, op.fingerprint, last_status(), op.reason, request
                )
            if op.action == "deactivate":
                assert op.scim_id is not None
                change = [{"op": "replace", "path": "active", "value": False}]
                try:
                    if t.capabilities.patch:
                        self._send(t.patch, "Users", op.scim_id, change)
                    else:
                        current = self._send(t.get, "Users", op.scim_id)
                        current = {k: v for k, v in current.items() if k not in ("meta", "groups")}
                        self._send(t.replace, "Users", op.scim_id, {**current, "active": False})
                except ScimNotFoundError:
                    return Outcome(op, "applied", op.scim_id, reason="already gone", drop_link=True)
                return Outcome(
                    op,
                    "applied",
                    op.scim_id,
                    DEPROVISIONED_HASH,
                    last_status(),
                    op.reason,
                    {"Operations": change},
                )
            if op.action == "delete":
                assert op.scim_id is not None
                with contextlib.suppress(ScimNotFoundError):
                    self._send(t.delete, "Users", op.scim_id)
                return Outcome(
                    op, "applied", op.scim_id, None, last_status(), op.reason, drop_link=True
                )
        except ScimRejectedError as exc:
            return Outcome(
                op, "parked", op.scim_id, status=exc.status, reason=exc.reason, request=op.payload
            )
        except ScimTransientError as exc:
            return Outcome(
                op,
                "failed",
                op.scim_id,
                status=exc.status,
                reason=f"gave up after retries: {exc.reason}",
            )
        raise ValueError(f"unknown user action {op.action}")

    def _create_user(self, op: Operation, reason: str = "") -> Outcome:
        t = self.target
        assert op.payload is not None
        try:
            created = self._send(t.create, "Users", op.payload)
            return Outcome(
                op,
                "applied",
                str(created["id"]),
                op.fingerprint,
                last_status(),
                reason or op.reason,
                op.payload,
                {"id": created["id"]},
            )
        except ScimConflictError:
            # it exists (made by hand, or by an earlier attempt of ours): link it, make it equal
            user_name = str(op.payload.get("userName", ""))
            found = self._send(t.find_user, op.okta_id, user_name)
            if found is None:
                return Outcome(
                    op, "parked", reason="409 on create, and no user with this userName/externalId"
                )
            scim_id = str(found["id"])
            self._send(t.replace, "Users", scim_id, op.payload)
            return Outcome(
                op,
                "linked",
                scim_id,
                op.fingerprint,
                last_status(),
                "409 on create: linked the existing user",
                op.payload,
            )

    # -- groups -----------------------------------------------------------------------------------
    def _group_ops(self, ops: list[Operation], user_links: dict[str, Any]) -> list[Outcome]:
        t = self.target
        out: list[Outcome] = []
        scim_id: str | None = None
        for op in ops:
            scim_id = op.scim_id or scim_id
            try:
                if op.action == "group_link":
                    out.append(Outcome(op, "linked", scim_id, reason=op.reason))
                elif op.action == "group_create":
                    # its first members in the POST (members whose create failed left out)
                    members = self._resolve_all(op.members, user_links)
                    payload = {**(op.payload or {}), "members": [{"value": m} for m in members]}
                    try:
                        created = self._send(t.create, "Groups", payload)
                        scim_id = str(created["id"])
                        out.append(
                            Outcome(op, "applied", scim_id, None, last_status(), request=payload)
                        )
                    except ScimConflictError:
                        name = str((op.payload or {}).get("displayName"))
                        found = self._send(t.find_group, name)
                        if found is None:
                            raise
                        scim_id = str(found["id"])
                        if members:
                            self._members(scim_id, "members_add", members)
                        out.append(
                            Outcome(
                                op,
                                "linked",
                                scim_id,
                                reason="409 on create: linked the existing group",
                            )
                        )
                elif op.action == "group_update":
                    gid = scim_id
                    if op.patch and t.capabilities.patch:
                        self._send(t.patch, "Groups", gid, list(op.patch))
                    else:
                        current = self._send(t.get, "Groups", gid)
                        body = {k: v for k, v in current.items() if k != "meta"}
                        body.update(op.payload or {})
                        self._send(t.replace, "Groups", gid, body)
                    out.append(
                        Outcome(op, "applied", scim_id, None, last_status(), op.reason, op.payload)
                    )
                elif op.action in ("members_add", "members_remove"):
                    members = self._resolve_all(op.members, user_links)
                    if members:
                        self._members(scim_id, op.action, members)  # type: ignore[arg-type]
                    out.append(
                        Outcome(
                            op,
                            "applied",
                            scim_id,
                            None,
                            last_status(),
                            f"{len(members)} members",
                            {"members": members},
                        )
                    )
                elif op.action == "group_delete":
                    gid = scim_id
                    with contextlib.suppress(ScimNotFoundError):
                        self._send(t.delete, "Groups", gid)
                    out.append(
                        Outcome(
                            op, "applied", scim_id, None, last_status(), op.reason, drop_link=True
                        )
                    )
            except ScimRejectedError as exc:
                out.append(Outcome(op, "parked", scim_id, status=exc.status, reason=exc.reason))
                break  # the group's later operations depend on this one
            except (ScimTransientError, ScimConflictError, ScimNotFoundError) as exc:
                out.append(Outcome(op, "failed", scim_id, status=exc.status, reason=exc.reason))
                break
        return out

    @classmethod
    def _resolve_all(cls, members: Iterable[str], user_links: dict[str, Any]) -> list[str]:
        """The SCIM ids of members (pending creates resolved, failed ones left out)."""
        out: list[str] = []
        for member in members:
            resolved = cls._resolve(member, user_links)
            if resolved:
                out.append(resolved)
        return out

    @staticmethod
    def _resolve(member: str, user_links: dict[str, Any]) -> str | None:
        if member.startswith(PENDING):
            link = user_links.get(member[len(PENDING) :])
            return link.scim_id if link is not None else None
        return member

    def _members(self, group_id: str, action: str, members: list[str]) -> None:
        t = self.target
        if t.capabilities.patch:
            if action == "members_add":
                ops = [{"op": "add", "path": "members", "value": [{"value": m} for m in members]}]
            else:  # one operation per member: servers refuse "remove" with a value list
                ops = [{"op": "remove", "path": f'members[value eq "{m}"]'} for m in members]
            self._send(t.patch, "Groups", group_id, ops)
            return
        current = self._send(t.get, "Groups", group_id)
        have = [m for m in current.get("members") or [] if m.get("value")]
        ids = {m["value"] for m in have}
        if action == "members_add":
            have += [{"value": m} for m in members if m not in ids]
        else:
            have = [m for m in have if m["value"] not in set(members)]
        body = {k: v for k, v in current.items() if k != "meta"}
        body["members"] = have
        self._send(t.replace, "Groups", group_id, body)

    # -- running a plan ---------------------------------------------------------------------------
    def apply(self, plan: Plan, *, user_links: dict[str, Any] | None = None) -> ApplyResult:
        """Apply every operation; save links, parks and audit rows as they land."""
        t0 = time.monotonic()
        result = ApplyResult(plan.target)
        pending: list[Outcome] = []
        user_ops = [op for op in plan.operations if op.kind == "User"]
        groups: dict[str, list[Operation]] = {}
        for op in plan.operations:
            if op.kind == "Group":
                groups.setdefault(op.okta_id, []).append(op)
        with ThreadPoolExecutor(
            max_workers=self.concurrency, thread_name_prefix=f"scim-{plan.target}"
        ) as pool:
            futures: list[Future[Outcome | list[Outcome]]] = [
                pool.submit(self._user, op) for op in user_ops
            ]
            futures += [
                pool.submit(self._group_ops, ops, user_links or {}) for ops in groups.values()
            ]
            for future in as_completed(futures):
                got = future.result()
                for outcome in got if isinstance(got, list) else [got]:
                    pending.append(outcome)
                    result.counts[f"{outcome.op.action}:{outcome.result}"] += 1
                    if outcome.result == "parked":
                        result.parked.append((outcome.op.okta_id, outcome.reason))
                    elif outcome.result == "failed":
                        result.failed.append((outcome.op.okta_id, outcome.reason))
                if len(pending) >= self.flush_every:
                    self._flush(plan.target, pending)
                    pending = []
        self._flush(plan.target, pending)
        result.seconds = time.monotonic() - t0
        return result

    def _flush(self, target: str, outcomes: list[Outcome]) -> None:
        if not outcomes:
            return
        from scimflow.state.store import AuditEntry

        saves: dict[str, list[tuple[str, str, str | None]]] = {"User": [], "Group": []}
        drops: dict[str, list[str]] = {"User": [], "Group": []}
        done: dict[str, list[str]] = {"User": [], "Group": []}
        entries = []
        for o in outcomes:
            kind, okta_id = o.op.kind, o.op.okta_id
            managed = not okta_id.startswith("unmanaged:")
            if o.result in ("applied", "linked") and managed:
                if o.drop_link:
                    drops[kind].append(okta_id)
                elif o.scim_id:
                    saves[kind].append((okta_id, o.scim_id, o.pushed_hash))
                done[kind].append(okta_id)
            elif o.result == "parked":
                self.store.park(target, kind, okta_id, o.reason, o.request)
            entries.append(
                AuditEntry(
                    run_id=self.run_id,
                    cause=self.causes.get(okta_id, self.cause),
                    target=target,
                    operation="park" if o.result == "parked" else o.op.action,
                    kind=kind,
                    okta_id=okta_id,
                    scim_id=o.scim_id,
                    request=o.request,
                    status=o.status,
                    response=o.response
                    if o.response is not None
                    else ({"reason": o.reason} if o.reason else None),
                    outcome=o.result,
                )
            )
        for kind in ("User", "Group"):
            if saves[kind]:
                self.store.save_links(target, kind, saves[kind])
            if drops[kind]:
                self.store.drop_links(target, kind, drops[kind])
            if done[kind]:
                self.store.unpark(target, kind, done[kind])
        self.store.append_audit(entries)
