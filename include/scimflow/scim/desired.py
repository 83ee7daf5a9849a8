"""What a target should hold, built from Okta's frames: the input of the engine.

Both paths read Okta into the same three frames (users, groups, memberships; see
:mod:`scimflow.okta.source`) and validate them the same way (great-expectations, in
:mod:`scimflow.quality`); :func:`build_desired` then maps them for one target. The
stream adds what it needs to decide scope for the few users of a batch (each user's
groups, and the scope groups by name), since its frames hold only the batch's entities.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from scimflow.state.store import ParkKind

if TYPE_CHECKING:
    from collections.abc import Mapping

    from scimflow.scim.config import TargetConfig
    from scimflow.scim.plan import DesiredGroupLike, DesiredUserLike

__all__ = ["BadRecord", "Desired", "OktaFrames", "Quarantine", "build_desired"]

QUARANTINE = "quarantine.json"


@dataclass(frozen=True)
class BadRecord:
    """A record left as it is in the target and parked: ``kind`` is User or Group."""

    kind: str
    okta_id: str
    park_kind: ParkKind
    reason: str


@dataclass(frozen=True)
class Desired:
    """The desired state of one target.

    ``users``: the in-scope users, mapped. ``groups``: the groups the target should have,
    each with *all* its Okta members (the engine decides who counts as a member), or None
    when the path says nothing of groups. ``bad``: records quarantined or rejected, held
    as they are. ``deleted_users``: users gone from Okta (a batch removes them from the
    target's groups, which no group event would).
    """

    users: Mapping[str, DesiredUserLike]
    groups: Mapping[str, DesiredGroupLike] | None
    bad: tuple[BadRecord, ...] = ()
    deleted_users: frozenset[str] = frozenset()

    def held(self) -> set[str]:
        return {b.okta_id for b in self.bad}


@dataclass(frozen=True)
class OktaFrames:
    """Okta's state as frames. ``scope_memberships`` and ``scope_groups`` add, for the
    stream, the batch users' groups and the scope groups by name (the resync's frames
    hold everything already)."""

    users: pd.DataFrame
    groups: pd.DataFrame
    memberships: pd.DataFrame
    scope_memberships: pd.DataFrame | None = None
    scope_groups: pd.DataFrame | None = None

    @classmethod
    def read(cls, folder: Path, *, scoped: bool = False) -> OktaFrames:
        def frame(name: str) -> pd.DataFrame:
            return pd.read_parquet(folder / f"{name}.parquet")

        return cls(
            frame("users"),
            frame("groups"),
            frame("memberships"),
            frame("user_groups") if scoped else None,
            frame("scope_groups") if scoped else None,
        )


@dataclass(frozen=True)
class Quarantine:
    """Records that failed validation, by Okta id, with the expectations they failed.

    Ids starting with ``row:`` name rows without an id: reported, never parked."""

    users: dict[str, list[str]] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)

    def write(self, folder: Path) -> None:
        (folder / QUARANTINE).write_text(
            json.dumps({"users": self.users, "groups": self.groups}, sort_keys=True),
            encoding="utf-8",
        )

    @classmethod
    def read(cls, folder: Path) -> Quarantine:
        data = json.loads((folder / QUARANTINE).read_text(encoding="utf-8"))
        return cls(dict(data.get("users", {})), dict(data.get("groups", {})))

    def bad(self) -> tuple[BadRecord, ...]:
        return tuple(
            BadRecord(kind, okta_id, ParkKind.QUARANTINED, "validation: " + "; ".join(reasons))
            for kind, records in (("User", self.users), ("Group", self.groups))
            for okta_id, reasons in records.items()
            if not okta_id.startswith("row:")
        )


def build_desired(
    target_config: TargetConfig, frames: OktaFrames, quarantine: Quarantine
) -> Desired:
    """Map Okta's frames for one target: scope, mapping, groups with all their members."""
    from scimflow.scim.mapping import in_scope_users, map_groups, map_users

    users = frames.users[~frames.users["id"].isin(set(quarantine.users))]
    groups = frames.groups[~frames.groups["id"].isin(set(quarantine.groups))]
    scope_memberships = frames.memberships
    if frames.scope_memberships is not None:
        scope_memberships = pd.concat(
            [frames.memberships, frames.scope_memberships], ignore_index=True
        )
    scope_groups = groups
    if frames.scope_groups is not None:
        scope_groups = pd.concat([groups, frames.scope_groups], ignore_index=True)
    in_scope = in_scope_users(users, scope_memberships, scope_groups, target_config.scope)
    mapped = map_users(users[users["id"].isin(list(in_scope))], target_config)
    rejected = tuple(
        BadRecord("User", okta_id, ParkKind.REJECTED, f"mapping: {reason}")
        for okta_id, reason in mapped.rejected.items()
    )
    desired_groups = None
    if target_config.push_groups:
        every_member = {str(u) for u in frames.memberships["user_id"].dropna()}
        desired_groups = map_groups(groups, frames.memberships, every_member, target_config)
    deleted = frames.users.loc[
        frames.users["deleted"].astype("boolean").fillna(False).astype(bool), "id"
    ]
    return Desired(
        users=mapped.users,
        groups=desired_groups,
        bad=quarantine.bad() + rejected,
        deleted_users=frozenset(str(u) for u in deleted.dropna()),
    )
