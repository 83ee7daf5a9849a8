"""The one reconcile engine: make one target equal to the desired Okta state.

Every path calls :func:`reconcile`: the resync (scope :class:`Full`, the whole
directory), a stream batch (scope :class:`Batch`, the batch's users and groups) and
``scimflow sync`` (:class:`Full`). They differ only in how they build the
:class:`~scimflow.scim.desired.Desired` state and in the scope; every rule lives here
once:

1. **Users.** Full: the target's users are read (overlapped with building ``desired``
   when it is given as a function); a server whose pages do not add up to its
   ``totalResults`` is read back by filters on the users scimflow knows instead, never
   taken for a short list. Batch: the target is not read; the hash last pushed decides.
2. **Plan** the users (:func:`~scimflow.scim.plan.plan_users`): bad records (quarantined
   by validation, rejected by the mapping) are *held*, never deprovisioned for being bad.
3. **Deletion guard** (:mod:`scimflow.scim.guard`): proceed, stop (Full) or park the
   deprovisions (Batch), by one rule.
4. **Apply** the users in manager waves (:func:`apply_user_plan`); a batch first removes
   its users deleted from Okta from the target's managed groups.
5. **Groups**, whose members are the group's Okta members that are desired, or held and
   still pushed, or (Batch) users outside the batch that are still pushed. Full reads the
   target's groups; Batch reads the batch's groups one by one.
6. **Park and release.** Bad records are parked with their kind; the scope's parked
   records that were written, or needed no write, are released.

A target that cannot be reached (a transient failure outlasting the client's retries)
raises :class:`~scimflow.errors.TargetUnavailableError` once what was done is saved;
configuration and state-store errors propagate as they are.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from scimflow.errors import (
    DeletionGuardError,
    ScimNotFoundError,
    ScimRejectedError,
    ScimTransientError,
    TargetUnavailableError,
)
from scimflow.scim import guard
from scimflow.scim.apply import ApplyResult, Executor
from scimflow.scim.plan import (
    DEPROVISIONED_HASH,
    LinkLike,
    LinksView,
    Operation,
    Plan,
    managed_view,
    manager_followup,
    member_batches,
    plan_groups,
    plan_users,
    resolve_manager,
)
from scimflow.scim.report import GuardDecision, TargetReport
from scimflow.state.store import ParkKind

if TYPE_CHECKING:
    from scimflow.scim.config import TargetConfig
    from scimflow.scim.desired import Desired
    from scimflow.scim.protocols import Store, TargetClient

__all__ = ["Batch", "Full", "Scope", "apply_user_plan", "park_unavailable", "reconcile"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Full:
    """The whole directory: every user and group of the target is in question."""

    kind: str = field(default="full", init=False)


@dataclass(frozen=True)
class Batch:
    """Only these Okta users and groups are in question (a stream batch)."""

    user_ids: frozenset[str]
    group_ids: frozenset[str]
    kind: str = field(default="batch", init=False)


Scope = Full | Batch


@dataclass(frozen=True)
class Members:
    """A desired group with the members it gets in this target."""

    okta_id: str
    display_name: str
    member_okta_ids: frozenset[str]


def reconcile(
    target_config: TargetConfig,
    desired: Desired | Callable[[], Desired],
    store: Store,
    client: TargetClient,
    *,
    scope: Scope,
    run_id: str,
    cause: str,
    causes: Mapping[str, str] | None = None,
    dry_run: bool = False,
    force: bool = False,
    on_progress: Callable[[str], None] | None = None,
) -> TargetReport:
    """Make one target equal to ``desired`` within ``scope`` (see the module docstring).

    ``cause`` goes into every audit row (``causes`` may give a more precise one per Okta
    id: the event uuids that named it). ``desired`` may be a function, called while the
    target's users are read. ``force`` overrides the deletion guard.
    """
    name = target_config.name
    say = on_progress or (lambda _msg: None)
    report = TargetReport(name, "full" if isinstance(scope, Full) else "batch", dry_run)
    t0 = time.monotonic()
    lap = _stopwatch(report)
    with _reachable(name):
        # 1. the target's users (Full), read while `desired` is built
        reader = ThreadPoolExecutor(1, thread_name_prefix=f"read-{name}")
        reading = None
        if isinstance(scope, Full):
            say(f"{name}: reading users")
            reading = reader.submit(_read_users, client, report)
        try:
            want = desired() if callable(desired) else desired
            lap("desired")
            actual = reading.result() if reading is not None else None
        finally:
            reader.shutdown(wait=False, cancel_futures=True)
        lap("wait_read_users")
        links = store.links(name, "User")
        if actual is None and isinstance(scope, Full):
            actual = _read_back(client, want, links)  # a server whose paging cannot be trusted
        held = set(want.held())

        # 2. plan the users
        view: Mapping[str, LinkLike] = LinksView(
            links, only=scope.user_ids if isinstance(scope, Batch) else None, hold=held
        )
        plan = plan_users(
            name,
            want.users,
            view,
            actual,
            deprovision=target_config.deprovision,
            use_patch=client.capabilities.patch,
            unmanaged=target_config.unmanaged_users if actual is not None else "ignore",
        )
        del actual
        if isinstance(scope, Batch):
            plan = _without_settled_deprovisions(client, plan)
        lap("plan_users")

        # 3. the deletion guard
        decision = guard.decide(
            target_config.deletion_guard,
            plan,
            guard.active_users(links, plan),
            on_exceed="stop" if isinstance(scope, Full) else "park",
            force=force,
        )
        report.guard = decision
        if decision.decision == "stop":
            raise DeletionGuardError(
                name, decision.deprovisions, decision.active_users, decision.max_share
            )
        guarded: list[Operation] = []
        if decision.decision == "park":
            guarded = [op for op in plan.operations if op.deprovisions]
            plan = replace(
                plan, operations=tuple(op for op in plan.operations if not op.deprovisions)
            )
            held |= {op.okta_id for op in guarded}  # left as they are, memberships too
        report.planned.update(plan.counts())
        parked_now = _park_bad(store, want, guarded, decision, report, dry_run=dry_run)

        # 4. apply the users
        executor = Executor(
            client,
            store,
            run_id=run_id,
            cause=cause,
            causes=causes,
            concurrency=target_config.concurrency,
        )
        if dry_run:
            report.plans.append(plan)
        else:
            if isinstance(scope, Batch) and want.deleted_users and decision.decision != "park":
                gone = _gone_memberships(
                    target_config, client, store, want.deleted_users, scope.group_ids
                )
                if gone:
                    report.planned.update(gone.counts())
                    _merge(report, executor.apply(gone, user_links={}))
            if plan:
                say(f"{name}: applying {len(plan.operations)} user operations")
                _merge(
                    report,
                    apply_user_plan(
                        executor,
                        plan,
                        lambda: store.links(name, "User"),
                        use_patch=client.capabilities.patch,
                    ),
                )
        del plan
        lap("apply_users")

        # 5. groups
        if target_config.push_groups and want.groups is not None:
            _groups(
                target_config, want, store, client, executor, scope, held, links, report, lap, say
            )
        del links

        # 6. release what this reconcile settled
        if not dry_run:
            report.released = _release(store, name, scope, want, parked_now, report)
    report.seconds = time.monotonic() - t0
    if not dry_run and (report.writes or report.parked or report.released or report.failed):
        _audit_summary(store, report, run_id=run_id, cause=cause)
    log.info("%s", report.summary())
    if report.failed:
        first = report.failed[0][1]
        raise TargetUnavailableError(
            name,
            f"{len(report.failed)} operations still failing after the client's retries "
            f"(first: {first}); what was applied is saved",
            report=report,
        )
    return report


def _stopwatch(report: TargetReport) -> Callable[[str], None]:
    """``lap(stage)`` adds the seconds since the previous lap to the report's stage."""
    clock = [time.monotonic()]

    def lap(stage: str) -> None:
        now = time.monotonic()
        report.stages[stage] = round(report.stages.get(stage, 0.0) + now - clock[0], 3)
        clock[0] = now

    return lap


