"""The Okta side of scimflow: a source built on the official ``okta`` SDK, and an emulator."""
