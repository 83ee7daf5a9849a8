"""The executor: applies a plan to one target, idempotently, in a pool of its own.

Each target has its own concurrency (here) and requests-per-second cap and retries (in
its client, the one retry layer), so a slow target never slows another. A transient
failure that outlasts the client's retries fails the operation (the reconcile then
reports the target unavailable); a 409 on create links the existing resource; a 404 on
update recreates it; any other refusal parks the record (kind ``target-error``) with its
reason and the rest goes on. Every write is recorded in the audit log with its cause,
and links (Okta id → SCIM id, hash pushed) are saved as the writes land, so a crash or
a retry of the whole run resumes without duplicates.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scimflow.errors import (
    ScimConflictError,
    ScimNotFoundError,
    ScimRejectedError,
    ScimTransientError,
)
from scimflow.scim.client import PATCH_SCHEMA, last_status
from scimflow.scim.plan import DEPROVISIONED_HASH, PENDING, LinkLike, Operation, Plan
from scimflow.state.store import ParkKind

if TYPE_CHECKING:
    from scimflow.scim.protocols import Store, TargetClient

__all__ = ["ApplyResult", "Executor", "Outcome"]


@dataclass
class Outcome:
    """What happened to one operation; ``request`` is the body that was sent."""

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


def _patch_body(operations: list[dict[str, Any]]) -> dict[str, Any]:
    """The body of a SCIM PATCH, as the client sends it."""
    return {"schemas": [PATCH_SCHEMA], "Operations": operations}


class Executor:
    """Applies plans to one target; thread pool sized by the target's concurrency."""

    def __init__(
        self,
        client: TargetClient,
        store: Store,
        *,
        run_id: str,
        cause: str,
        causes: Mapping[str, str] | None = None,
        concurrency: int = 4,
        flush_every: int = 500,
    ) -> None:
        self.client = client
        self.store = store
        self.run_id = run_id
        self.cause = cause
        # per Okta id, a more precise cause (the Okta event uuids that named it)
        self.causes: Mapping[str, str] = causes or {}
        self.concurrency = concurrency
        self.flush_every = flush_every
        self._lock = threading.Lock()

    # -- users ---------------------------------------------------------------------------------
    def _user(self, op: Operation) -> Outcome:
        c = self.client
        try:
            if op.action == "link":
                return Outcome(op, "linked", op.scim_id, op.fingerprint, reason=op.reason)
            if op.action == "create":
                return self._create_user(op)
            if op.action == "update":
                assert op.scim_id is not None and op.payload is not None
                try:
                    if op.patch and c.capabilities.patch:
                        c.patch("Users", op.scim_id, list(op.patch))
                        request = _patch_body(list(op.patch))
                    else:
                        c.replace("Users", op.scim_id, op.payload)
                        request = {**op.payload, "id": op.scim_id}
                except ScimNotFoundError:  # deleted by hand in the target: recreate
                    return self._create_user(op, reason="recreated: gone from the target")
                return Outcome(
                    op, "applied", op.scim_id, op.fingerprint, last_status(), op.reason, request
                )
            if op.action == "deactivate":
                assert op.scim_id is not None
                change = [{"op": "replace", "path": "active", "value": False}]
                try:
                    if c.capabilities.patch:
                        c.patch("Users", op.scim_id, change)
                        request = _patch_body(change)
                    else:
                        current = c.get("Users", op.scim_id)
                        body = {k: v for k, v in current.items() if k not in ("meta", "groups")}
                        request = {**body, "active": False, "id": op.scim_id}
                        c.replace("Users", op.scim_id, request)
                except ScimNotFoundError:
                    return Outcome(op, "applied", op.scim_id, reason="already gone", drop_link=True)
                return Outcome(
                    op, "applied", op.scim_id, DEPROVISIONED_HASH, last_status(), op.reason, request
                )
            if op.action == "delete":
                assert op.scim_id is not None
                with contextlib.suppress(ScimNotFoundError):
                    c.delete("Users", op.scim_id)
                return Outcome(
                    op, "applied", op.scim_id, None, last_status(), op.reason, drop_link=True
                )
        except ScimRejectedError as exc:
            return Outcome(
                op, "parked", op.scim_id, status=exc.status, reason=exc.reason, request=op.payload
            )
        except ScimTransientError as exc:
            return Outcome(op, "failed", op.scim_id, status=exc.status, reason=exc.reason)
        raise ValueError(f"unknown user action {op.action}")

    def _create_user(self, op: Operation, reason: str = "") -> Outcome:
        c = self.client
        assert op.payload is not None
        try:
            created = c.create("Users", op.payload)
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
            found = c.find_user(op.okta_id, user_name)
            if found is None:
                return Outcome(
                    op,
                    "parked",
                    status=409,
                    reason="409 on create, and no user with this userName/externalId",
                    request=op.payload,
                )
            scim_id = str(found["id"])
            c.replace("Users", scim_id, op.payload)
            return Outcome(
                op,
                "linked",
                scim_id,
                op.fingerprint,
                last_status(),
                "409 on create: linked the existing user",
                {**op.payload, "id": scim_id},
            )

    # -- groups -----------------------------------------------------------------------------------
    def _group_ops(self, ops: list[Operation], user_links: Mapping[str, LinkLike]) -> list[Outcome]:
        c = self.client
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
                        created = c.create("Groups", payload)
                        scim_id = str(created["id"])
                        out.append(
                            Outcome(op, "applied", scim_id, None, last_status(), request=payload)
                        )
                    except ScimConflictError:
                        name = str((op.payload or {}).get("displayName"))
                        found = c.find_group(name)
                        if found is None:
                            raise
                        scim_id = str(found["id"])
                        request = (
                            self._members(scim_id, "members_add", members) if members else None
                        )
                        out.append(
                            Outcome(
                                op,
                                "linked",
                                scim_id,
                                None,
                                last_status() if request else None,
                                "409 on create: linked the existing group",
                                request,
                            )
                        )
                elif op.action == "group_update":
                    assert scim_id is not None
                    if op.patch and c.capabilities.patch:
                        request = _patch_body(list(op.patch))
                        c.patch("Groups", scim_id, list(op.patch))
                    else:
                        current = c.get("Groups", scim_id)
                        request = {k: v for k, v in current.items() if k != "meta"}
                        request.update(op.payload or {})
                        request["id"] = scim_id
                        c.replace("Groups", scim_id, request)
                    out.append(
                        Outcome(op, "applied", scim_id, None, last_status(), op.reason, request)
                    )
                elif op.action in ("members_add", "members_remove"):
                    assert scim_id is not None
                    members = self._resolve_all(op.members, user_links)
                    sent = self._members(scim_id, op.action, members) if members else None
                    out.append(
                        Outcome(
                            op,
                            "applied",
                            scim_id,
                            None,
                            last_status() if sent else None,
                            f"{len(members)} members",
                            sent,
                        )
                    )
                elif op.action == "group_delete":
                    assert scim_id is not None
                    with contextlib.suppress(ScimNotFoundError):
                        c.delete("Groups", scim_id)
                    out.append(
                        Outcome(
                            op, "applied", scim_id, None, last_status(), op.reason, drop_link=True
                        )
                    )
            except ScimRejectedError as exc:
                out.append(
                    Outcome(
                        op, "parked", scim_id, status=exc.status, reason=exc.reason, request=None
                    )
                )
                break  # the group's later operations depend on this one
            except ScimConflictError as exc:
                # a 409 on a group create, and no group of that name to link: refused for good
                out.append(Outcome(op, "parked", scim_id, status=exc.status, reason=exc.reason))
                break
            except (ScimTransientError, ScimNotFoundError) as exc:
                out.append(Outcome(op, "failed", scim_id, status=exc.status, reason=exc.reason))
                break
        return out

    @classmethod
    def _resolve_all(cls, members: Iterable[str], user_links: Mapping[str, LinkLike]) -> list[str]:
        """The SCIM ids of members (pending creates resolved, failed ones left out)."""
        out: list[str] = []
        for member in members:
            resolved = cls._resolve(member, user_links)
            if resolved:
                out.append(resolved)
        return out

    @staticmethod
    def _resolve(member: str, user_links: Mapping[str, LinkLike]) -> str | None:
        if member.startswith(PENDING):
            link = user_links.get(member[len(PENDING) :])
            return link.scim_id if link is not None else None
        return member

    def _members(self, group_id: str, action: str, members: list[str]) -> dict[str, Any]:
        """Add or remove members; the body sent (for the audit)."""
        c = self.client
        if c.capabilities.patch:
            if action == "members_add":
                ops = [{"op": "add", "path": "members", "value": [{"value": m} for m in members]}]
            else:  # one operation per member: servers refuse "remove" with a value list
                ops = [{"op": "remove", "path": f'members[value eq "{m}"]'} for m in members]
            c.patch("Groups", group_id, ops)
            return _patch_body(ops)
        current = c.get("Groups", group_id)
        have = [m for m in current.get("members") or [] if m.get("value")]
        ids = {m["value"] for m in have}
        if action == "members_add":
            have += [{"value": m} for m in members if m not in ids]
        else:
            have = [m for m in have if m["value"] not in set(members)]
        body = {k: v for k, v in current.items() if k != "meta"}
        body["members"] = have
        body["id"] = group_id
        c.replace("Groups", group_id, body)
        return body

    # -- running a plan ---------------------------------------------------------------------------
    def apply(self, plan: Plan, *, user_links: Mapping[str, LinkLike] | None = None) -> ApplyResult:
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
                self.store.park(
                    target, kind, okta_id, o.reason, o.request, park_kind=ParkKind.TARGET_ERROR
                )
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
