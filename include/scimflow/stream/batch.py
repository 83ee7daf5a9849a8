"""One micro-batch of Okta events, from changes to every target.

Stages hand each other a run-scoped folder (like the resync's snapshot), never
DataFrames through XCom; what they return is small and holds ids and counts only:

1. :func:`save_changes`: the batch's routed changes (ids, types, times: no values).
2. :func:`hydrate`: dedupe by event uuid and entity; read the current state of every
   named user and group from Okta (the events only say *what* changed); add the
   records parked earlier because a target was unavailable, so they are retried;
   validate with great-expectations in partial mode; quarantine what fails.
3. :func:`apply_to_target`: per target, plan only the batch's entities against the
   state store's links (no full read of the target) and apply. If the target cannot be
   reached on the task's last try, every entity of the batch is parked for that target
   with the reason, so the others go on and the offsets can be committed.
4. :func:`finish`: remember the events' uuids (for the System Log catch-up), then commit
   the Kafka offsets. Run only when every target's effect is durable.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from scimflow.errors import ScimflowError
from scimflow.stream.events import Change

__all__ = [
    "UNAVAILABLE",
    "apply_to_target",
    "batch_dir",
    "finish",
    "hydrate",
    "load_changes",
    "save_changes",
]

log = logging.getLogger(__name__)

CHANGES = "changes.json"
QUARANTINE = "quarantine.json"
CAUSES = "causes.json"
# the reason prefix of records parked because their target could not be written to
UNAVAILABLE = "target unavailable"
# events after which a user's groups join the batch (see hydrate)
LIFECYCLE = "user.lifecycle."
# a batch of more users than this reads the scope groups' members instead of each user's
# groups, for targets scoped by group
SCOPE_BY_USER_MAX = 100
# parked-while-unavailable records retried per batch, oldest first
RETRY_PARKED_MAX = 1000


def batch_dir(base: str | None, run_id: str) -> Path:
    """The run-scoped folder of one batch (beside the resync snapshots)."""
    from scimflow.resync import snapshot_dir

    return snapshot_dir(base, run_id).parent.parent / "batches" / snapshot_dir(base, run_id).name


def save_changes(run_dir: Path, changes: Iterable[Change], offsets: Mapping[int, int]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / CHANGES
    path.write_text(
        json.dumps(
            {
                "offsets": {str(p): o for p, o in offsets.items()},
                "changes": [c.__dict__ for c in changes],
            }
        ),
        encoding="utf-8",
    )
    return path


def load_changes(run_dir: Path) -> tuple[list[Change], dict[int, int]]:
    data = json.loads((run_dir / CHANGES).read_text(encoding="utf-8"))
    changes = [
        Change(**{**c, "user_ids": tuple(c["user_ids"]), "group_ids": tuple(c["group_ids"])})
        for c in data["changes"]
    ]
    return changes, {int(p): int(o) for p, o in data["offsets"].items()}


def _causes(changes: Iterable[Change]) -> dict[str, str]:
    """Per Okta id, the audit cause: the uuids of the events that named it."""
    named: dict[str, list[str]] = {}
    for c in changes:
        for okta_id in (*c.user_ids, *c.group_ids):
            uuids = named.setdefault(okta_id, [])
            if c.uuid not in uuids:
                uuids.append(c.uuid)
    return {okta_id: "okta-event:" + ",".join(u) for okta_id, u in named.items()}


def hydrate(config: Any, run_dir: Path, *, store: Any = None) -> dict[str, Any]:
    """Stage 2 (see the module docstring): write the batch's current Okta state."""
    from scimflow.okta.source import (
        OktaSettings,
        OktaSource,
        groups_frame,
        memberships_frame,
        users_frame,
    )
    from scimflow.quality import validate_export
    from scimflow.state.store import StateStore

    t0 = time.monotonic()
    changes, _ = load_changes(run_dir)
    unique = list({c.uuid: c for c in changes}.values())
    users = list(dict.fromkeys(u for c in unique for u in c.user_ids))
    groups = list(dict.fromkeys(g for c in unique for g in c.group_ids))
    causes = _causes(unique)

    own = store is None
    store = store or StateStore(config.state.resolved_url())
    try:
        if own:
            store.migrate()
        retry = sorted(
            (p for p in store.parked() if p.reason.startswith(UNAVAILABLE)),
            key=lambda p: p.first_parked_at,
        )[:RETRY_PARKED_MAX]
    finally:
        if own:
            store.close()
    for p in retry:
        (users if p.kind == "User" else groups).append(p.okta_id)
        causes.setdefault(p.okta_id, f"retry-parked:{p.target}")
    users = list(dict.fromkeys(users))
    groups = list(dict.fromkeys(groups))
    earliest = min((c.published for c in unique), default=None)
    # a user whose status changed may enter or leave the scope of a target that keeps
    # some statuses only, and with it the members of its groups (a leaver must leave them
    # now, not at the next resync): those groups join the batch. (A target keeping every
    # status keeps a deactivated user in its groups, inactive, as Okta does.)
    lifecycle = list(
        dict.fromkeys(u for c in unique if c.event_type.startswith(LIFECYCLE) for u in c.user_ids)
    )
    scoped_by_status = any(t.push_groups and t.scope.statuses for t in config.targets)

    settings = OktaSettings(org_url=str(config.okta.org_url), token=config.okta.token.resolve())

    scope_names = {name for t in config.targets for name in t.scope.groups}
    u_frame, g_frame = users_frame([]), groups_frame([])
    m_frame = um_frame = memberships_frame([])
    sg_frame = groups_frame([])
    requests = 0

    async def read() -> None:
        nonlocal u_frame, g_frame, m_frame, um_frame, sg_frame, requests
        async with OktaSource(settings) as source:
            r0 = source.pacer.requests
            u_frame = await source.hydrate_users(users, changed_since=earliest)
            every_group = False  # whether um_frame holds all of each user's groups
            if scope_names and users:
                # whether a changed user is in a target's scope: its scope groups, by name
                scope = [g for g in await source.list_groups() if g.get("name") in scope_names]
                sg_frame = groups_frame(scope)
                if len(users) <= SCOPE_BY_USER_MAX:
                    um_frame = await source.user_group_memberships(users)  # a request a user
                    every_group = True
                else:
                    # many users (a burst): the scope groups' member lists cost fewer
                    # requests than one a user (10,000 users: minutes at Okta's limits)
                    wanted, ids = set(users), [str(g["id"]) for g in scope]
                    lists = await asyncio.gather(*(source.group_member_ids(g) for g in ids))
                    um_frame = memberships_frame(
                        [
                            {"group_id": gid, "user_id": uid}
                            for gid, members in zip(ids, lists, strict=True)
                            for uid in members
                            if uid in wanted
                        ]
                    )
            if lifecycle and scoped_by_status:
                of_lifecycle = (
                    um_frame[um_frame["user_id"].isin(lifecycle)]
                    if every_group
                    else await source.user_group_memberships(lifecycle)
                )
                groups.extend(g for g in dict.fromkeys(of_lifecycle["group_id"]) if g not in groups)
            g_frame, m_frame = await source.hydrate_groups(groups)
            requests = source.pacer.requests - r0

    if users or groups:
        asyncio.run(read())
    run_dir.mkdir(parents=True, exist_ok=True)
    sg_frame.to_parquet(run_dir / "scope_groups.parquet", index=False)
    u_frame.to_parquet(run_dir / "users.parquet", index=False)
    g_frame.to_parquet(run_dir / "groups.parquet", index=False)
    m_frame.to_parquet(run_dir / "memberships.parquet", index=False)
    um_frame.to_parquet(run_dir / "user_groups.parquet", index=False)
    report = run_dir / "data-quality.md"
    quality = validate_export(
        u_frame, g_frame, m_frame, max_failed_share=1.0, report=report, partial=True
    )
    (run_dir / QUARANTINE).write_text(
        json.dumps({"users": quality.quarantined_users, "groups": quality.quarantined_groups}),
        encoding="utf-8",
    )
    (run_dir / CAUSES).write_text(json.dumps(causes), encoding="utf-8")
    return {
        "events": len(changes),
        "unique_events": len(unique),
        "users": len(u_frame),
        "groups": len(g_frame),
        "lifecycle_users": len(lifecycle) if scoped_by_status else 0,
        "retried_parked": len(retry),
        "deleted_users": int(u_frame["deleted"].fillna(False).astype(bool).sum())
        if len(u_frame)
        else 0,
        "quarantined_users": len(quality.quarantined_users),
        "quarantined_groups": len(quality.quarantined_groups),
        "okta_requests": requests,
        "report": str(report),
        "seconds": round(time.monotonic() - t0, 2),
    }


