"""The Airflow Assets of scimflow, defined once and imported by every DAG that uses them.

Okta → snapshot → SCIM targets. Targets are named in the configuration, which is read
at run time (never at parse), so their assets are attached through an alias when the
per-target task runs: ``scim://<target>/Users`` and ``scim://<target>/Groups``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import Asset, AssetAlias

if TYPE_CHECKING:
    from airflow.sdk.types import OutletEventAccessorsProtocol

__all__ = [
    "OKTA_GROUPS",
    "OKTA_USERS",
    "SCIM_TARGETS",
    "SNAPSHOT",
    "record_target_writes",
    "target_assets",
]

OKTA_USERS = Asset(name="okta_users", uri="okta://okta/users")
OKTA_GROUPS = Asset(name="okta_groups", uri="okta://okta/groups")
SNAPSHOT = Asset(name="okta_snapshot", uri="file:///scimflow/snapshots/okta")
SCIM_TARGETS = AssetAlias(name="scim_targets")


def target_assets(target: str) -> list[Asset]:
    return [
        Asset(name=f"scim_{target}_users", uri=f"scim://{target}/Users"),
        Asset(name=f"scim_{target}_groups", uri=f"scim://{target}/Groups"),
    ]


def record_target_writes(
    outlet_events: OutletEventAccessorsProtocol, target: str, *, writes: int, dry_run: bool = False
) -> None:
    """Attach the target's assets to the running task through :data:`SCIM_TARGETS`, with
    the number of writes; a dry run wrote nothing and records no asset event."""
    if dry_run:
        return
    for asset in target_assets(target):
        outlet_events[SCIM_TARGETS].add(asset, extra={"writes": writes})
