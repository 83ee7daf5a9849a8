"""The local PostgreSQL serves the scimflow database through SQLAlchemy."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

if TYPE_CHECKING:
    from scimflow.services import PostgresServer

pytestmark = pytest.mark.integration


def test_round_trip_through_the_scimflow_database(postgres: PostgresServer) -> None:
    engine = sa.create_engine(postgres.url())
    meta = sa.MetaData()
    links = sa.Table(
        "test_links",
        meta,
        sa.Column("okta_id", sa.String(32), primary_key=True),
        sa.Column("scim_id", sa.String(64), nullable=False),
        sa.Column("pushed_hash", sa.LargeBinary(32)),
    )
    try:
        meta.create_all(engine)
        with engine.begin() as conn:
            conn.execute(
                links.insert(),
                [
                    {"okta_id": "00u1", "scim_id": "a1", "pushed_hash": b"\x01" * 32},
                    {"okta_id": "00u2", "scim_id": "a2", "pushed_hash": None},
                ],
            )
        with engine.connect() as conn:
            rows = conn.execute(sa.select(links).order_by(links.c.okta_id)).all()
            db = conn.execute(sa.text("SELECT current_database()")).scalar_one()
        assert db == "scimflow"
        assert engine.dialect.name == "postgresql"
        assert [(r.okta_id, r.scim_id, r.pushed_hash) for r in rows] == [
            ("00u1", "a1", b"\x01" * 32),
            ("00u2", "a2", None),
        ]
        # the primary key holds on the real server
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(links.insert(), {"okta_id": "00u1", "scim_id": "dup"})
    finally:
        meta.drop_all(engine)
        engine.dispose()


def test_wrong_password_is_refused(postgres: PostgresServer) -> None:
    url = sa.make_url(postgres.url()).set(password="not-the-password")
    engine = sa.create_engine(url)
    with pytest.raises(sa.exc.OperationalError) as info:
        engine.connect()
    assert "password authentication failed" in str(info.value)
    assert postgres.password() not in str(info.value)
