"""The stages of a full resync, as plain functions: the ``okta_resync`` DAG calls them.

export → validate → per target (read, plan, guard, apply) → drift report. Stages hand
each other a run-scoped snapshot folder of Parquet files, never DataFrames through
XCom; what they return is small and holds no personal data (counts, paths, ids).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd

from scimflow.errors import ScimflowError

__all__ = [
    "drift_report",
    "export_snapshot",
    "load_config",
    "sync_from_snapshot",
    "validate_snapshot",
]

QUARANTINE = "quarantine.json"


def load_config(path: str | None = None) -> Any:
    """The configuration at ``path``, or at ``SCIMFLOW_CONFIG`` (read at run time, not parse)."""
    from scimflow.scim.config import load_config as load

    chosen = path or os.environ.get("SCIMFLOW_CONFIG")
    if not chosen:
        raise ScimflowError("no configuration: pass the config_path param or set SCIMFLOW_CONFIG")
    return load(Path(chosen))


def snapshot_dir(base: str | None, run_id: str) -> Path:
    root = Path(
        base
        or os.environ.get("SCIMFLOW_DATA")
        or Path(os.environ.get("AIRFLOW_HOME", ".")) / "scimflow"
    )
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
    return root / "snapshots" / safe


def export_snapshot(config: Any, out: Path) -> dict[str, Any]:
    """Export Okta (users, groups, memberships) into ``out`` as Parquet."""
    from scimflow.okta.source import OktaExport, OktaSettings, OktaSource

    settings = OktaSettings(org_url=str(config.okta.org_url), token=config.okta.token.resolve())

    async def run() -> OktaExport:
        async with OktaSource(settings) as source:
            return await source.export()

    export = asyncio.run(run())
    out.mkdir(parents=True, exist_ok=True)
    export.users.to_parquet(out / "users.parquet", index=False)
    export.groups.to_parquet(out / "groups.parquet", index=False)
    export.memberships.to_parquet(out / "memberships.parquet", index=False)
    return {
        "snapshot": str(out),
        "users": len(export.users),
        "groups": len(export.groups),
        "memberships": len(export.memberships),
        "requests": export.requests,
        "seconds": round(export.seconds, 2),
    }


def _frames(snapshot: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return (
        pd.read_parquet(snapshot / "users.parquet"),
        pd.read_parquet(snapshot / "groups.parquet"),
        pd.read_parquet(snapshot / "memberships.parquet"),
    )


def validate_snapshot(snapshot: Path, *, max_failed_share: float = 0.05) -> dict[str, Any]:
    """Validate the snapshot; write the quarantine list and the report beside it."""
    from scimflow.quality import validate_export

    users, groups, memberships = _frames(snapshot)
    report = snapshot / "data-quality.md"
    result = validate_export(
        users, groups, memberships, max_failed_share=max_failed_share, report=report
    )
    (snapshot / QUARANTINE).write_text(
        json.dumps(
            {"users": result.quarantined_users, "groups": result.quarantined_groups}, sort_keys=True
        ),
        encoding="utf-8",
    )
    return {**result.summary(), "report": str(report)}


def sync_from_snapshot(
    config: Any,
    target_name: str,
    snapshot: Path,
    *,
    run_id: str,
    dry_run: bool = False,
    force: bool = False,
) -> dict[str, Any]:
    """Reconcile one target from a validated snapshot; quarantined records are parked."""
    from scimflow.scim.sync import sync_target
    from scimflow.state.store import StateStore

    targets = {t.name: t for t in config.targets}
    if target_name not in targets:
        raise ScimflowError(f"no target named {target_name!r} in the configuration")
    target = targets[target_name]
    users, groups, memberships = _frames(snapshot)
    quarantine = json.loads((snapshot / QUARANTINE).read_text(encoding="utf-8"))
    bad_users, bad_groups = set(quarantine["users"]), set(quarantine["groups"])
    users = users[~users["id"].isin(bad_users)]
    groups = groups[~groups["id"].isin(bad_groups)]
    # a quarantined user keeps its memberships (held below: left as it is, not removed)
    memberships = memberships[
        memberships["user_id"].isin(set(users["id"]) | bad_users)
        & memberships["group_id"].isin(set(groups["id"]))
    ]
    store = StateStore(config.state.resolved_url())
    try:
        store.migrate()
        if not dry_run:
            for okta_id, reasons in quarantine["users"].items():
                if not okta_id.startswith("row:"):
                    store.park(
                        target_name, "User", okta_id, "validation: " + "; ".join(reasons), None
                    )
        t0 = time.monotonic()
        report = sync_target(
            target,
            users,
            groups,
            memberships,
            store,
            run_id=run_id,
            cause=f"resync:{run_id}",
            dry_run=dry_run,
            force=force,
            # quarantined records are parked, their resources left as they are
            hold={i for i in bad_users | bad_groups if not i.startswith("row:")},
        )
    finally:
        store.close()
    summary = {
        "target": target_name,
        "dry_run": dry_run,
        "planned": report.planned,
        "applied": report.applied,
        "writes": report.writes,
        "parked": len(report.parked) + len(report.rejected) + (0 if dry_run else len(bad_users)),
        "failed": len(report.failed),
        "seconds": round(time.monotonic() - t0, 2),
        "plan": [
            f"{op.action} {op.kind} {op.okta_id} {op.reason}".strip()
            for p in report.plans
            for op in p.operations
        ][:200],
    }
    if report.failed:
        raise ScimflowError(
            f"{target_name}: {len(report.failed)} operations still failing after retries "
            f"(first: {report.failed[0][1]}); applied so far is saved, the task retry resumes"
        )
    return summary


def drift_report(
    summaries: list[dict[str, Any]], quality: dict[str, Any] | None, out: Path
) -> Path:
    """A Markdown drift report: per target, operations, parked records, duration."""
    quality = quality or {}
    lines = [
        "# scimflow resync report",
        "",
        f"Data quality: {quality.get('rows')}, quarantined users "
        f"{quality.get('quarantined_users')}, groups {quality.get('quarantined_groups')}.",
        "",
    ]
    lines += [
        "| target | mode | operations | writes | parked | failed | seconds |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for s in sorted(summaries, key=lambda x: x["target"]):
        counts = s["planned"] if s["dry_run"] else s["applied"]
        ops = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing to do"
        mode = "dry run" if s["dry_run"] else "applied"
        cells = [s["target"], mode, ops, s["writes"], s["parked"], s["failed"], s["seconds"]]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out