def _frames(run_dir: Path) -> dict[str, pd.DataFrame]:
    return {
        name: pd.read_parquet(run_dir / f"{name}.parquet")
        for name in ("users", "groups", "memberships", "user_groups", "scope_groups")
    }


def plan_batch(
    config: Any,
    frames: Mapping[str, pd.DataFrame],
    store: Any,
    target: Any,
    *,
    quarantined: Mapping[str, Any],
) -> tuple[Any, Any, dict[str, str]]:
    """The user plan and a function giving the group plan (after users are applied)."""
    from scimflow.scim.mapping import in_scope_users, map_users
    from scimflow.scim.plan import LinksView, plan_users

    users = frames["users"]
    users = users[~users["id"].isin(set(quarantined.get("users", {})))]
    all_groups = frames["groups"]
    memberships = pd.concat([frames["memberships"], frames["user_groups"]], ignore_index=True)
    # the scope's groups by name (read by hydrate when a target is scoped by group)
    scope_groups = pd.concat([all_groups, frames["scope_groups"]], ignore_index=True)
    scope_ids = in_scope_users(users, memberships, scope_groups, config.scope)
    mapped = map_users(users[users["id"].isin(list(scope_ids))], config)
    links = store.links(config.name, "User")
    batch_users = [str(u) for u in users["id"]]
    plan = plan_users(
        config.name,
        mapped.users,
        # a record the mapping rejected is parked; its user stays as it is
        LinksView(links, only=batch_users, hold=mapped.rejected),
        None,
        deprovision=config.deprovision,
        use_patch=target.capabilities.patch,
    )
    return plan, mapped, dict(mapped.rejected)


