"""scimflow: keep SCIM 2.0 applications equal to Okta, near real time."""