@contextmanager
def _reachable(target_name: str) -> Iterator[None]:
    """A transient failure that outlasted the client's retries: the target is unavailable."""
    try:
        yield
    except ScimTransientError as exc:
        raise TargetUnavailableError(target_name, str(exc)) from exc


def _read_users(client: TargetClient, report: TargetReport) -> list[dict[str, Any]] | None:
    """Every user of the target, or None when its pages do not add up (read back later)."""
    from scimflow.errors import ScimIncompleteReadError

    started = time.monotonic()
    try:
        found = [managed_view(r) for r in client.list_resources("Users")]
    except ScimIncompleteReadError as exc:
        log.warning("%s; reading back the users scimflow knows by filter instead", exc)
        return None
    report.stages["read_users"] = round(time.monotonic() - started, 3)
    return found


def _read_back(
    client: TargetClient, want: Desired, links: Mapping[str, LinkLike]
) -> list[dict[str, Any]]:
    """The target's users that matter to the plan, by filtered reads: the desired users
    (by externalId or userName) and the linked ones (by externalId, the Okta id)."""
    keys = [(okta_id, str(u.payload.get("userName", ""))) for okta_id, u in want.users.items()]
    keys += [(okta_id, "") for okta_id in links if okta_id not in want.users]
    return [managed_view(r) for r in client.lookup_users(keys)]


