"""Preflight checks: can scimflow reach everything it will write to or read from?

Each check returns a small report (a dict safe to show in logs: no secret, no personal
data) or raises :class:`~scimflow.errors.PreflightError` naming what failed and why.
The ``scimflow_preflight`` DAG runs them; so can any script.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from scimflow.errors import PreflightError

__all__ = ["check_kafka", "check_scim_target", "check_state_store"]


def check_kafka(bootstrap: str, topics: Iterable[str], *, timeout: float = 10.0) -> dict[str, Any]:
    """The broker answers and every named topic exists; report partitions per topic."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    t0 = time.monotonic()
    try:
        meta = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise PreflightError("kafka", f"no metadata from {bootstrap}: {exc}") from exc
    wanted = list(topics)
    missing = [t for t in wanted if t not in meta.topics]
    if missing:
        raise PreflightError("kafka", f"topics missing on {bootstrap}: {', '.join(missing)}")
    return {
        "bootstrap": bootstrap,
        "brokers": len(meta.brokers),
        "partitions": {t: len(meta.topics[t].partitions) for t in wanted},
        "seconds": round(time.monotonic() - t0, 3),
    }


def check_state_store(url: str) -> dict[str, Any]:
    """The state store's database accepts a connection and a query."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, pool_pre_ping=True)
    t0 = time.monotonic()
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1")).scalar_one()
            dialect = engine.dialect.name
            version = engine.dialect.server_version_info
    except sa.exc.SQLAlchemyError as exc:
        # str(exc) of a connection error can repeat the URL: report its class only
        raise PreflightError(
            "state store",
            f"cannot query {engine.url!r}: {type(getattr(exc, 'orig', None) or exc).__name__}",
        ) from None
    finally:
        engine.dispose()
    return {
        "url": repr(engine.url),  # SQLAlchemy masks the password in repr
        "dialect": dialect,
        "server_version": ".".join(str(p) for p in version or ()),
        "seconds": round(time.monotonic() - t0, 3),
    }


def check_scim_target(
    name: str, base_url: str, token: str, *, timeout: float = 10.0
) -> dict[str, Any]:
    """The target serves its ServiceProviderConfig and accepts the token on /Users."""
    import httpx

    headers = {"Authorization": f"Bearer {token}", "Accept": "application/scim+json"}
    base = base_url.rstrip("/")
    t0 = time.monotonic()
    try:
        with httpx.Client(timeout=timeout, headers=headers) as client:
            spc = client.get(f"{base}/ServiceProviderConfig")
            users = client.get(f"{base}/Users", params={"count": 0})
    except httpx.HTTPError as exc:
        raise PreflightError(name, f"{base} unreachable: {type(exc).__name__}") from exc
    if spc.status_code != 200:
        raise PreflightError(name, f"GET {base}/ServiceProviderConfig answered {spc.status_code}")
    if users.status_code in (401, 403):
        raise PreflightError(name, f"{base} refused the credentials ({users.status_code})")
    if users.status_code != 200:
        raise PreflightError(name, f"GET {base}/Users answered {users.status_code}")
    config = spc.json()
    return {
        "target": name,
        "base_url": base,
        "users": users.json().get("totalResults"),
        "patch": bool(config.get("patch", {}).get("supported")),
        "bulk": bool(config.get("bulk", {}).get("supported")),
        "filter": bool(config.get("filter", {}).get("supported")),
        "etag": bool(config.get("etag", {}).get("supported")),
        "seconds": round(time.monotonic() - t0, 3),
    }
