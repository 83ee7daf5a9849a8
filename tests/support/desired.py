"""Desired users and groups built by hand, for tests of the planner and the executor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scimflow.scim.plan import ENTERPRISE, fingerprint

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
TITLES = ["Engineer", "Manager", "Analyst"]
DEPTS = ["Sales", "Research"]


@dataclass(frozen=True)
class Desired:
    okta_id: str
    payload: dict[str, Any]
    fingerprint: str
    active: bool
    manager_okta_id: str | None = None


@dataclass(frozen=True)
class DesiredGroup:
    okta_id: str
    display_name: str
    member_okta_ids: frozenset[str]


def desired_user(i: int, title: str, dept: str, active: bool) -> Desired:
    name = f"user{i}@example.com"
    payload = {
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "userName": name,
        "externalId": f"00u{i}",
        "name": {"givenName": f"Given{i}", "familyName": f"Family{i}"},
        "displayName": f"Given{i} Family{i}",
        "title": title,
        "active": active,
        "emails": [{"value": name, "type": "work", "primary": True}],
        ENTERPRISE: {"department": dept},
    }
    return Desired(f"00u{i}", payload, fingerprint(payload), active)
