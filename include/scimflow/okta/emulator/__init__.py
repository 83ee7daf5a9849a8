"""A faithful local Okta: the Management API subset scimflow reads, System Log, published
rate limits with 429s, Event Hook delivery with its real semantics, and a churn driver.

For demos, tests and load tests without an Okta org. Entry point:
``scimflow okta-emulator serve``.
"""