def apply_to_target(
    config: Any,
    target_name: str,
    run_dir: Path,
    *,
    run_id: str,
    last_try: bool = True,
    store: Any = None,
) -> dict[str, Any]:
    """Stage 3 (see the module docstring) for one target."""
    from scimflow.scim.apply import Executor
    from scimflow.scim.mapping import map_groups
    from scimflow.scim.plan import DEPROVISIONED_HASH, LinksView, plan_groups
    from scimflow.scim.sync import apply_user_plan, open_target
    from scimflow.state.store import StateStore

    targets = {t.name: t for t in config.targets}
    if target_name not in targets:
        raise ScimflowError(f"no target named {target_name!r} in the configuration")
    tconf = targets[target_name]
    t0 = time.monotonic()
    frames = _frames(run_dir)
    quarantined = json.loads((run_dir / QUARANTINE).read_text(encoding="utf-8"))
    causes = json.loads((run_dir / CAUSES).read_text(encoding="utf-8"))
    own = store is None
    store = store or StateStore(config.state.resolved_url())
    summary: dict[str, Any] = {"target": target_name, "applied": {}, "parked": 0, "failed": 0}
    target = None
    try:
        if own:
            store.migrate()
        for okta_id, reasons in quarantined.get("users", {}).items():
            if not okta_id.startswith("row:"):
                store.park(target_name, "User", okta_id, "validation: " + "; ".join(reasons), None)
                summary["parked"] += 1
        try:
            target = open_target(tconf)
            executor = Executor(
                target,
                store,
                run_id=run_id,
                cause=f"okta-events:{run_id}",
                causes=causes,
                concurrency=tconf.concurrency,
                requests_per_second=tconf.requests_per_second,
            )
            plan, mapped, rejected = plan_batch(
                tconf, frames, store, target, quarantined=quarantined
            )
            for okta_id, reason in rejected.items():
                store.park(target_name, "User", okta_id, f"mapping: {reason}", None)
                summary["parked"] += 1
            plan, guarded = _deletion_guard(plan, tconf, store)
            summary["parked"] += guarded
            summary["held_by_deletion_guard"] = guarded
            results = []
            # users deleted from Okta: Okta dropped their memberships, and no group event
            # says so; the managed groups of the target still listing them lose them now
            gone = None if guarded else _gone_memberships(tconf, target, store, frames["users"])
            if gone:
                results.append(executor.apply(gone, user_links={}))
            if plan:
                # in waves: a user created with its new manager in the same batch carries
                # the manager's SCIM id in its one create
                results.append(
                    apply_user_plan(
                        executor,
                        plan,
                        lambda: store.links(target_name, "User"),
                        use_patch=target.capabilities.patch,
                    )
                )
            user_links = store.links(target_name, "User")
            groups = frames["groups"]
            groups = groups[~groups["id"].isin(set(quarantined.get("groups", {})))]
            if tconf.push_groups and len(groups):
                in_scope = {
                    k for k, link in user_links.items() if link.pushed_hash != DEPROVISIONED_HASH
                } | set(mapped.users)
                desired = map_groups(groups, frames["memberships"], in_scope, tconf)
                group_links = store.links(target_name, "Group")
                batch_groups = [str(g) for g in groups["id"]]
                actual = []
                for gid in batch_groups:
                    link = group_links.get(gid)
                    found = _get_group(target, link.scim_id) if link else None
                    if found is None and gid in desired:
                        found = target.find_group(desired[gid].display_name)
                    if found is not None:
                        actual.append(found)
                gplan = plan_groups(
                    target_name,
                    desired,
                    LinksView(group_links, only=batch_groups),
                    user_links,
                    actual,
                    use_patch=target.capabilities.patch,
                )
                if gplan:
                    results.append(executor.apply(gplan, user_links=user_links))
            failed: list[tuple[str, str]] = [f for r in results for f in r.failed]
            for r in results:
                for key, n in r.counts.items():
                    summary["applied"][key] = summary["applied"].get(key, 0) + n
                summary["parked"] += len(r.parked)
            if failed:
                raise ScimflowError(
                    f"{target_name}: {len(failed)} operations still failing after retries "
                    f"(first: {failed[0][1]})"
                )
            summary["released"] = _release_unavailable(store, target_name, frames)
        except ScimflowError as exc:
            if not last_try:
                raise
            n = _park_batch(store, target_name, frames, f"{UNAVAILABLE}: {exc}")
            log.warning("%s: parked the batch's %d records: %s", target_name, n, exc)
            summary["parked"] += n
            summary["unavailable"] = str(exc)
    finally:
        if target is not None:
            target.close()
        if own:
            store.close()
    summary["writes"] = sum(n for k, n in summary["applied"].items() if not k.startswith("link"))
    summary["seconds"] = round(time.monotonic() - t0, 2)
    return summary