def _without_settled_deprovisions(client: TargetClient, plan: Plan) -> Plan:
    """A batch plans without the target's state: read each user it would deprovision,
    and leave out those already inactive (deactivate) or gone (both), as a full
    reconcile, which reads them all, does. Deprovisions are few; one GET each."""
    keep: list[Operation] = []
    for op in plan.operations:
        if op.deprovisions and op.scim_id is not None:
            try:
                current = client.get("Users", op.scim_id)
            except ScimNotFoundError:
                continue
            if op.action == "deactivate" and current.get("active") is False:
                continue
        keep.append(op)
    if len(keep) == len(plan.operations):
        return plan
    return replace(plan, operations=tuple(keep))


def _park_bad(
    store: Store,
    want: Desired,
    guarded: list[Operation],
    decision: GuardDecision,
    report: TargetReport,
    *,
    dry_run: bool,
) -> set[tuple[str, str]]:
    """Park the bad records and the guarded deprovisions; the (kind, Okta id) parked."""
    name = report.target_name
    parked: set[tuple[str, str]] = set()
    for bad in want.bad:
        if not dry_run:
            store.park(name, bad.kind, bad.okta_id, bad.reason, None, park_kind=bad.park_kind)
        report.park(bad.park_kind)
        parked.add((bad.kind, bad.okta_id))
    if guarded:
        reason = (
            f"deletion guard: a batch would deprovision {decision.deprovisions} of the "
            f"{decision.active_users} active users, more than {decision.max_share:.0%}; "
            "left as is: check Okta, then run okta_resync with force"
        )
        log.warning("%s: %s", name, reason)
        for op in guarded:
            if not dry_run:
                store.park(name, "User", op.okta_id, reason, None, park_kind=ParkKind.GUARD)
            parked.add(("User", op.okta_id))
        report.park(ParkKind.GUARD, len(guarded))
    return parked


