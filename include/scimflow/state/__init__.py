"""The state store: SCIM id links, pushed hashes, parked records and the audit log."""