# the reason prefix of users a batch's deletion guard held back (not retried by batches)
GUARDED = "deletion guard"


def _deletion_guard(plan: Any, tconf: Any, store: Any) -> tuple[Any, int]:
    """The target's deletion guard, per batch: when a batch would deprovision more than
    ``deletion_guard.max_share`` of the target's linked users (with at least
    ``min_users`` of them), those deprovisions are not sent but parked with the reason;
    the batch's other changes go on. A forced ``okta_resync`` applies them once checked.
    """
    from dataclasses import replace

    from scimflow.scim.sync import exceeds_deletion_guard

    guard = tconf.deletion_guard
    n = plan.deprovisions
    if not n:
        return plan, 0
    linked = store.count_links(tconf.name, "User")
    if not exceeds_deletion_guard(guard, n, linked):
        return plan, 0
    reason = (
        f"{GUARDED}: a batch would deprovision {n} of the {linked} linked users, more than "
        f"{guard.max_share:.0%}; left as is: check Okta, then run okta_resync with force"
    )
    for op in plan.operations:
        if op.deprovisions:
            store.park(tconf.name, "User", op.okta_id, reason, None)
    log.warning("%s: %s", tconf.name, reason)
    kept = tuple(op for op in plan.operations if not op.deprovisions)
    return replace(plan, operations=kept), n


