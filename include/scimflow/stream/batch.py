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
from typing import TYPE_CHECKING, Any

from scimflow.errors import TargetUnavailableError
from scimflow.state.store import ParkKind
from scimflow.stream.events import Change

if TYPE_CHECKING:
    from scimflow.scim.config import ScimflowConfig
    from scimflow.scim.report import TargetReport

__all__ = [
    "apply_to_target",
    "batch_dir",
    "finish",
    "hydrate",
    "load_changes",
    "save_changes",
]

log = logging.getLogger(__name__)

CHANGES = "changes.json"
CAUSES = "causes.json"
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


def hydrate(config: ScimflowConfig, run_dir: Path) -> dict[str, Any]:
    """Stage 2 (see the module docstring): write the batch's current Okta state."""
    from scimflow.okta.source import (
        OktaSettings,
        OktaSource,
        groups_frame,
        memberships_frame,
        users_frame,
    )
    from scimflow.quality import validate_export
    from scimflow.runtime import open_store
    from scimflow.scim.desired import Quarantine

    t0 = time.monotonic()
    changes, _ = load_changes(run_dir)
    unique = list({c.uuid: c for c in changes}.values())
    users = list(dict.fromkeys(u for c in unique for u in c.user_ids))
    groups = list(dict.fromkeys(g for c in unique for g in c.group_ids))
    causes = _causes(unique)

    with open_store(config) as store:
        retry = store.parked(
            park_kinds=[ParkKind.UNAVAILABLE], oldest_first=True, limit=RETRY_PARKED_MAX
        )
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
    Quarantine(quality.quarantined_users, quality.quarantined_groups).write(run_dir)
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


def apply_to_target(
    config: ScimflowConfig,
    target_name: str,
    run_dir: Path,
    *,
    run_id: str,
    last_try: bool = True,
) -> dict[str, Any]:
    """Stage 3 (see the module docstring) for one target: the report as XCom."""
    return reconcile_batch(config, target_name, run_dir, run_id=run_id, last_try=last_try).to_xcom()


def reconcile_batch(
    config: ScimflowConfig,
    target_name: str,
    run_dir: Path,
    *,
    run_id: str,
    last_try: bool = True,
) -> TargetReport:
    """:func:`~scimflow.scim.reconcile.reconcile` of one target, scope Batch, with the
    desired state mapped from the batch's hydrated frames. A target that cannot be
    reached fails the task so that Airflow retries it; on the last try the batch's
    records are parked for it (kind ``unavailable``) instead, so the other targets and
    the offsets go on. Any other error fails the task."""
    from scimflow.resync import target_config_of
    from scimflow.runtime import connect, open_store
    from scimflow.scim.desired import OktaFrames, Quarantine, build_desired
    from scimflow.scim.reconcile import Batch, park_unavailable, reconcile
    from scimflow.scim.report import TargetReport

    target_config = target_config_of(config, target_name)
    frames = OktaFrames.read(run_dir, scoped=True)
    desired = build_desired(target_config, frames, Quarantine.read(run_dir))
    causes = json.loads((run_dir / CAUSES).read_text(encoding="utf-8"))
    scope = Batch(
        user_ids=frozenset(str(u) for u in frames.users["id"].dropna()),
        group_ids=frozenset(str(g) for g in frames.groups["id"].dropna()),
    )
    with open_store(config) as st:
        try:
            with connect(target_config) as client:
                return reconcile(
                    target_config,
                    desired,
                    st,
                    client,
                    scope=scope,
                    run_id=run_id,
                    cause=f"okta-events:{run_id}",
                    causes=causes,
                )
        except TargetUnavailableError as exc:
            if not last_try:
                raise
            n = park_unavailable(st, target_name, scope, f"target unavailable: {exc.reason}")
            log.warning("%s: parked the batch's %d records: %s", target_name, n, exc)
            report = (
                exc.report
                if isinstance(exc.report, TargetReport)
                else TargetReport(target_name, "batch", dry_run=False)
            )
            report.park(ParkKind.UNAVAILABLE, n)
            report.unavailable = str(exc)
            return report


def finish(config: ScimflowConfig, run_dir: Path) -> dict[str, Any]:
    """Stage 4: remember the batch's event uuids, then commit its offsets."""
    from scimflow.runtime import open_store
    from scimflow.stream.kafka import commit

    changes, offsets = load_changes(run_dir)
    kafka = config.kafka_section()
    with open_store(config) as store:
        store.mark_seen((c.uuid, _parse_time(c.published)) for c in changes)
    commit(kafka, offsets)
    return {"events": len(changes), "offsets": {str(p): o for p, o in offsets.items()}}


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def run_once(
    config: ScimflowConfig, run_dir: Path, *, run_id: str, max_events: int | None = None
) -> dict[str, Any]:
    """One whole micro-batch without Airflow (``scimflow stream once``): the DAG's stages
    in order, targets one after the other. Offsets are committed only at the end."""
    from scimflow.stream.consume import commit_batch, consume_batch

    consumed = consume_batch(config, run_dir, max_events=max_events)
    applied = [
        apply_to_target(config, name, run_dir, run_id=run_id) for name in consumed.target_names
    ]
    committed = commit_batch(config, run_dir)
    return {
        "read": consumed.events,
        "dead_lettered": consumed.dead_lettered,
        "hydrate": consumed.hydrate,
        "targets": applied,
        "finish": committed.finished,
        "left": committed.left,
    }
