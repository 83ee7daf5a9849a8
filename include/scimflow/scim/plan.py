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

**Managers, in waves.** The enterprise ``manager`` is a SCIM id, which a user created in
the same plan does not have yet. So that a first run writes each user once, creates are
put in *waves*: wave 0 holds every user whose manager is already known in the target
(linked, or matched by externalId/userName) or who has none; wave *n* + 1 the users whose
manager is created in wave *n*. An operation that waits for such a manager names it in
:attr:`Operation.manager`; whoever applies the plan wave by wave
(:func:`scimflow.scim.reconcile.apply_user_plan`) puts the manager's new SCIM id in with
:func:`resolve_manager` just before the wave is sent. A manager cycle (A manages B manages
A) is broken at its smallest Okta id: that user is created in wave 0 without a manager
and gets a one-attribute update once the rest of the cycle exists
(:func:`manager_followup`). A plan applied in one go (ignoring waves) still converges: the
waiting users are written without a manager, and the next plan sets it.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

__all__ = [
    "DEPROVISIONED_HASH",
    "ENTERPRISE",
    "LinksView",
    "Operation",
    "Plan",
    "fingerprint",
    "managed_view",
    "manager_followup",
    "member_batches",
    "plan_groups",
    "plan_users",
    "resolve_manager",
    "user_changes",
]

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
DEPROVISIONED_HASH = "deprovisioned"  # the pushed hash of a user scimflow deactivated
PENDING = "pending:"  # a member whose SCIM id is known only once its create has run
# members per PATCH: removes go one operation per member (servers refuse a value list),
# adds as one operation with a list. A new group's first members go in its POST. (Servers
# may rewrite the whole group on each PATCH: on scim2-server, adding 100,000 members 100 at
# a time is quadratic, about an hour; 1,000 at a time, or in the POST, is seconds.)
MEMBER_BATCH = 100
MEMBER_ADD_BATCH = 1000

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


class LinksView(Mapping[str, Any]):
    """A target's links: every one found by look-up, only some iterated.

    The planners look links up (a manager's SCIM id, a member's SCIM id) and deprovision
    the linked ids they iterate that are not desired. ``only`` restricts the iteration to
    a batch's entities (the stream: every link must be found, only the batch's may be
    deprovisioned); ``hold`` leaves out the ids whose resources stay as they are: records
    quarantined by validation or rejected by the mapping are parked with their reason,
    never deactivated or deleted for being bad.
    """

    def __init__(
        self,
        links: Mapping[str, Any],
        *,
        only: Iterable[str] | None = None,
        hold: Iterable[str] = (),
    ) -> None:
        self._links = links
        held = set(hold)
        keys = links if only is None else (k for k in dict.fromkeys(only) if k in links)
        self._keys = [k for k in keys if k not in held]

    def __getitem__(self, key: str) -> Any:
        return self._links[key]

    def __contains__(self, key: object) -> bool:
        return key in self._links

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def everything(self) -> Mapping[str, Any]:
        """Every link, the ones this view does not iterate too."""
        return self._links

    def __len__(self) -> int:
        return len(self._keys)


def _all_links(links: Mapping[str, Any]) -> Mapping[str, Any]:
    """Every link behind a :class:`LinksView` (which iterates some only)."""
    return links.everything() if isinstance(links, LinksView) else links


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
    # the order of application: an operation may need the SCIM id an earlier wave creates
    wave: int = 0
    # the Okta id of a manager created in this plan, whose SCIM id goes into the payload
    # (resolve_manager) before the operation is sent; None once resolved, or if not needed
    manager: str | None = None

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

    def waves(self) -> list[tuple[Operation, ...]]:
        """The operations by wave, in order: a wave needs the SCIM ids earlier ones create."""
        out: dict[int, list[Operation]] = {}
        for op in self.operations:
            out.setdefault(op.wave, []).append(op)
        return [tuple(out[w]) for w in sorted(out)]

    def __bool__(self) -> bool:
        return bool(self.operations)


