"""The planner: desired state + state store (+ the target's actual state) → a minimal plan.

Pure functions, no I/O: the same inputs give the same plan, in a deterministic order.

Users are matched by the stored link (Okta id → SCIM id), then by ``externalId`` (the
Okta id), then by ``userName`` compared case-insensitively; a match found that way is
*linked*, never duplicated. With the target's actual state, an update carries only the
attributes that differ (a PATCH where the server supports it, else a PUT of the whole
resource); without it, the hash of what was last pushed decides, and updates are PUTs.
Users that left the desired set are deprovisioned: deactivated (``active: false``) or,
when the target asks for it, deleted; users found in the target that scimflow never
linked and Okta does not have are left alone unless the target's policy says to
deactivate them. Groups are planned after the users' writes, since members are SCIM ids.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = [
    "DEPROVISIONED_HASH",
    "ENTERPRISE",
    "Operation",
    "Plan",
    "fingerprint",
    "plan_groups",
    "plan_users",
    "user_changes",
]

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
DEPROVISIONED_HASH = "deprovisioned"  # the pushed hash of a user scimflow deactivated
PENDING = "pending:"  # a member whose SCIM id is known only once its create has run
MEMBER_BATCH = 100

Action = Literal[
    "create",
    "link",
    "update",
    "deactivate",
    "delete",
    "group_create",
    "group_link",
    "group_update",
    "group_delete",
    "members_add",
    "members_remove",
]


class DesiredUserLike(Protocol):
    @property
    def okta_id(self) -> str: ...

    @property
    def payload(self) -> dict[str, Any]: ...

    @property
    def fingerprint(self) -> str: ...

    @property
    def active(self) -> bool: ...

    @property
    def manager_okta_id(self) -> str | None: ...


class DesiredGroupLike(Protocol):
    @property
    def okta_id(self) -> str: ...

    @property
    def display_name(self) -> str: ...

    @property
    def member_okta_ids(self) -> frozenset[str]: ...


class LinkLike(Protocol):
    @property
    def scim_id(self) -> str: ...

    @property
    def pushed_hash(self) -> str | None: ...


@dataclass(frozen=True)
class Operation:
    """One write to a target, with what it needs and why."""

    action: Action
    kind: Literal["User", "Group"]
    okta_id: str
    scim_id: str | None = None
    payload: dict[str, Any] | None = None
    patch: tuple[dict[str, Any], ...] = ()
    fingerprint: str | None = None
    members: tuple[str, ...] = ()
    reason: str = ""

    @property
    def deprovisions(self) -> bool:
        return self.kind == "User" and self.action in ("deactivate", "delete")


@dataclass(frozen=True)
class Plan:
    target: str
    operations: tuple[Operation, ...]
    managed_users: int = 0
    notes: tuple[str, ...] = field(default=())

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for op in self.operations:
            out[op.action] = out.get(op.action, 0) + 1
        return out

    @property
    def deprovisions(self) -> int:
        return sum(op.deprovisions for op in self.operations)

    def __bool__(self) -> bool:
        return bool(self.operations)


def fingerprint(payload: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a payload."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# -- comparing a desired payload with an actual resource ----------------------------------
_IGNORED = {"schemas", "id", "meta", "groups"}
_MANAGED_USER_ATTRS = (
    "userName",
    "externalId",
    "name",
    "displayName",
    "title",
    "active",
    "emails",
    "phoneNumbers",
)
_MANAGED_ENTERPRISE = (
    "employeeNumber",
    "costCenter",
    "organization",
    "division",
    "department",
    "manager",
)


def _norm_multi(values: Any) -> set[tuple[Any, ...]]:
    out = set()
    for v in values or []:
        if isinstance(v, dict):
            out.add((v.get("type"), str(v.get("value", "")).lower(), bool(v.get("primary", False))))
    return out


def _same(attr: str, desired: Any, actual: Any) -> bool:
    if attr in ("emails", "phoneNumbers"):
        return _norm_multi(desired) == _norm_multi(actual)
    if attr == "userName":
        return isinstance(actual, str) and str(desired).lower() == actual.lower()
    if attr == "manager":
        return (desired or {}).get("value") == (actual or {}).get("value")
    if isinstance(desired, dict):
        actual = actual if isinstance(actual, dict) else {}
        keys = {k for k in set(desired) | set(actual) if k not in ("formatted",)}
        return all(
            desired.get(k) == actual.get(k)
            for k in keys
            if desired.get(k) is not None or k in desired
        )
    return bool(desired == actual) or (desired is None and actual in (None, "", []))


def user_changes(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> list[dict[str, Any]]:
    """PATCH operations turning ``actual`` into ``desired`` for the attributes scimflow manages."""
    ops: list[dict[str, Any]] = []
    for attr in _MANAGED_USER_ATTRS:
        d, a = desired.get(attr), actual.get(attr)
        if d == a or _same(attr, d, a):  # plain equality first: the common, cheap case
            continue
        if d is None:
            ops.append({"op": "remove", "path": attr})
        else:
            ops.append({"op": "replace", "path": attr, "value": d})
    d_ext, a_ext = desired.get(ENTERPRISE) or {}, actual.get(ENTERPRISE) or {}
    if d_ext == a_ext:
        return ops
    for attr in _MANAGED_ENTERPRISE:
        d, a = d_ext.get(attr), a_ext.get(attr)
        if d == a or _same(attr, d, a):
            continue
        path = f"{ENTERPRISE}:{attr}"
        ops.append(
            {"op": "remove", "path": path}
            if d is None
            else {"op": "replace", "path": path, "value": d}
        )
    return ops


def with_manager(
    desired: DesiredUserLike, links: Mapping[str, LinkLike]
) -> tuple[dict[str, Any], str]:
    """The payload with the manager's SCIM id, once the manager is linked in this target."""
    manager = desired.manager_okta_id
    link = links.get(manager) if manager else None
    if link is None:
        return desired.payload, desired.fingerprint
    payload = dict(desired.payload)
    ext = dict(payload.get(ENTERPRISE) or {})
    ext["manager"] = {"value": link.scim_id}
    payload[ENTERPRISE] = ext
    schemas = list(payload.get("schemas") or [])
    if ENTERPRISE not in schemas:
        payload["schemas"] = [*schemas, ENTERPRISE]
    return payload, fingerprint(payload)


