"""The SCIM side: configuration, mapping, planning and applying changes to SCIM targets."""
