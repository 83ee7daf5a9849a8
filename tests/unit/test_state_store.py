"""The state store on SQLite files: migrations, links, parked records, the audit chain.

Tampering is done the way an intruder with database access would: plain SQL through
the ``sqlite3`` module, behind the store's back.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from scimflow.errors import StateStoreError
from scimflow.state import AuditEntry, StateStore
from scimflow.state.cli import audit_app, db_app
from scimflow.state.store import GENESIS_HASH, ParkKind, canonical_json
from typer.testing import CliRunner


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture()
def store(db: Path) -> Iterator[StateStore]:
    with StateStore(_url(db)) as s:
        s.migrate()
        yield s


def _entry(n: int, *, target: str = "app-a", outcome: str = "applied") -> AuditEntry:
    return AuditEntry(
        run_id="run-1",
        cause=f"evt-{n}",
        target=target,
        operation="create",
        kind="User",
        okta_id=f"00u{n}",
        scim_id=f"s{n}",
        request={"userName": f"user{n}@example.com", "active": True},
        status=201,
        response={"id": f"s{n}"},
        outcome=outcome,
    )


def _sql(db: Path, statement: str, *params: object) -> None:
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.execute(statement, params)
    finally:
        conn.close()


def _query(db: Path, statement: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(statement).fetchall()
    finally:
        conn.close()


# -- schema -------------------------------------------------------------------------------


def test_migrate_twice_creates_the_tables_once(db: Path) -> None:
    with StateStore(_url(db)) as s:
        s.migrate()
        s.save_links("app-a", "User", [("00u1", "s1", "h1")])
        s.migrate()
        # the second upgrade found head: nothing recreated, the data is still there
        assert set(s.links("app-a", "User")) == {"00u1"}
    tables = {r[0] for r in _query(db, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {
        "scimflow_links",
        "scimflow_parked",
        "scimflow_audit",
        "scimflow_audit_head",
        "scimflow_seen_events",
        "scimflow_alembic_version",
    }
    assert _query(db, "SELECT version_num FROM scimflow_alembic_version") == [("0003",)]


def test_seen_events_are_remembered_once_and_pruned(store: StateStore) -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    store.mark_seen([("e1", now), ("e2", None)])
    store.mark_seen([("e1", now), ("e3", now)])  # e1 again: kept, no error
    assert store.unseen(["e1", "e2", "e3", "e4"]) == {"e4"}
    assert store.prune_seen(now - timedelta(days=1)) == 0
    assert store.prune_seen(now + timedelta(minutes=1)) == 3
    assert store.unseen(["e1", "e4"]) == {"e1", "e4"}


def test_an_unreachable_database_raises_state_store_error(tmp_path: Path) -> None:
    s = StateStore(_url(tmp_path / "no-such-dir" / "state.db"))
    with pytest.raises(StateStoreError) as info:
        s.migrate()
    assert info.value.operation == "migrate"
    assert isinstance(info.value.__cause__, sa.exc.OperationalError)
    with pytest.raises(StateStoreError, match="read links"):
        s.links("app-a", "User")
    s.close()


def test_the_password_never_appears_in_an_error() -> None:
    # nothing listens on port 1: the connection is refused at once
    s = StateStore("postgresql+psycopg://scimflow:s3cret-pw@127.0.0.1:1/scimflow")
    with pytest.raises(StateStoreError) as info:
        s.links("app-a", "User")
    assert "s3cret-pw" not in str(info.value)
    assert "scimflow:***@127.0.0.1:1" in str(info.value)
    assert info.value.operation == "read links"
    s.close()


def test_an_unparseable_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(StateStoreError) as info:
        StateStore("not a url with s3cret-pw")
    assert "s3cret-pw" not in str(info.value)
    # the parser's own message would repeat the password: it is not chained
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_only_postgresql_and_sqlite_are_supported() -> None:
    with pytest.raises(StateStoreError, match="only postgresql and sqlite"):
        StateStore("mysql+pymysql://u:pw@127.0.0.1/db")


# -- links --------------------------------------------------------------------------------


def test_links_upsert_read_and_drop(store: StateStore) -> None:
    store.save_links("app-a", "User", [("00u1", "s1", "h1"), ("00u2", "s2", None)])
    store.save_links("app-a", "Group", [("00g1", "g1", "gh")])
    store.save_links("app-b", "User", [("00u1", "other", "x")])
    first = store.links("app-a", "User")
    assert {k: (v.scim_id, v.pushed_hash) for k, v in first.items()} == {
        "00u1": ("s1", "h1"),
        "00u2": ("s2", None),
    }
    assert first["00u1"].pushed_at.tzinfo is not None

    # the same key again: updated in place, with a later pushed_at
    store.save_links("app-a", "User", [("00u1", "s1", "h2")])
    second = store.links("app-a", "User")
    assert (second["00u1"].scim_id, second["00u1"].pushed_hash) == ("s1", "h2")
    assert second["00u1"].pushed_at > first["00u1"].pushed_at
    assert second["00u2"] == first["00u2"]

    store.drop_links("app-a", "User", ["00u1", "00u-unknown"])
    assert set(store.links("app-a", "User")) == {"00u2"}
    # other targets and kinds are untouched
    assert store.links("app-b", "User")["00u1"].scim_id == "other"
    assert set(store.links("app-a", "Group")) == {"00g1"}


def test_one_okta_id_twice_in_a_batch_keeps_the_last(store: StateStore) -> None:
    store.save_links("app-a", "User", [("00u1", "s1", "h1"), ("00u1", "s1", "h2")])
    assert store.links("app-a", "User")["00u1"].pushed_hash == "h2"


def test_a_scim_id_links_to_one_okta_id_only(store: StateStore) -> None:
    store.save_links("app-a", "User", [("00u1", "s1", "h1"), ("00u3", "s3", None)])
    # linked to another Okta id (a rehire under a new id): the link moves
    store.save_links("app-a", "User", [("00u9", "s9", None), ("00u2", "s1", "h2")])
    assert store.count_links("app-a", "User") == 3 and store.count_links("app-a", "Group") == 0
    links = store.links("app-a", "User")
    assert {k: (v.scim_id, v.pushed_hash) for k, v in links.items()} == {
        "00u2": ("s1", "h2"),
        "00u3": ("s3", None),
        "00u9": ("s9", None),
    }
    # two Okta ids for one resource in one batch: refused, in one transaction
    with pytest.raises(StateStoreError) as info:
        store.save_links("app-a", "User", [("00u7", "s7", None), ("00u8", "s7", None)])
    assert isinstance(info.value.__cause__, sa.exc.IntegrityError)
    assert info.value.operation == "save links"
    assert set(store.links("app-a", "User")) == {"00u2", "00u3", "00u9"}
    # the constraint is per target and kind
    store.save_links("app-b", "User", [("00u2", "s1", None)])
    store.save_links("app-a", "Group", [("00g2", "s1", None)])
    assert store.links("app-b", "User")["00u2"].scim_id == "s1"


def test_an_unknown_kind_is_refused(store: StateStore) -> None:
    with pytest.raises(ValueError, match="kind"):
        store.save_links("app-a", "user", [("00u1", "s1", None)])
    with pytest.raises(ValueError, match="kind"):
        store.park("app-a", "Users", "00u1", "x", None, park_kind=ParkKind.TARGET_ERROR)


# -- parked records -----------------------------------------------------------------------


def test_park_counts_attempts_and_keeps_the_first_time(store: StateStore) -> None:
    store.park(
        "app-a",
        "User",
        "00u1",
        "400: bad email",
        {"userName": "x"},
        park_kind=ParkKind.TARGET_ERROR,
    )
    store.park("app-b", "Group", "00g1", "validation: name", None, park_kind=ParkKind.QUARANTINED)
    (first,) = store.parked("app-a")
    assert (first.attempts, first.reason, first.payload) == (1, "400: bad email", {"userName": "x"})
    assert first.first_parked_at == first.last_parked_at

    store.park("app-a", "User", "00u1", "400: still bad", None, park_kind=ParkKind.TARGET_ERROR)
    (again,) = store.parked("app-a")
    assert again.attempts == 2
    assert again.reason == "400: still bad"
    assert again.payload is None
    assert again.first_parked_at == first.first_parked_at
    assert again.last_parked_at > first.last_parked_at

    assert [(p.target, p.kind, p.okta_id) for p in store.parked()] == [
        ("app-a", "User", "00u1"),
        ("app-b", "Group", "00g1"),
    ]
    store.unpark("app-a", "User", ["00u1"])
    assert store.parked("app-a") == []
    assert [p.okta_id for p in store.parked()] == ["00g1"]


def test_parked_records_keep_their_kind_and_are_read_by_kind(store: StateStore) -> None:
    store.park("app-a", "User", "00u1", "HTTP 400", None, park_kind=ParkKind.TARGET_ERROR)
    store.park("app-a", "User", "00u2", "down", None, park_kind=ParkKind.UNAVAILABLE)
    store.park("app-a", "Group", "00g1", "down", None, park_kind=ParkKind.UNAVAILABLE)
    assert {p.okta_id: p.park_kind for p in store.parked()} == {
        "00u1": ParkKind.TARGET_ERROR,
        "00u2": ParkKind.UNAVAILABLE,
        "00g1": ParkKind.UNAVAILABLE,
    }
    unavailable = store.parked(park_kinds=[ParkKind.UNAVAILABLE], oldest_first=True, limit=1)
    assert [p.okta_id for p in unavailable] == ["00u2"]  # the oldest first
    # parked again for another reason: the kind follows
    store.park("app-a", "User", "00u2", "guard", None, park_kind=ParkKind.GUARD)
    assert [p.okta_id for p in store.parked(park_kinds=[ParkKind.UNAVAILABLE])] == ["00g1"]
    with pytest.raises(ValueError, match="not a valid ParkKind"):
        store.park("app-a", "User", "00u3", "x", None, park_kind="nonsense")  # type: ignore[arg-type]


def test_the_migration_gives_rows_parked_before_it_the_kind_their_reason_meant(db: Path) -> None:
    from alembic import command
    from alembic.config import Config
    from scimflow.state.store import MIGRATIONS

    with StateStore(_url(db)) as s:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with s.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0002")
    reasons = {
        "00u1": "validation: email: not an email",
        "00u2": "mapping: userName: missing",
        "00u3": "deletion guard: a batch would deprovision 5 of the 20 linked users",
        "00u4": "target unavailable: app-a: HTTP 503",
        "00u5": "HTTP 400: invalidValue",
    }
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO scimflow_parked VALUES ('app-a', 'User', ?, ?, 1, "
            "'2026-11-01 00:00:00', '2026-11-01 00:00:00', NULL)",
            list(reasons.items()),
        )
    with StateStore(_url(db)) as s:
        s.migrate()
        assert {p.okta_id: p.park_kind.value for p in s.parked()} == {
            "00u1": "quarantined",
            "00u2": "rejected",
            "00u3": "guard",
            "00u4": "unavailable",
            "00u5": "target-error",
        }
        assert {p.okta_id: p.reason for p in s.parked()} == reasons


# -- audit log ----------------------------------------------------------------------------


def test_an_empty_audit_log_verifies(store: StateStore) -> None:
    assert store.append_audit([]) == []
    result = store.verify_audit()
    assert (result.ok, result.rows, result.first_bad_seq) == (True, 0, None)


def test_append_and_verify(store: StateStore) -> None:
    assert store.append_audit([_entry(1), _entry(2)]) == [1, 2]
    assert store.append_audit([_entry(3, target="app-b", outcome="parked")]) == [3]
    result = store.verify_audit()
    assert (result.ok, result.rows, result.first_bad_seq) == (True, 3, None)

    rows = store.audit()
    assert [r["seq"] for r in rows] == [3, 2, 1]
    assert rows[2]["request"] == {"userName": "user1@example.com", "active": True}
    assert rows[2]["prev_hash"] == GENESIS_HASH
    assert rows[1]["prev_hash"] == rows[2]["hash"]
    assert [r["seq"] for r in store.audit("app-a", limit=1)] == [2]
    assert [r["outcome"] for r in store.audit("app-b")] == ["parked"]


def test_the_hash_is_sha256_of_prev_hash_and_canonical_json(store: StateStore, db: Path) -> None:
    store.append_audit([_entry(1), _entry(2)])
    second = store.audit(limit=1)[0]
    # the stored JSON text is canonical: sorted keys, no spaces
    (request_text,) = _query(db, "SELECT request FROM scimflow_audit WHERE seq = 2")[0]
    assert request_text == '{"active":true,"userName":"user2@example.com"}'
    fields = {k: v for k, v in second.items() if k != "hash"}
    fields["at"] = second["at"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    fields["request"] = request_text
    fields["response"] = canonical_json(second["response"])
    expected = hashlib.sha256((second["prev_hash"] + canonical_json(fields)).encode()).hexdigest()
    assert second["hash"] == expected
    assert _query(db, "SELECT seq, hash FROM scimflow_audit_head") == [(2, second["hash"])]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("outcome", "failed"),
        ("request", json.dumps({"userName": "someone-else"})),
        ("status", 500),
        ("at", "2001-01-01 00:00:00.000000"),
        ("scim_id", None),
    ],
)
def test_an_altered_row_fails_verification_at_its_seq(
    store: StateStore, db: Path, column: str, value: object
) -> None:
    store.append_audit([_entry(n) for n in range(1, 6)])
    _sql(db, f"UPDATE scimflow_audit SET {column} = ? WHERE seq = 3", value)
    result = store.verify_audit()
    assert not result.ok
    assert result.first_bad_seq == 3
    assert result.rows == 2
    assert "altered" in result.reason


def _forge(db: Path, seq: int, outcome: str) -> str:
    """Alter a row and give it a correct hash for its new content, as an intruder could."""
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        row = dict(conn.execute("SELECT * FROM scimflow_audit WHERE seq = ?", (seq,)).fetchone())
    finally:
        conn.close()
    row["outcome"] = outcome
    fields = {k: v for k, v in row.items() if k != "hash"}
    fields["at"] = row["at"].replace(" ", "T") + "Z"
    forged = hashlib.sha256((row["prev_hash"] + canonical_json(fields)).encode()).hexdigest()
    _sql(db, "UPDATE scimflow_audit SET outcome = ?, hash = ? WHERE seq = ?", outcome, forged, seq)
    return forged


def test_a_row_altered_with_a_recomputed_hash_breaks_the_next_link(
    store: StateStore, db: Path
) -> None:
    store.append_audit([_entry(n) for n in range(1, 6)])
    _forge(db, 3, "failed")
    result = store.verify_audit()
    # row 3 is self-consistent now, but row 4 still names the old hash
    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert "prev_hash does not match the hash of row 3" in result.reason


def test_the_last_row_altered_with_a_recomputed_hash_fails_on_the_head(
    store: StateStore, db: Path
) -> None:
    store.append_audit([_entry(n) for n in range(1, 6)])
    _forge(db, 5, "failed")
    result = store.verify_audit()
    assert (result.ok, result.rows, result.first_bad_seq) == (False, 5, 5)
    assert "head anchor" in result.reason


def test_the_first_row_must_start_from_the_genesis_hash(store: StateStore, db: Path) -> None:
    store.append_audit([_entry(n) for n in range(1, 4)])
    # drop row 1 and renumber: row 2 becomes the first, but it chains to the old row 1
    _sql(db, "DELETE FROM scimflow_audit WHERE seq = 1")
    _sql(db, "UPDATE scimflow_audit SET seq = seq - 1")
    result = store.verify_audit()
    assert (result.ok, result.first_bad_seq) == (False, 1)
    assert "genesis" in result.reason


def test_a_removed_middle_row_fails_verification(store: StateStore, db: Path) -> None:
    store.append_audit([_entry(n) for n in range(1, 6)])
    _sql(db, "DELETE FROM scimflow_audit WHERE seq = 3")
    result = store.verify_audit()
    assert (result.ok, result.first_bad_seq, result.rows) == (False, 3, 2)
    assert "missing" in result.reason


def test_a_removed_row_renumbered_over_fails_on_prev_hash(store: StateStore, db: Path) -> None:
    store.append_audit([_entry(n) for n in range(1, 6)])
    # close the gap so the seqs look contiguous: the chain of hashes still breaks
    _sql(db, "DELETE FROM scimflow_audit WHERE seq = 3")
    _sql(db, "UPDATE scimflow_audit SET seq = seq - 1 WHERE seq > 3")
    _sql(db, "UPDATE scimflow_audit_head SET seq = 4")
    result = store.verify_audit()
    assert (result.ok, result.first_bad_seq) == (False, 3)
    assert "prev_hash does not match the hash of row 2" in result.reason


def test_a_removed_last_row_is_caught_by_the_head_anchor(store: StateStore, db: Path) -> None:
    store.append_audit([_entry(n) for n in range(1, 6)])
    _sql(db, "DELETE FROM scimflow_audit WHERE seq = 5")
    result = store.verify_audit()
    assert (result.ok, result.rows, result.first_bad_seq) == (False, 4, 5)
    assert "head anchor" in result.reason

    # appending afterwards continues from the head: the gap stays visible
    assert store.append_audit([_entry(6)]) == [6]
    result = store.verify_audit()
    assert (result.ok, result.first_bad_seq) == (False, 5)


def test_an_emptied_log_is_caught_by_the_head_anchor(store: StateStore, db: Path) -> None:
    store.append_audit([_entry(n) for n in range(1, 4)])
    _sql(db, "DELETE FROM scimflow_audit")
    result = store.verify_audit()
    assert (result.ok, result.rows, result.first_bad_seq) == (False, 0, 1)


def test_removing_the_head_anchor_with_the_tail_is_caught(store: StateStore, db: Path) -> None:
    store.append_audit([_entry(n) for n in range(1, 4)])
    _sql(db, "DELETE FROM scimflow_audit WHERE seq = 3")
    _sql(db, "DELETE FROM scimflow_audit_head")
    result = store.verify_audit()
    assert (result.ok, result.rows) == (False, 2)
    assert "head anchor is missing" in result.reason


def test_a_row_added_behind_the_stores_back_is_caught(store: StateStore, db: Path) -> None:
    store.append_audit([_entry(n) for n in range(1, 4)])
    # a forged row 4 that links correctly to row 3 (the forger read its hash)
    (last_hash,) = _query(db, "SELECT hash FROM scimflow_audit WHERE seq = 3")[0]
    _sql(
        db,
        "INSERT INTO scimflow_audit SELECT 4, at, run_id, cause, target, operation, kind, "
        "okta_id, scim_id, request, status, response, outcome, ?, ? "
        "FROM scimflow_audit WHERE seq = 3",
        last_hash,
        "e" * 64,
    )
    result = store.verify_audit()
    assert (result.ok, result.first_bad_seq) == (False, 4)


def test_two_stores_appending_at_once_keep_one_chain(db: Path) -> None:
    with StateStore(_url(db)) as s:
        s.migrate()
    stores = [StateStore(_url(db)), StateStore(_url(db))]
    seqs: list[list[int]] = [[], []]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def append(i: int) -> None:
        try:
            start.wait()
            for batch in range(20):
                entries = [_entry(1000 * i + 5 * batch + k) for k in range(5)]
                seqs[i].extend(stores[i].append_audit(entries))
        except BaseException as exc:  # reported below: a thread's exception is lost
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for s in stores:
        s.close()
    assert errors == []
    assert len(seqs[0]) == len(seqs[1]) == 100
    assert sorted(seqs[0] + seqs[1]) == list(range(1, 201))
    # each batch got consecutive seqs: no interleaving inside a transaction
    for mine in seqs:
        for b in range(20):
            chunk = mine[5 * b : 5 * b + 5]
            assert chunk == list(range(chunk[0], chunk[0] + 5))
    with StateStore(_url(db)) as s:
        result = s.verify_audit()
    assert (result.ok, result.rows) == (True, 200)
    assert _query(db, "SELECT seq FROM scimflow_audit_head") == [(200,)]


# -- command line -------------------------------------------------------------------------


def test_cli_upgrade_and_verify(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    up = runner.invoke(db_app, ["upgrade", "--url", _url(db)])
    assert up.exit_code == 0, up.output
    with StateStore(_url(db)) as s:
        s.append_audit([_entry(n) for n in range(1, 4)])

    # the URL from the environment
    monkeypatch.setenv("SCIMFLOW_STATE_URL", _url(db))
    ok = runner.invoke(audit_app, ["verify"])
    assert ok.exit_code == 0, ok.output
    assert "OK: 3 rows checked" in ok.stdout

    _sql(db, "UPDATE scimflow_audit SET outcome = 'failed' WHERE seq = 2")
    bad = runner.invoke(audit_app, ["verify"])
    assert bad.exit_code == 1
    assert "BROKEN at seq 2" in bad.stderr


def test_cli_verify_unreachable_exits_2_without_the_password() -> None:
    url = "postgresql+psycopg://scimflow:s3cret-pw@127.0.0.1:1/scimflow"
    result = CliRunner().invoke(audit_app, ["verify", "--url", url])
    assert result.exit_code == 2
    assert "verify the audit log" in result.stderr
    assert "s3cret-pw" not in result.output


def test_head_names_the_newest_migration(db: Path) -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from scimflow.state.store import HEAD, MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD
    with StateStore(_url(db)) as s:
        assert not s._at_head()
        s.migrate()
        assert s._at_head()
        s.migrate()  # the fast path: nothing to do, nothing broken
        s.save_links("app-a", "User", [("00u1", "s1", "h1")])