def plan_users(
    target: str,
    desired: Mapping[str, DesiredUserLike],
    links: Mapping[str, LinkLike],
    actual: Iterable[Mapping[str, Any]] | None = None,
    *,
    deprovision: Literal["deactivate", "delete"] = "deactivate",
    use_patch: bool = True,
    unmanaged: Literal["ignore", "deactivate"] = "ignore",
) -> Plan:
    """The user operations for one target (see the module docstring for the rules)."""
    ops: list[Operation] = []
    notes: list[str] = []
    by_id: dict[str, Mapping[str, Any]] | None = None
    by_external: dict[str, Mapping[str, Any]] = {}
    by_name: dict[str, Mapping[str, Any]] = {}
    if actual is not None:
        by_id = {}
        for resource in actual:
            by_id[str(resource.get("id"))] = resource
            if resource.get("externalId"):
                by_external[str(resource["externalId"])] = resource
            if resource.get("userName"):
                by_name[str(resource["userName"]).lower()] = resource
    linked_scim_ids = {link.scim_id for link in links.values()}
    claimed: set[str] = set()

    for okta_id in sorted(desired):
        want = desired[okta_id]
        payload, digest = with_manager(want, links)
        link = links.get(okta_id)
        current: Mapping[str, Any] | None = None
        matched = False
        scim_id: str | None = link.scim_id if link else None
        if by_id is not None:
            if scim_id is not None:
                current = by_id.get(scim_id)
                if current is None:
                    notes.append(
                        f"{okta_id}: linked resource {scim_id} is gone from the target: recreate"
                    )
                    scim_id = None
            if scim_id is None:
                match = by_external.get(okta_id) or by_name.get(
                    str(payload.get("userName", "")).lower()
                )
                if match is not None and str(match.get("id")) not in linked_scim_ids - {
                    link.scim_id if link else ""
                }:
                    # found by externalId/userName: linked by the update or link op below
                    current, scim_id, matched = match, str(match.get("id")), True
        if scim_id is not None:
            claimed.add(scim_id)
        if scim_id is None:
            ops.append(
                Operation("create", "User", okta_id, None, payload=payload, fingerprint=digest)
            )
            continue
        if current is not None:
            changes = user_changes(payload, current)
            if not changes:
                if link is None or link.pushed_hash != digest or link.scim_id != scim_id:
                    # equal already: remember the link and hash, so no later plan need read it
                    why = "matched by externalId/userName" if matched else "in sync"
                    ops.append(
                        Operation("link", "User", okta_id, scim_id, fingerprint=digest, reason=why)
                    )
                continue
            paths = ", ".join(str(c["path"]).rsplit(":", 1)[-1] for c in changes)
            if matched:
                paths = f"matched by externalId/userName; {paths}"
            if use_patch:
                ops.append(
                    Operation(
                        "update",
                        "User",
                        okta_id,
                        scim_id,
                        payload=payload,
                        patch=tuple(changes),
                        fingerprint=digest,
                        reason=paths,
                    )
                )
            else:
                ops.append(
                    Operation(
                        "update",
                        "User",
                        okta_id,
                        scim_id,
                        payload=payload,
                        fingerprint=digest,
                        reason=paths,
                    )
                )
        elif link is not None and link.pushed_hash != digest:
            ops.append(
                Operation(
                    "update",
                    "User",
                    okta_id,
                    scim_id,
                    payload=payload,
                    fingerprint=digest,
                    reason="changed since last push",
                )
            )

    # deprovision what left the desired set
    for okta_id in sorted(set(links) - set(desired)):
        link = links[okta_id]
        current = by_id.get(link.scim_id) if by_id is not None else None
        if by_id is not None and current is None:
            continue  # gone from the target already
        if deprovision == "delete":
            ops.append(
                Operation(
                    "delete",
                    "User",
                    okta_id,
                    link.scim_id,
                    reason="left Okta or the target's scope",
                )
            )
            continue
        already = (
            current.get("active") is False
            if current is not None
            else link.pushed_hash == DEPROVISIONED_HASH
        )
        if not already:
            ops.append(
                Operation(
                    "deactivate",
                    "User",
                    okta_id,
                    link.scim_id,
                    fingerprint=DEPROVISIONED_HASH,
                    reason="left Okta or the target's scope",
                )
            )
    if by_id is not None and unmanaged == "deactivate":
        for scim_id in sorted(set(by_id) - claimed - linked_scim_ids):
            resource = by_id[scim_id]
            if resource.get("active") is not False:
                ops.append(
                    Operation(
                        "deactivate",
                        "User",
                        f"unmanaged:{scim_id}",
                        scim_id,
                        reason="in the target but not in Okta",
                    )
                )

    order = {"link": 0, "create": 1, "update": 2, "deactivate": 3, "delete": 4}
    ops.sort(key=lambda op: (order[op.action], op.okta_id))
    managed = len(links) if by_id is None else max(len(links), len(by_id))
    return Plan(target, tuple(ops), managed_users=managed, notes=tuple(notes))