def _gone_memberships(tconf: Any, target: Any, store: Any, users: pd.DataFrame) -> Any:
    """A plan removing the batch's users deleted from Okta from the target's managed
    groups (found by a ``members.value`` filter: none when the target cannot filter)."""
    from scimflow.errors import ScimNotFoundError, ScimRejectedError
    from scimflow.scim.plan import Operation, Plan

    if not tconf.push_groups or not target.capabilities.filter or not len(users):
        return None
    deleted = users.loc[users["deleted"].fillna(False).astype(bool), "id"]
    if deleted.empty:  # most batches: no link to read
        return None
    user_links = store.links(tconf.name, "User")
    gone = [user_links[u].scim_id for u in deleted.astype(str) if u in user_links]
    if not gone:
        return None
    managed = {link.scim_id: okta_id for okta_id, link in store.links(tconf.name, "Group").items()}
    ops = []
    for scim_id in gone:
        try:
            found = target.groups_with_member(scim_id)
        except (ScimRejectedError, ScimNotFoundError) as exc:
            # a target announcing filters may still refuse this one: the resync repairs
            log.warning("%s: cannot find the groups of deleted members: %s", tconf.name, exc)
            return None
        ops += [
            Operation(
                "members_remove",
                "Group",
                managed[gid],
                gid,
                members=(scim_id,),
                reason="member deleted from Okta",
            )
            for gid in found
            if gid in managed
        ]
    return Plan(tconf.name, tuple(ops), managed_users=0) if ops else None


def _get_group(target: Any, scim_id: str) -> dict[str, Any] | None:
    from scimflow.errors import ScimNotFoundError

    try:
        found: dict[str, Any] = target.get("Groups", scim_id)
    except ScimNotFoundError:
        return None
    return found


def _release_unavailable(store: Any, target: str, frames: Mapping[str, pd.DataFrame]) -> int:
    """Unpark the batch's records parked only because the target was down: the batch
    reached the target, so they are written or already equal (the executor unparks what
    it wrote; this releases the ones that needed no write, which would else be retried
    in every batch)."""
    in_batch = {
        "User": set(frames["users"]["id"].dropna().astype(str)),
        "Group": set(frames["groups"]["id"].dropna().astype(str)),
    }
    released = 0
    for kind in ("User", "Group"):
        ids = [
            p.okta_id
            for p in store.parked(target)
            if p.kind == kind and p.okta_id in in_batch[kind] and p.reason.startswith(UNAVAILABLE)
        ]
        if ids:
            store.unpark(target, kind, ids)
            released += len(ids)
    return released


def _park_batch(store: Any, target: str, frames: Mapping[str, pd.DataFrame], reason: str) -> int:
    n = 0
    for kind, frame in (("User", frames["users"]), ("Group", frames["groups"])):
        for okta_id in frame["id"].dropna().astype(str):
            store.park(target, kind, okta_id, reason, None)
            n += 1
    return n


def finish(config: Any, run_dir: Path, *, store: Any = None) -> dict[str, Any]:
    """Stage 4: remember the batch's event uuids, then commit its offsets."""
    from scimflow.state.store import StateStore
    from scimflow.stream.kafka import commit

    changes, offsets = load_changes(run_dir)
    own = store is None
    store = store or StateStore(config.state.resolved_url())
    try:
        if own:
            store.migrate()
        store.mark_seen((c.uuid, _parse_time(c.published)) for c in changes)
    finally:
        if own:
            store.close()
    commit(config.kafka, offsets)
    return {"events": len(changes), "offsets": {str(p): o for p, o in offsets.items()}}


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def run_once(
    config: Any, run_dir: Path, *, run_id: str, max_events: int | None = None
) -> dict[str, Any]:
    """One whole micro-batch without Airflow (``scimflow stream once``): the DAG's stages
    in order, targets one after the other. Offsets are committed only at the end."""
    from scimflow.stream.kafka import read_batch

    if config.kafka is None:
        raise ScimflowError("the configuration has no kafka section")
    batch = read_batch(config.kafka, max_events=max_events)
    save_changes(run_dir, batch.changes, batch.offsets)
    out: dict[str, Any] = {"read": len(batch.changes), "dead_lettered": batch.dead_lettered}
    if batch.changes:
        out["hydrate"] = hydrate(config, run_dir)
        out["targets"] = [
            apply_to_target(config, t.name, run_dir, run_id=run_id) for t in config.targets
        ]
    out["finish"] = finish(config, run_dir)
    return out
