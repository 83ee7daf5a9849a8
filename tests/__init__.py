"""The tests: unit, integration and DAG tiers, and the helpers they share (``support``).

A package, so that mypy tells ``tests.conftest`` from ``tests.dags.conftest``.
"""
