"""Alembic migrations of the state store (run by :meth:`StateStore.migrate`).

A package, so that a regular (non-editable) install ships ``env.py`` and the revisions
as modules; ``script.py.mako`` is only needed to write new revisions.
"""
