"""The state store on a real PostgreSQL: migrations, upserts, the advisory lock, tampering.

Each test gets a database of its own (created and dropped here), so the session's
``scimflow`` database and the other tests are never touched.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from scimflow.errors import StateStoreError
from scimflow.state import AuditEntry, StateStore
from scimflow.state.store import ParkKind

if TYPE_CHECKING:
    from scimflow.services import PostgresServer

pytestmark = pytest.mark.integration


@pytest.fixture()
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    admin = sa.create_engine(postgres.url(), isolation_level="AUTOCOMMIT")
    name = f"scimflow_state_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.make_url(postgres.url()).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture()
def store(pg_url: str) -> Iterator[StateStore]:
    with StateStore(pg_url) as s:
        s.migrate()
        yield s


def _entry(n: int) -> AuditEntry:
    return AuditEntry(
        run_id="run-1",
        cause=f"evt-{n}",
        target="app-a",
        operation="update",
        kind="User",
        okta_id=f"00u{n}",
        scim_id=f"s{n}",
        request={"name": {"givenName": f"G{n}"}},
        status=200,
        response=None,
        outcome="applied",
    )


def _sql(store: StateStore, statement: str) -> None:
    with store.engine.begin() as conn:
        conn.exec_driver_sql(statement)


def _run_in_threads(work: Callable[[int], None], n: int = 2) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def run(i: int) -> None:
        try:
            start.wait()
            work(i)
        except BaseException as exc:  # reported below: a thread's exception is lost
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []


def test_migrate_is_idempotent_and_safe_to_run_at_once(pg_url: str) -> None:
    stores = [StateStore(pg_url), StateStore(pg_url)]
    # two workers starting on an empty database: the advisory lock serialises them
    _run_in_threads(lambda i: stores[i].migrate())
    stores[0].migrate()
    with stores[0].engine.connect() as conn:
        tables = set(
            conn.execute(
                sa.text(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
                )
            ).scalars()
        )
        version = conn.execute(sa.text("SELECT version_num FROM scimflow_alembic_version")).all()
    for s in stores:
        s.close()
    assert tables == {
        "scimflow_links",
        "scimflow_parked",
        "scimflow_audit",
        "scimflow_audit_head",
        "scimflow_seen_events",
        "scimflow_alembic_version",
    }
    assert [tuple(r) for r in version] == [("0003",)]


def test_links_upsert_constraint_and_drop(store: StateStore) -> None:
    store.save_links("app-a", "User", [("00u1", "s1", "h1"), ("00u2", "s2", None)])
    store.save_links("app-a", "User", [("00u1", "s1", "h2"), ("00u1", "s1", "h3")])
    links = store.links("app-a", "User")
    assert {k: (v.scim_id, v.pushed_hash) for k, v in links.items()} == {
        "00u1": ("s1", "h3"),
        "00u2": ("s2", None),
    }
    assert links["00u1"].pushed_at.utcoffset() is not None
    with pytest.raises(StateStoreError) as info:
        store.save_links("app-a", "User", [("00u3", "s3", None), ("00u4", "s3", None)])
    assert isinstance(info.value.__cause__, sa.exc.IntegrityError)
    assert set(store.links("app-a", "User")) == {"00u1", "00u2"}
    # a resource linked to another Okta id: the link moves
    store.save_links("app-a", "User", [("00u4", "s2", "h4")])
    assert {k: v.scim_id for k, v in store.links("app-a", "User").items()} == {
        "00u1": "s1",
        "00u4": "s2",
    }
    store.drop_links("app-a", "User", ["00u1"])
    assert set(store.links("app-a", "User")) == {"00u4"}


def test_park_and_unpark(store: StateStore) -> None:
    store.park("app-a", "User", "00u1", "down", {"userName": "x"}, park_kind=ParkKind.UNAVAILABLE)
    store.park(
        "app-a",
        "User",
        "00u1",
        "400: bad again",
        {"userName": "y"},
        park_kind=ParkKind.TARGET_ERROR,
    )
    (parked,) = store.parked()
    assert parked.park_kind == ParkKind.TARGET_ERROR
    assert (parked.attempts, parked.reason, parked.payload) == (
        2,
        "400: bad again",
        {"userName": "y"},
    )
    assert parked.last_parked_at > parked.first_parked_at
    store.unpark("app-a", "User", ["00u1"])
    assert store.parked("app-a") == []


def test_concurrent_appends_keep_one_chain(store: StateStore, pg_url: str) -> None:
    stores = [StateStore(pg_url), StateStore(pg_url)]
    seqs: list[list[int]] = [[], []]

    def append(i: int) -> None:
        for batch in range(20):
            seqs[i].extend(
                stores[i].append_audit([_entry(1000 * i + 5 * batch + k) for k in range(5)])
            )

    _run_in_threads(append)
    for s in stores:
        s.close()
    assert sorted(seqs[0] + seqs[1]) == list(range(1, 201))
    result = store.verify_audit()
    assert (result.ok, result.rows) == (True, 200)


def test_verify_does_not_depend_on_the_session_time_zone(store: StateStore, pg_url: str) -> None:
    store.append_audit([_entry(n) for n in range(1, 4)])
    elsewhere = sa.make_url(pg_url).update_query_dict({"options": "-c timezone=Asia/Kolkata"})
    with StateStore(elsewhere) as other:
        with other.engine.connect() as conn:
            assert conn.execute(sa.text("SHOW timezone")).scalar_one() == "Asia/Kolkata"
        assert other.verify_audit().ok
        other.append_audit([_entry(4)])
    result = store.verify_audit()
    assert (result.ok, result.rows) == (True, 4)


def test_tampering_is_detected(store: StateStore) -> None:
    store.append_audit([_entry(n) for n in range(1, 7)])
    assert store.verify_audit().ok

    _sql(store, "UPDATE scimflow_audit SET status = 500 WHERE seq = 2")
    result = store.verify_audit()
    assert (result.ok, result.first_bad_seq) == (False, 2)
    assert "altered" in result.reason
    _sql(store, "UPDATE scimflow_audit SET status = 200 WHERE seq = 2")
    assert store.verify_audit().ok

    _sql(store, "DELETE FROM scimflow_audit WHERE seq = 6")
    result = store.verify_audit()
    assert (result.ok, result.rows, result.first_bad_seq) == (False, 5, 6)
    assert "head anchor" in result.reason

    _sql(store, "DELETE FROM scimflow_audit WHERE seq = 4")
    result = store.verify_audit()
    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert "missing" in result.reason


def test_a_wrong_password_is_a_state_store_error_without_it(pg_url: str) -> None:
    wrong = sa.make_url(pg_url).set(password="not-the-password-42")
    with StateStore(wrong) as s, pytest.raises(StateStoreError) as info:
        s.migrate()
    assert "password authentication failed" in str(info.value)
    assert "not-the-password-42" not in str(info.value)