def plan_groups(
    target: str,
    desired: Mapping[str, DesiredGroupLike],
    group_links: Mapping[str, LinkLike],
    user_links: Mapping[str, LinkLike],
    actual: Iterable[Mapping[str, Any]],
    *,
    use_patch: bool = True,
    pending_users: Iterable[str] = (),
) -> Plan:
    """Group creates, renames and deletes, and membership changes in batches.

    ``actual`` is the target's groups with their members (read by SCIM paging).
    ``pending_users`` are Okta ids about to be created (a dry run shows them as members).
    """
    ops: list[Operation] = []
    by_id = {str(g.get("id")): g for g in actual}
    by_name = {str(g.get("displayName")): g for g in by_id.values()}
    pending = set(pending_users)
    linked_ids = {link.scim_id for link in group_links.values()}

    def member_ids(okta_ids: Iterable[str]) -> set[str]:
        out = set()
        for oid in okta_ids:
            link = user_links.get(oid)
            if link is not None and link.pushed_hash != DEPROVISIONED_HASH:
                out.add(link.scim_id)
            elif oid in pending:
                out.add(PENDING + oid)
        return out

    for okta_id in sorted(desired):
        want = desired[okta_id]
        link = group_links.get(okta_id)
        current = by_id.get(link.scim_id) if link else None
        wanted_members = member_ids(want.member_okta_ids)
        if current is None:
            match = by_name.get(want.display_name)
            if match is not None and str(match.get("id")) not in linked_ids:
                current = match
                ops.append(
                    Operation(
                        "group_link",
                        "Group",
                        okta_id,
                        str(match["id"]),
                        reason="matched by displayName",
                    )
                )
        if current is None:
            payload = {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": want.display_name,
                "externalId": okta_id,
                "members": [],
            }
            ops.append(Operation("group_create", "Group", okta_id, None, payload=payload))
            for batch in _batches(sorted(wanted_members)):
                ops.append(Operation("members_add", "Group", okta_id, None, members=batch))
            continue
        scim_id = str(current["id"])
        if current.get("displayName") != want.display_name:
            payload = {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": want.display_name,
                "externalId": okta_id,
            }
            patch = ({"op": "replace", "path": "displayName", "value": want.display_name},)
            ops.append(
                Operation(
                    "group_update",
                    "Group",
                    okta_id,
                    scim_id,
                    payload=payload,
                    patch=patch if use_patch else (),
                    reason="renamed",
                )
            )
        have = {str(m.get("value")) for m in current.get("members") or [] if m.get("value")}
        for batch in _batches(sorted(wanted_members - have)):
            ops.append(Operation("members_add", "Group", okta_id, scim_id, members=batch))
        for batch in _batches(sorted(have - wanted_members)):
            ops.append(Operation("members_remove", "Group", okta_id, scim_id, members=batch))
    for okta_id in sorted(set(group_links) - set(desired)):
        scim_id = group_links[okta_id].scim_id
        if scim_id in by_id:
            ops.append(
                Operation(
                    "group_delete", "Group", okta_id, scim_id, reason="gone from Okta or scope"
                )
            )
    order = {
        "group_link": 0,
        "group_create": 1,
        "group_update": 2,
        "members_add": 3,
        "members_remove": 4,
        "group_delete": 5,
    }
    ops.sort(key=lambda op: (order[op.action], op.okta_id, op.members))
    return Plan(target, tuple(ops), managed_users=0)


def _batches(ids: list[str], size: int = MEMBER_BATCH) -> list[tuple[str, ...]]:
    return [tuple(ids[i : i + size]) for i in range(0, len(ids), size)]
