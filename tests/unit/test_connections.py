"""Endpoints and credentials read from Airflow connections."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any
from unittest import mock

import pytest
from scimflow.airflow import connections
from scimflow.errors import PreflightError

if TYPE_CHECKING:
    from airflow.sdk import Connection


def _conn(**fields: Any) -> Connection:
    from airflow.sdk import Connection

    return Connection(conn_id="c", **fields)


def _patched(conn: Connection) -> AbstractContextManager[mock.MagicMock | mock.AsyncMock]:
    return mock.patch.object(connections, "_connection", return_value=conn)


def test_postgres_connection_becomes_a_psycopg_url_with_escaped_password() -> None:
    conn = _conn(
        conn_type="postgres",
        host="db",
        port=5432,
        login="sync",
        password="p@ss/word",
        schema="scimflow",
    )
    with _patched(conn):
        url = connections.state_store_url("scimflow_state")
    import sqlalchemy as sa

    parsed = sa.make_url(url)
    assert parsed.drivername == "postgresql+psycopg"
    assert (parsed.host, parsed.port, parsed.username, parsed.database) == (
        "db",
        5432,
        "sync",
        "scimflow",
    )
    assert parsed.password == "p@ss/word"


def test_sqlite_connection() -> None:
    with _patched(_conn(conn_type="sqlite", host="/var/lib/scimflow/state.db")):
        assert connections.state_store_url("s") == "sqlite:////var/lib/scimflow/state.db"


def test_unknown_state_store_type_is_refused() -> None:
    with (
        _patched(_conn(conn_type="mysql", host="db")),
        pytest.raises(PreflightError, match="'mysql'"),
    ):
        connections.state_store_url("scimflow_state")


def test_kafka_connection_needs_bootstrap_servers() -> None:
    ok = _conn(
        conn_type="kafka", extra=json.dumps({"bootstrap.servers": "k:9092", "group.id": "g"})
    )
    with _patched(ok):
        assert connections.kafka_config("k")["bootstrap.servers"] == "k:9092"
    with (
        _patched(_conn(conn_type="kafka", extra="{}")),
        pytest.raises(PreflightError, match=r"bootstrap\.servers"),
    ):
        connections.kafka_config("k")


def test_scim_target_from_base_url_or_host_and_never_shows_its_token() -> None:
    with _patched(
        _conn(
            conn_type="http",
            password="s3cr3t-token",
            extra=json.dumps({"base_url": "https://app/scim/v2"}),
        )
    ):
        target = connections.scim_target("scim_a")
    assert (target.base_url, target.token) == ("https://app/scim/v2", "s3cr3t-token")
    assert "s3cr3t-token" not in repr(target)

    with _patched(
        _conn(conn_type="http", host="app.example.com", schema="https", port=8443, password="t")
    ):
        assert connections.scim_target("x").base_url == "https://app.example.com:8443"

    with (
        _patched(_conn(conn_type="http", host="app")),
        pytest.raises(PreflightError, match="no token"),
    ):
        connections.scim_target("x")
