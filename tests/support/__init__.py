"""Helpers shared by the test tiers: hand-built desired state, models, a fault proxy."""
