"""The stages of a full resync, as plain functions: the ``okta_resync`` DAG calls them.

export → validate → per target (read, plan, guard, apply) → drift report. Stages hand
each other a run-scoped snapshot folder of Parquet files, never DataFrames through
XCom; what they return is small and holds no personal data (counts, paths, ids).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scimflow.errors import ScimflowError

if TYPE_CHECKING:
    from scimflow.scim.config import ScimflowConfig, TargetConfig
    from scimflow.scim.report import TargetReport

__all__ = [
    "drift_report",
    "export_snapshot",
    "load_config",
    "reconcile_snapshot",
    "sync_from_snapshot",
    "target_config_of",
    "validate_snapshot",
]


def load_config(path: str | None = None) -> ScimflowConfig:
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


def export_snapshot(config: ScimflowConfig, out: Path) -> dict[str, Any]:
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


def validate_snapshot(snapshot: Path, *, max_failed_share: float = 0.05) -> dict[str, Any]:
    """Validate the snapshot; write the quarantine list and the report beside it."""
    from scimflow.quality import validate_export
    from scimflow.scim.desired import OktaFrames, Quarantine

    frames = OktaFrames.read(snapshot)
    report = snapshot / "data-quality.md"
    result = validate_export(
        frames.users,
        frames.groups,
        frames.memberships,
        max_failed_share=max_failed_share,
        report=report,
    )
    Quarantine(result.quarantined_users, result.quarantined_groups).write(snapshot)
    return {**result.summary(), "report": str(report)}


def target_config_of(config: ScimflowConfig, target_name: str) -> TargetConfig:
    """The target called ``target_name``: a configuration error naming it if none is (the
    rule of :func:`scimflow.fanout.select_targets`)."""
    from scimflow.fanout import select_targets

    (name,) = select_targets(config, [target_name])
    return config.target(name)


def sync_from_snapshot(
    config: ScimflowConfig,
    target_name: str,
    snapshot: Path,
    *,
    run_id: str,
    dry_run: bool = False,
    force: bool = False,
) -> dict[str, Any]:
    """Reconcile one target with a validated snapshot (scope Full): the report as XCom."""
    return reconcile_snapshot(
        config, target_name, snapshot, run_id=run_id, dry_run=dry_run, force=force
    ).to_xcom()


def reconcile_snapshot(
    config: ScimflowConfig,
    target_name: str,
    snapshot: Path,
    *,
    run_id: str,
    cause: str | None = None,
    dry_run: bool = False,
    force: bool = False,
    on_progress: Callable[[str], None] | None = None,
) -> TargetReport:
    """:func:`~scimflow.scim.reconcile.reconcile` of one target, scope Full, with the
    desired state mapped from the snapshot (while the target's users are read)."""
    from scimflow.runtime import connect, open_store
    from scimflow.scim.desired import OktaFrames, Quarantine, build_desired
    from scimflow.scim.reconcile import Full, reconcile

    target_config = target_config_of(config, target_name)
    frames = OktaFrames.read(snapshot)
    quarantine = Quarantine.read(snapshot)
    with open_store(config) as store, connect(target_config) as client:
        return reconcile(
            target_config,
            lambda: build_desired(target_config, frames, quarantine),
            store,
            client,
            scope=Full(),
            run_id=run_id,
            cause=cause or f"resync:{run_id}",
            dry_run=dry_run,
            force=force,
            on_progress=on_progress,
        )


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
        "| target | mode | operations | writes | parked | released | failed | seconds |",
        "| --- | --- | --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for s in sorted(summaries, key=lambda x: str(x["target"])):
        ops = ", ".join(f"{k} {v}" for k, v in s["rows"].items() if v) or "nothing to do"
        mode = "dry run" if s["dry_run"] else "applied"
        parked = ", ".join(f"{k} {v}" for k, v in sorted(s["parked"].items())) or "0"
        cells = [
            s["target"],
            mode,
            ops,
            s["writes"],
            parked,
            s["released"],
            s["failed"],
            s["seconds"],
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out