def _groups(
    target_config: TargetConfig,
    want: Desired,
    store: Store,
    client: TargetClient,
    executor: Executor,
    scope: Scope,
    held: set[str],
    links_before: Mapping[str, LinkLike],
    report: TargetReport,
    lap: Callable[[str], None],
    say: Callable[[str], None],
) -> None:
    """Plan and apply the groups (step 5 of the module docstring)."""
    name = target_config.name
    assert want.groups is not None
    user_links = store.links(name, "User")

    def pushed(okta_id: str, links: Mapping[str, LinkLike]) -> bool:
        link = links.get(okta_id)
        return link is not None and link.pushed_hash != DEPROVISIONED_HASH

    def is_member(okta_id: str) -> bool:
        if okta_id in want.users:
            return True
        if okta_id in held:  # a held user that was pushed keeps its memberships
            return pushed(okta_id, links_before)
        # outside a batch: what the last push made of it still stands
        return (
            isinstance(scope, Batch)
            and okta_id not in scope.user_ids
            and pushed(okta_id, user_links)
        )

    desired = {
        gid: Members(g.okta_id, g.display_name, frozenset(filter(is_member, g.member_okta_ids)))
        for gid, g in want.groups.items()
    }
    group_links = store.links(name, "Group")
    say(f"{name}: reading groups")
    if isinstance(scope, Full):
        actual = list(client.list_resources("Groups"))
        only = None
    else:
        only = scope.group_ids
        actual = _batch_groups(client, only, group_links, desired)
    lap("read_groups")
    pending = [op.okta_id for p in report.plans for op in p.operations if op.action == "create"]
    gplan = plan_groups(
        name,
        desired,
        LinksView(group_links, only=only, hold=held),
        user_links,
        actual,
        use_patch=client.capabilities.patch,
        pending_users=pending,
    )
    del actual
    lap("plan_groups")
    report.planned.update(gplan.counts())
    if report.dry_run:
        report.plans.append(gplan)
    elif gplan:
        say(f"{name}: applying {len(gplan.operations)} group operations")
        _merge(report, executor.apply(gplan, user_links=user_links))
    lap("apply_groups")


