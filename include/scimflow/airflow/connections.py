"""Read scimflow's endpoints and credentials from Airflow connections, at run time only.

Connection ids used by the DAGs (override them in DAG params):

- ``scimflow_kafka``: conn_type ``kafka``; the librdkafka config in the extra, with
  ``bootstrap.servers``.
- ``scimflow_state``: the state store: conn_type ``postgres`` (host, port, login,
  password, schema = database) or ``sqlite`` (host = the database file).
- one per SCIM target, e.g. ``scim_a``: conn_type ``http``; extra ``base_url`` (or
  schema/host/port), password = the bearer token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scimflow.errors import PreflightError

__all__ = ["ScimTargetEndpoint", "kafka_config", "scim_target", "state_store_url"]


def _connection(conn_id: str) -> Any:
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id)


def kafka_config(conn_id: str) -> dict[str, Any]:
    """The librdkafka configuration stored in a ``kafka`` connection's extra."""
    extra = _connection(conn_id).extra_dejson
    if "bootstrap.servers" not in extra:
        raise PreflightError(conn_id, "the kafka connection's extra has no 'bootstrap.servers'")
    return dict(extra)


def state_store_url(conn_id: str) -> str:
    """A SQLAlchemy URL (with its password: never log it) for the state store connection."""
    import sqlalchemy as sa

    conn = _connection(conn_id)
    if conn.conn_type == "sqlite":
        return str(sa.URL.create("sqlite", database=conn.host))
    if conn.conn_type in ("postgres", "postgresql"):
        return sa.URL.create(
            "postgresql+psycopg",
            username=conn.login,
            password=conn.password,
            host=conn.host,
            port=conn.port,
            database=conn.schema,
        ).render_as_string(hide_password=False)
    raise PreflightError(
        conn_id, f"state store connection type {conn.conn_type!r} is not postgres or sqlite"
    )


@dataclass(frozen=True)
class ScimTargetEndpoint:
    name: str
    base_url: str
    token: str

    def __repr__(self) -> str:  # never show the token
        return f"ScimTargetEndpoint(name={self.name!r}, base_url={self.base_url!r})"


def scim_target(conn_id: str) -> ScimTargetEndpoint:
    """A SCIM target's base URL and bearer token from an ``http`` connection."""
    conn = _connection(conn_id)
    extra = conn.extra_dejson
    base_url = extra.get("base_url")
    if not base_url:
        if not conn.host:
            raise PreflightError(conn_id, "the SCIM connection has neither extra.base_url nor host")
        scheme = conn.schema or "https"
        port = f":{conn.port}" if conn.port else ""
        base_url = f"{scheme}://{conn.host}{port}"
    if not conn.password:
        raise PreflightError(conn_id, "the SCIM connection has no token in its password field")
    return ScimTargetEndpoint(name=conn_id, base_url=base_url, token=conn.password)