def fingerprint(payload: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a payload."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# -- comparing a desired payload with an actual resource ----------------------------------
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


_KEPT = frozenset(("id", *_MANAGED_USER_ATTRS, ENTERPRISE))


def managed_view(resource: Mapping[str, Any]) -> dict[str, Any]:
    """What the planner reads of a target's user: its id and the attributes scimflow manages.

    A resync holds every user of the target at once; leaving out ``meta``, ``groups``
    and whatever else the server sends keeps that to about half the memory.
    """
    out = {k: v for k, v in resource.items() if k in _KEPT}
    ext = out.get(ENTERPRISE)
    if isinstance(ext, dict):
        kept = {k: ext[k] for k in _MANAGED_ENTERPRISE if k in ext}
        manager = kept.get("manager")
        if isinstance(manager, dict):
            kept["manager"] = {"value": manager.get("value")}
        out[ENTERPRISE] = kept
    return out


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


MANAGER_PATH = f"{ENTERPRISE}:manager"


def _put_manager(payload: Mapping[str, Any], manager_scim_id: str) -> dict[str, Any]:
    """A copy of ``payload`` whose enterprise ``manager`` is ``manager_scim_id``."""
    out = dict(payload)
    ext = dict(out.get(ENTERPRISE) or {})
    ext["manager"] = {"value": manager_scim_id}
    out[ENTERPRISE] = ext
    schemas = list(out.get("schemas") or [])
    if ENTERPRISE not in schemas:
        out["schemas"] = [*schemas, ENTERPRISE]
    return out


def with_manager(
    desired: DesiredUserLike, links: Mapping[str, LinkLike]
) -> tuple[dict[str, Any], str]:
    """The payload with the manager's SCIM id, once the manager is linked in this target."""
    manager = desired.manager_okta_id
    link = links.get(manager) if manager else None
    if link is None:
        return desired.payload, desired.fingerprint
    payload = _put_manager(desired.payload, link.scim_id)
    return payload, fingerprint(payload)


def resolve_manager(op: Operation, links: Mapping[str, LinkLike]) -> Operation:
    """``op`` with its waiting manager's SCIM id put in, once the manager is linked.

    A create or update whose :attr:`Operation.manager` has a link now gets the manager in
    its payload (and PATCH), and the fingerprint of what it will write. Otherwise ``op``
    is returned as it is (its manager's create failed or has not run): it is written
    without the manager, and :func:`manager_followup` or the next plan sets it.
    """
    if op.manager is None or op.action not in ("create", "update") or op.payload is None:
        return op
    link = links.get(op.manager)
    if link is None:
        return op
    payload = _put_manager(op.payload, link.scim_id)
    patch = op.patch
    if patch:
        patch = (
            *(c for c in patch if c.get("path") != MANAGER_PATH),
            {"op": "replace", "path": MANAGER_PATH, "value": {"value": link.scim_id}},
        )
    return replace(op, payload=payload, patch=patch, fingerprint=fingerprint(payload), manager=None)


def manager_followup(
    op: Operation, links: Mapping[str, LinkLike], *, use_patch: bool = True
) -> Operation | None:
    """The update that sets the manager of a user written without it (a manager cycle).

    ``op`` is an operation that was applied with its manager still waiting (its
    :attr:`Operation.manager` is set). Only when that write landed (the user's link holds
    ``op``'s fingerprint) and the manager is linked now: the update sets the manager alone
    (a one-attribute PATCH, else a PUT of the whole payload), with the fingerprint of the
    whole resulting payload. Else None: the next plan sees what is left to do.
    """
    if op.manager is None or op.payload is None or op.kind != "User":
        return None
    own, boss = links.get(op.okta_id), links.get(op.manager)
    if own is None or boss is None or own.pushed_hash != op.fingerprint:
        return None
    payload = _put_manager(op.payload, boss.scim_id)
    change = {"op": "replace", "path": MANAGER_PATH, "value": {"value": boss.scim_id}}
    return Operation(
        "update",
        "User",
        op.okta_id,
        own.scim_id,
        payload=payload,
        patch=(change,) if use_patch else (),
        fingerprint=fingerprint(payload),
        reason="manager (created after this user in the same run)",
    )


def _create_waves(
    desired: Mapping[str, DesiredUserLike], creating: set[str]
) -> tuple[dict[str, int], set[str]]:
    """The wave of each user to create, and the users where a manager cycle is broken.

    Wave 0: no manager among the users to create; else the manager's wave + 1. Each user
    has one manager, so each cycle is a simple loop: it is broken at its smallest Okta id,
    which goes in wave 0 (created without its manager, set later by a follow-up update).
    """
    wave: dict[str, int] = {}
    broken: set[str] = set()

    def boss(okta_id: str) -> str | None:
        manager = desired[okta_id].manager_okta_id
        return manager if manager is not None and manager in creating else None

    for start in creating:
        node, seen = start, set()
        while node not in wave:
            if node in seen:  # went round a loop: break it, deterministically
                cycle, step = [node], boss(node)
                while step is not None and step != node:
                    cycle.append(step)
                    step = boss(step)
                first = min(cycle)
                wave[first] = 0
                broken.add(first)
                break
            seen.add(node)
            up = boss(node)
            if up is None:
                wave[node] = 0
                break
            node = up
        chain, cursor = [], start
        while cursor not in wave:
            chain.append(cursor)
            up = boss(cursor)
            assert up is not None  # every walk ends at a node with a wave (set above)
            cursor = up
        level = wave[cursor]
        for okta_id in reversed(chain):
            level += 1
            wave[okta_id] = level
    return wave, broken


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
    with _gc_paused():
        return _plan_users(target, desired, links, actual, deprovision, use_patch, unmanaged)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cycle collector while a plan builds up.

    A plan allocates a few objects per user and no cycles; over a heap that holds every
    desired and actual user, the collector's full passes cost as much as the plan itself
    (1,000,000 users: 4.9 s with it, 2.4 s without).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _Actual:
    """The target's users, indexed three ways (None: the target was not read)."""

    def __init__(self, actual: Iterable[Mapping[str, Any]] | None) -> None:
        self.read = actual is not None
        self.by_id: dict[str, Mapping[str, Any]] = {}
        self.by_external: dict[str, Mapping[str, Any]] = {}
        self.by_name: dict[str, Mapping[str, Any]] = {}
        for resource in actual or ():
            self.by_id[str(resource.get("id"))] = resource
            if resource.get("externalId"):
                self.by_external[str(resource["externalId"])] = resource
            if resource.get("userName"):
                self.by_name[str(resource["userName"]).lower()] = resource


# Which resource a desired user is: (Okta id, its link, the resource read, its SCIM id or
# None to create it, whether it was matched by externalId/userName rather than by link).
# A plain tuple: a plan builds one per desired user.
_Found = tuple[str, "LinkLike | None", "Mapping[str, Any] | None", "str | None", bool]


def _plan_users(
    target: str,
    desired: Mapping[str, DesiredUserLike],
    links: Mapping[str, LinkLike],
    actual: Iterable[Mapping[str, Any]] | None,
    deprovision: Literal["deactivate", "delete"],
    use_patch: bool,
    unmanaged: Literal["ignore", "deactivate"],
) -> Plan:
    notes: list[str] = []
    index = _Actual(actual)
    # whose each linked resource is (every link, not only those a view iterates)
    owner = {link.scim_id: okta_id for okta_id, link in _all_links(links).items()}
    # 1. which resource each desired user is (its SCIM id), or that it must be created
    if index.read:
        found = [_find(okta_id, desired, links, index, owner, notes) for okta_id in sorted(desired)]
    else:  # the link alone says (the common case of a batch: kept inline, one per user)
        found = [
            (okta_id, link, None, link.scim_id if link else None, False)
            for okta_id in sorted(desired)
            for link in (links.get(okta_id),)
        ]
    scim_ids = {f[0]: f[3] for f in found}
    claimed = {scim_id for scim_id in scim_ids.values() if scim_id is not None}
    # 2. creates in waves, so that a manager's SCIM id exists before its reports are written
    creating = {okta_id for okta_id, scim_id in scim_ids.items() if scim_id is None}
    waves, _broken = _create_waves(desired, creating) if creating else ({}, set())
    # 3. the operations
    ops = [
        op
        for f in found
        if not _unchanged(f, desired[f[0]])
        and (op := _user_op(f, desired[f[0]], links, scim_ids, creating, waves, use_patch))
    ]
    ops += _deprovisions(links, desired, claimed, index, deprovision, notes)
    if index.read and unmanaged == "deactivate":
        ops += _unmanaged(index, claimed, owner)
    order = {"link": 0, "create": 1, "update": 2, "deactivate": 3, "delete": 4}
    ops.sort(key=lambda op: (op.wave, order[op.action], op.okta_id))
    managed = len(links) if not index.read else max(len(links), len(index.by_id))
    return Plan(target, tuple(ops), managed_users=managed, notes=tuple(notes))


def _unchanged(f: _Found, want: DesiredUserLike) -> bool:
    """Linked, not read, no manager to resolve, and its hash is what was last pushed: the
    most common user of a batch, settled without building its operation."""
    link = f[1]
    return (
        f[2] is None
        and f[3] is not None  # not a (re)create: its resource is known
        and link is not None
        and want.manager_okta_id is None
        and link.pushed_hash == want.fingerprint
    )


def _find(
    okta_id: str,
    desired: Mapping[str, DesiredUserLike],
    links: Mapping[str, LinkLike],
    index: _Actual,
    owner: Mapping[str, str],
    notes: list[str],
) -> _Found:
    """With the target's state: by link, then by externalId, then userName: a match that
    no other desired user owns is linked, never duplicated. (One that left Okta gives its
    account up: a user deleted and rehired under a new id with the same login.)"""
    link = links.get(okta_id)
    scim_id = link.scim_id if link else None
    current: Mapping[str, Any] | None = None
    if scim_id is not None:
        current = index.by_id.get(scim_id)
        if current is not None:
            return (okta_id, link, current, scim_id, False)
        notes.append(f"{okta_id}: linked resource {scim_id} is gone from the target: recreate")
    user_name = str(desired[okta_id].payload.get("userName", "")).lower()
    match = index.by_external.get(okta_id) or index.by_name.get(user_name)
    if match is not None:
        match_id = str(match.get("id"))
        if match_id not in owner or owner[match_id] == okta_id or owner[match_id] not in desired:
            return (okta_id, link, match, match_id, True)
    return (okta_id, link, None, None, False)


def _user_op(
    f: _Found,
    want: DesiredUserLike,
    links: Mapping[str, LinkLike],
    scim_ids: Mapping[str, str | None],
    creating: set[str],
    waves: Mapping[str, int],
    use_patch: bool,
) -> Operation | None:
    """The one operation a desired user needs, if any: create, link or update."""
    okta_id, link, current, scim_id, matched = f
    manager = want.manager_okta_id
    waiting: str | None = None  # a manager created in this plan
    wave = 0
    payload, digest = want.payload, want.fingerprint
    if manager is not None:
        if manager in creating:
            waiting = manager
            wave = waves[okta_id] if okta_id in creating else waves[manager] + 1
        else:
            manager_link = links.get(manager)  # a manager out of scope may be linked
            fallback = manager_link.scim_id if manager_link else None
            manager_id = scim_ids.get(manager, fallback)
            if manager_id is not None:
                payload = _put_manager(want.payload, manager_id)
                digest = fingerprint(payload)
    if scim_id is None:
        return Operation(
            "create",
            "User",
            okta_id,
            None,
            payload=payload,
            fingerprint=digest,
            wave=wave,
            manager=waiting,
        )
    if current is not None:
        changes = user_changes(payload, current)
        if not changes:
            if (
                link is None
                or link.pushed_hash != digest
                or link.scim_id != scim_id
                or waiting is not None
            ):
                # equal already: remember the link and hash, so no later plan need read
                # it (with a waiting manager: the follow-up update sets the manager)
                return Operation(
                    "link",
                    "User",
                    okta_id,
                    scim_id,
                    payload=payload if waiting else None,
                    fingerprint=digest,
                    reason="matched by externalId/userName" if matched else "in sync",
                    wave=wave,
                    manager=waiting,
                )
            return None
        paths = ", ".join(str(c["path"]).rsplit(":", 1)[-1] for c in changes)
        if matched:
            paths = f"matched by externalId/userName; {paths}"
        return Operation(
            "update",
            "User",
            okta_id,
            scim_id,
            payload=payload,
            patch=tuple(changes) if use_patch else (),
            fingerprint=digest,
            reason=paths,
            wave=wave,
            manager=waiting,
        )
    if link is not None and (link.pushed_hash != digest or waiting is not None):
        changed = link.pushed_hash != digest
        return Operation(
            "update" if changed else "link",
            "User",
            okta_id,
            scim_id,
            payload=payload,
            fingerprint=digest,
            reason="changed since last push" if changed else "manager created in this plan",
            wave=wave,
            manager=waiting,
        )
    return None


def _deprovisions(
    links: Mapping[str, LinkLike],
    desired: Mapping[str, DesiredUserLike],
    claimed: set[str],
    index: _Actual,
    deprovision: Literal["deactivate", "delete"],
    notes: list[str],
) -> list[Operation]:
    """Deactivate (or delete) the linked users that left the desired set."""
    ops: list[Operation] = []
    for okta_id in sorted(set(links) - set(desired)):
        link = links[okta_id]
        if link.scim_id in claimed:
            notes.append(f"{okta_id}: its resource {link.scim_id} is another user's now")
            continue
        current = index.by_id.get(link.scim_id) if index.read else None
        if index.read and current is None:
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
    return ops


def _unmanaged(index: _Actual, claimed: set[str], owner: Mapping[str, str]) -> list[Operation]:
    """Deactivate the target's active users that scimflow never linked and Okta lacks."""
    return [
        Operation(
            "deactivate",
            "User",
            f"unmanaged:{scim_id}",
            scim_id,
            reason="in the target but not in Okta",
        )
        for scim_id in sorted(set(index.by_id) - claimed - set(owner))
        if index.by_id[scim_id].get("active") is not False
    ]


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
            first, *rest = member_batches(sorted(wanted_members), MEMBER_ADD_BATCH) or [()]
            ops.append(
                Operation("group_create", "Group", okta_id, None, payload=payload, members=first)
            )
            for batch in rest:
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
        for batch in member_batches(sorted(wanted_members - have), MEMBER_ADD_BATCH):
            ops.append(Operation("members_add", "Group", okta_id, scim_id, members=batch))
        for batch in member_batches(sorted(have - wanted_members)):
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


def member_batches(ids: list[str], size: int = MEMBER_BATCH) -> list[tuple[str, ...]]:
    """``ids`` in batches of ``size``: the members one operation adds or removes."""
    return [tuple(ids[i : i + size]) for i in range(0, len(ids), size)]