def _batch_groups(
    client: TargetClient,
    group_ids: frozenset[str],
    group_links: Mapping[str, LinkLike],
    desired: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """The target's resources of a batch's groups: by link, else by displayName."""
    out = []
    for gid in sorted(group_ids):
        link = group_links.get(gid)
        found = None
        if link is not None:
            try:
                found = client.get("Groups", link.scim_id)
            except ScimNotFoundError:
                found = None
        if found is None and gid in desired:
            found = client.find_group(desired[gid].display_name)
        if found is not None:
            out.append(found)
    return out


def _gone_memberships(
    target_config: TargetConfig,
    client: TargetClient,
    store: Store,
    deleted: frozenset[str],
    planned_groups: frozenset[str] = frozenset(),
) -> Plan | None:
    """Remove a batch's users deleted from Okta from the target's managed groups (found
    by a ``members.value`` filter: none when the target cannot filter). Okta dropped
    their memberships, and no group event says so. The batch's own groups
    (``planned_groups``) are left to the group plan, which removes them too."""
    if not target_config.push_groups or not client.capabilities.filter:
        return None
    name = target_config.name
    user_links = store.links(name, "User")
    gone = [user_links[u].scim_id for u in sorted(deleted) if u in user_links]
    if not gone:
        return None
    managed = {link.scim_id: okta_id for okta_id, link in store.links(name, "Group").items()}
    leaving: dict[str, list[str]] = {}  # per managed group, its members deleted from Okta
    for scim_id in gone:
        try:
            found = client.groups_with_member(scim_id)
        except (ScimRejectedError, ScimNotFoundError) as exc:
            # a target announcing filters may still refuse this one: the resync repairs
            log.warning("%s: cannot find the groups of deleted members: %s", name, exc)
            return None
        for gid in found:
            if gid in managed and managed[gid] not in planned_groups:
                leaving.setdefault(gid, []).append(scim_id)
    ops = [
        Operation(
            "members_remove",
            "Group",
            managed[gid],
            gid,
            members=batch,
            reason="members deleted from Okta",
        )
        for gid, members in sorted(leaving.items(), key=lambda kv: managed[kv[0]])
        for batch in member_batches(sorted(members))
    ]
    return Plan(name, tuple(ops), managed_users=0) if ops else None


def _release(
    store: Store,
    target_name: str,
    scope: Scope,
    want: Desired,
    parked_now: set[tuple[str, str]],
    report: TargetReport,
) -> int:
    """Release the scope's parked records this reconcile settled: every one not parked
    again now and whose operation did not fail (written, or equal already). Records the
    target refused stay parked until a write of theirs lands (the executor unparks it)."""
    failed = {okta_id for okta_id, _ in report.failed}
    released = 0
    for kind in ("User", "Group"):
        if isinstance(scope, Batch):
            in_scope: set[str] | None = set(scope.user_ids if kind == "User" else scope.group_ids)
        else:
            in_scope = None
        ids = [
            p.okta_id
            for p in store.parked(target_name)
            if p.kind == kind
            and p.park_kind != ParkKind.TARGET_ERROR
            and (in_scope is None or p.okta_id in in_scope)
            and (kind, p.okta_id) not in parked_now
            and p.okta_id not in failed
        ]
        if ids:
            store.unpark(target_name, kind, ids)
            released += len(ids)
    return released


def park_unavailable(store: Store, target_name: str, scope: Batch, reason: str) -> int:
    """Park every entity of a batch for a target that cannot be reached (kind
    ``unavailable``): the other targets go on, the offsets can be committed, and the next
    batches retry them."""
    n = 0
    for kind, ids in (("User", scope.user_ids), ("Group", scope.group_ids)):
        for okta_id in sorted(ids):
            store.park(target_name, kind, okta_id, reason, None, park_kind=ParkKind.UNAVAILABLE)
            n += 1
    return n


def apply_user_plan(
    executor: Executor,
    plan: Plan,
    links: Callable[[], Mapping[str, LinkLike]],
    *,
    use_patch: bool = True,
) -> ApplyResult:
    """Apply a user plan wave by wave; then set the managers a cycle left out.

    Before each wave whose operations wait for a manager created earlier, ``links()``
    (the target's user links, read from the state store) gives the managers' new SCIM
    ids, which :func:`~scimflow.scim.plan.resolve_manager` puts in. An operation still
    without its manager after the last wave (a manager cycle, or a manager whose create
    was parked or failed) gets the one-attribute follow-up update of
    :func:`~scimflow.scim.plan.manager_followup` when its manager exists by then.
    """
    total = ApplyResult(plan.target)
    left_out: list[Operation] = []
    for number, wave in enumerate(plan.waves()):
        if number and any(op.manager is not None for op in wave):
            known = links()
            wave = tuple(resolve_manager(op, known) for op in wave)
            del known
        left_out += [op for op in wave if op.manager is not None]
        total.merge(executor.apply(Plan(plan.target, wave, managed_users=plan.managed_users)))
    if left_out:
        known = links()
        followups = tuple(
            f for op in left_out if (f := manager_followup(op, known, use_patch=use_patch))
        )
        if followups:
            total.merge(executor.apply(Plan(plan.target, followups, plan.managed_users)))
    return total


def _audit_summary(store: Store, report: TargetReport, *, run_id: str, cause: str) -> None:
    """One audit row summarising a reconcile that changed something: its report's counts
    (operation ``reconcile``, kind ``Target``), after the rows of its writes."""
    from scimflow.state.store import TARGET_KIND, AuditEntry

    counts = report.to_xcom()
    summary = {k: counts[k] for k in ("scope", "results", "parked", "released", "guard")}
    store.append_audit(
        [
            AuditEntry(
                run_id=run_id,
                cause=cause,
                target=report.target_name,
                operation="reconcile",
                kind=TARGET_KIND,
                okta_id="*",
                scim_id=None,
                request=None,
                status=None,
                response={**summary, "writes": report.writes, "failed": len(report.failed)},
                outcome="failed" if report.failed else "summary",
            )
        ]
    )


def _merge(report: TargetReport, result: ApplyResult) -> None:
    report.results.update(result.counts)
    report.park(ParkKind.TARGET_ERROR, len(result.parked))
    report.failed += result.failed
