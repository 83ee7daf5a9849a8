"""The state store: SCIM id links, pushed hashes, parked records and the audit log."""

from __future__ import annotations

from scimflow.state.store import (
    AuditEntry,
    AuditVerification,
    Link,
    Parked,
    StateStore,
    canonical_json,
)

__all__ = [
    "AuditEntry",
    "AuditVerification",
    "Link",
    "Parked",
    "StateStore",
    "canonical_json",
]
