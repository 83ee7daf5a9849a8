"""Preflight checks against the real services, including the ways they fail."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from scimflow.errors import PreflightError
from scimflow.preflight import check_kafka, check_scim_target, check_state_store
from scimflow.services import EVENTS_DLQ_TOPIC, EVENTS_TOPIC

if TYPE_CHECKING:
    from pathlib import Path

    from scimflow.services import KafkaBroker, PostgresServer, ScimServer

pytestmark = pytest.mark.integration


def test_kafka_reports_partitions_and_names_missing_topics(kafka: KafkaBroker) -> None:
    report = check_kafka(kafka.address, [EVENTS_TOPIC, EVENTS_DLQ_TOPIC])
    assert report["partitions"] == {
        EVENTS_TOPIC: kafka.settings.kafka_partitions,
        EVENTS_DLQ_TOPIC: 1,
    }
    with pytest.raises(PreflightError, match=r"topics missing .*: okta\.nope"):
        check_kafka(kafka.address, [EVENTS_TOPIC, "okta.nope"])


def test_state_store_ok_and_a_bad_password_fails_without_showing_it(
    postgres: PostgresServer,
) -> None:
    report = check_state_store(postgres.url())
    assert report["dialect"] == "postgresql"
    assert postgres.password() not in str(report)
    bad = (
        sa.make_url(postgres.url())
        .set(password="wrong-password-123")
        .render_as_string(hide_password=False)
    )
    with pytest.raises(PreflightError) as info:
        check_state_store(bad)
    assert "OperationalError" in str(info.value)
    assert "wrong-password-123" not in str(info.value)


def test_sqlite_state_store(tmp_path: Path) -> None:
    assert check_state_store(f"sqlite:///{tmp_path / 'state.db'}")["dialect"] == "sqlite"


def test_scim_target_capabilities_and_refused_token(scim_targets: list[ScimServer]) -> None:
    server = scim_targets[0]
    report = check_scim_target("scim-a", server.address, server.token())
    assert report["patch"] is True and report["bulk"] is True
    assert isinstance(report["users"], int)
    with pytest.raises(PreflightError, match="refused the credentials \\(401\\)"):
        check_scim_target("scim-a", server.address, "not-the-token")


def test_unreachable_target() -> None:
    import socket

    with socket.socket() as sock:  # a port that was just free: nothing listens on it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(PreflightError, match="unreachable: ConnectError"):
        check_scim_target("gone", f"http://127.0.0.1:{port}/v2", "t")
