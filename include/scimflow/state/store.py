"""The state store: SCIM id links, parked records and a tamper-evident audit log.

One class, :class:`StateStore`, over SQLAlchemy 2 on PostgreSQL (production) or a SQLite
file (tests, a laptop). Its schema is managed by Alembic (:meth:`StateStore.migrate`).

The audit log is a hash chain. Each row's ``hash`` is
``sha256(prev_hash + canonical JSON of the row's other fields)``, ``prev_hash`` being the
previous row's ``hash`` (64 zeros for the first row), and ``seq`` is assigned by the
store without gaps. A one-row table, ``scimflow_audit_head``, holds the last ``(seq,
hash)`` and is updated in the same transaction as the rows. :meth:`StateStore.verify_audit`
then detects an altered row (its hash), a removed row (a gap in ``seq``, or a
``prev_hash`` that no longer matches), and removed newest rows or an emptied table (the
head). It is tamper-evident against edits made with SQL, not against someone who
recomputes the whole chain and the head: that needs an anchor outside the database.

Writers take one lock per append (PostgreSQL: a transaction-level advisory lock; SQLite:
``BEGIN IMMEDIATE``), so the read of the last hash and the insert are atomic even when
several processes append at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from scimflow.errors import StateStoreError
from scimflow.state.tables import AUDIT, AUDIT_HEAD, LINKS, PARKED, SEEN_EVENTS

__all__ = [
    "GENESIS_HASH",
    "HEAD",
    "KINDS",
    "MIGRATIONS",
    "TARGET_KIND",
    "AuditEntry",
    "AuditVerification",
    "Link",
    "ParkKind",
    "Parked",
    "StateStore",
    "canonical_json",
]

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
GENESIS_HASH = "0" * 64
# the newest migration's revision (a test checks it against the migrations folder)
HEAD = "0003"
KINDS = ("User", "Group")
# the kind of the audit row that summarises one reconcile of a target
TARGET_KIND = "Target"

# pg_advisory_xact_lock keys: arbitrary, fixed, and distinct from each other
_AUDIT_LOCK = 0x5C1F_A0D1_7000_0001
_MIGRATE_LOCK = 0x5C1F_A0D1_7000_0002
# ids per DELETE ... IN (...): far below SQLite's and PostgreSQL's parameter limits
_CHUNK = 500
_SQLITE_BUSY_TIMEOUT = 30.0


def canonical_json(obj: Any) -> str:
    """The one JSON spelling of ``obj`` that the store writes and hashes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def _utc(value: datetime) -> datetime:
    # SQLite gives back the naive UTC value it was given; PostgreSQL an aware one in the
    # session's time zone: both become the same aware UTC datetime
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _canonical_time(value: datetime) -> str:
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _now() -> datetime:
    return datetime.now(UTC)


def _loads(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _dumps(obj: dict[str, Any] | None) -> str | None:
    return None if obj is None else canonical_json(obj)


# Named here, not taken from the table: a column added later must not change the hash
# of the rows written before it.
_HASHED_FIELDS = (
    "seq",
    "at",
    "run_id",
    "cause",
    "target",
    "operation",
    "kind",
    "okta_id",
    "scim_id",
    "request",
    "status",
    "response",
    "outcome",
    "prev_hash",
)


def _row_hash(row: dict[str, Any]) -> str:
    """``sha256(prev_hash + canonical JSON of every field but hash)``, ``at`` as ISO UTC."""
    fields = {name: row[name] for name in _HASHED_FIELDS}
    fields["at"] = _canonical_time(row["at"])
    body = row["prev_hash"] + canonical_json(fields)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")


def _chunks(items: Iterable[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == _CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass(frozen=True)
class Link:
    """A target resource scimflow manages: Okta id → SCIM id, and the hash last pushed."""

    okta_id: str
    scim_id: str
    pushed_hash: str | None
    pushed_at: datetime


class ParkKind(StrEnum):
    """Why a record is parked (the ``park_kind`` column)."""

    QUARANTINED = "quarantined"  # failed validation (great-expectations)
    REJECTED = "rejected"  # the target's mapping refused it
    GUARD = "guard"  # a deprovision the deletion guard held back
    UNAVAILABLE = "unavailable"  # its target could not be reached
    TARGET_ERROR = "target-error"  # the target refused the write for good (a 4xx)


@dataclass(frozen=True)
class Parked:
    """A record left as it is in a target, kept with its kind and reason."""

    target: str
    kind: str  # the resource: User or Group
    okta_id: str
    park_kind: ParkKind
    reason: str
    attempts: int
    first_parked_at: datetime
    last_parked_at: datetime
    payload: dict[str, Any] | None


@dataclass(frozen=True)
class AuditEntry:
    """One write (or decision) to record; the store adds ``seq``, ``at`` and the hashes.

    ``operation`` is a plan action (create, update, deactivate, delete, link,
    group_create, group_update, group_delete, members_add, members_remove, ...) or
    ``park``, or ``reconcile`` (kind ``Target``, Okta id ``*``: the summary of one
    reconcile that changed something, its counts in ``response``); ``outcome`` is applied,
    linked, parked, failed, skipped, or summary.
    """

    run_id: str
    cause: str
    target: str
    operation: str
    kind: str
    okta_id: str
    scim_id: str | None
    request: dict[str, Any] | None
    status: int | None
    response: dict[str, Any] | None
    outcome: str


@dataclass(frozen=True)
class AuditVerification:
    """The result of walking the chain: ``first_bad_seq`` is None when ``ok`` (or unknown)."""

    ok: bool
    rows: int
    first_bad_seq: int | None
    reason: str


class StateStore:
    """Links, parked records and the audit log in one SQL database.

    ``url`` is a SQLAlchemy URL: ``postgresql+psycopg://user:pw@host:port/db`` or
    ``sqlite:///path/to/state.db`` (a file: an in-memory database is per connection).
    Every failure of the database surfaces as :class:`StateStoreError`, whose message
    shows the URL with its password masked. Call :meth:`close` (or use ``with``) to
    release the connections.
    """

    def __init__(self, url: str | sa.URL) -> None:
        try:
            parsed = sa.make_url(url)
        except sa.exc.ArgumentError:
            # the parser's message repeats the whole string, password included: drop it
            raise StateStoreError("open", "not a valid SQLAlchemy URL") from None
        if parsed.get_backend_name() not in ("postgresql", "sqlite"):
            raise StateStoreError(
                "open", f"{parsed!r}: only postgresql and sqlite databases are supported"
            )
        try:
            if parsed.get_backend_name() == "sqlite":
                self.engine = sa.create_engine(
                    parsed, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT}
                )
                sa.event.listen(self.engine, "connect", _sqlite_no_implicit_begin)
                sa.event.listen(self.engine, "begin", _sqlite_begin_immediate)
            else:
                # a long-lived task outlives server restarts and idle timeouts
                self.engine = sa.create_engine(parsed, pool_pre_ping=True)
        except (sa.exc.SQLAlchemyError, ImportError) as exc:
            raise StateStoreError("open", f"{parsed!r}: {exc}") from exc
        self.dialect: str = self.engine.dialect.name

    def __repr__(self) -> str:
        return f"StateStore({self.engine.url!r})"

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections (the store can still be used: it reconnects)."""
        self.engine.dispose()

    # -- plumbing ---------------------------------------------------------------------

    def _describe(self, exc: BaseException) -> str:
        # the driver's own message (first line), not SQLAlchemy's, which appends the
        # statement's parameters: identity data has no place in an error message
        cause = getattr(exc, "orig", None) or exc
        lines = str(cause).strip().splitlines()
        first = lines[0].strip() if lines else ""
        reason = f"{type(cause).__name__}: {first} ({self.engine.url!r})"
        password = self.engine.url.password
        if password:
            reason = reason.replace(str(password), "***")
        return reason

    @contextmanager
    def _errors(self, operation: str) -> Iterator[None]:
        try:
            yield
        except sa.exc.SQLAlchemyError as exc:
            raise StateStoreError(operation, self._describe(exc)) from exc

    @contextmanager
    def _begin(self, operation: str) -> Iterator[sa.Connection]:
        with self._errors(operation), self.engine.begin() as conn:
            yield conn

    def _upsert(
        self,
        table: sa.Table,
        keys: Sequence[str],
        update: Callable[[Any], dict[str, Any]],
    ) -> sa.Executable:
        """INSERT ... ON CONFLICT (keys) DO UPDATE; ``update`` gets the ``excluded`` row."""
        if self.dialect == "postgresql":
            pg = postgresql.insert(table)
            return pg.on_conflict_do_update(index_elements=keys, set_=update(pg.excluded))
        lite = sqlite.insert(table)
        return lite.on_conflict_do_update(index_elements=keys, set_=update(lite.excluded))

    # -- schema -----------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic ``upgrade head``); idempotent.

        A store already at :data:`HEAD` returns after one query: every stream task calls
        this, and Alembic's own check (loading the revision scripts) costs half a second.
        """
        from alembic import command
        from alembic.config import Config

        if self._at_head():
            return

        config = Config()
        # ConfigParser interpolates '%': a path must not be read as a template
        config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
        config.set_main_option("path_separator", "os")
        try:
            with self.engine.begin() as conn:
                if self.dialect == "postgresql":
                    # two workers starting at once: the second waits, then finds head
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATE_LOCK)))
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        except StateStoreError:
            raise
        except Exception as exc:
            # whatever fails inside Alembic or a revision, the schema was not migrated
            raise StateStoreError("migrate", self._describe(exc)) from exc
        log.info("state store %r is at the newest revision", self.engine.url)

    def _at_head(self) -> bool:
        try:
            with self.engine.connect() as conn:
                version = conn.execute(
                    sa.text("SELECT version_num FROM scimflow_alembic_version")
                ).scalar()
        except sa.exc.SQLAlchemyError:
            return False  # no version table yet (or unreadable): let Alembic decide
        return version == HEAD

    # -- links ------------------------------------------------------------------------

    def links(self, target: str, kind: str) -> dict[str, Link]:
        """Every link of ``target`` for ``kind`` (User or Group), keyed by Okta id."""
        _check_kind(kind)
        query = sa.select(
            LINKS.c.okta_id, LINKS.c.scim_id, LINKS.c.pushed_hash, LINKS.c.pushed_at
        ).where(LINKS.c.target == target, LINKS.c.kind == kind)
        with self._begin("read links") as conn:
            rows = conn.execute(query).all()
        return {
            r.okta_id: Link(r.okta_id, r.scim_id, r.pushed_hash, _utc(r.pushed_at)) for r in rows
        }

    def count_links(self, target: str, kind: str) -> int:
        """How many links ``target`` has for ``kind``, without reading them."""
        _check_kind(kind)
        query = (
            sa.select(sa.func.count())
            .select_from(LINKS)
            .where(LINKS.c.target == target, LINKS.c.kind == kind)
        )
        with self._begin("count links") as conn:
            return int(conn.execute(query).scalar_one())

    def save_links(
        self, target: str, kind: str, links: Iterable[tuple[str, str, str | None]]
    ) -> None:
        """Insert or update many ``(okta_id, scim_id, pushed_hash)`` in one transaction.

        A resource belongs to one Okta id: linking it to another moves the link (a user
        deleted in Okta and rehired under a new id with the same login takes over the
        account the old id had).
        """
        _check_kind(kind)
        # one row per Okta id (the last wins): an upsert may not touch a row twice
        latest = {okta_id: (scim_id, pushed) for okta_id, scim_id, pushed in links}
        if not latest:
            return
        now = _now()
        params = [
            {
                "target": target,
                "kind": kind,
                "okta_id": okta_id,
                "scim_id": scim_id,
                "pushed_hash": pushed,
                "pushed_at": now,
            }
            for okta_id, (scim_id, pushed) in latest.items()
        ]
        stmt = self._upsert(
            LINKS,
            ["target", "kind", "okta_id"],
            lambda new: {
                "scim_id": new.scim_id,
                "pushed_hash": new.pushed_hash,
                "pushed_at": new.pushed_at,
            },
        )
        with self._begin("save links") as conn:
            for batch in _chunks(list(latest)):
                moved = conn.execute(
                    sa.delete(LINKS)
                    .where(
                        LINKS.c.target == target,
                        LINKS.c.kind == kind,
                        LINKS.c.scim_id.in_([latest[o][0] for o in batch]),
                        LINKS.c.okta_id.not_in(batch),
                    )
                    .returning(LINKS.c.okta_id, LINKS.c.scim_id)
                ).all()
                for old_id, scim_id in moved:
                    log.warning(
                        "%s: %s %s was linked to %s: linked to its new Okta id",
                        target,
                        kind,
                        scim_id,
                        old_id,
                    )
            conn.execute(stmt, params)

    def drop_links(self, target: str, kind: str, okta_ids: Iterable[str]) -> None:
        """Forget the links of these Okta ids (the resources are gone from the target)."""
        _check_kind(kind)
        with self._begin("drop links") as conn:
            for batch in _chunks(okta_ids):
                conn.execute(
                    sa.delete(LINKS).where(
                        LINKS.c.target == target,
                        LINKS.c.kind == kind,
                        LINKS.c.okta_id.in_(batch),
                    )
                )

    # -- parked records ---------------------------------------------------------------

    def park(
        self,
        target: str,
        kind: str,
        okta_id: str,
        reason: str,
        payload: dict[str, Any] | None = None,
        *,
        park_kind: ParkKind,
    ) -> None:
        """Park a record, or count one more attempt of a parked one (first time kept)."""
        _check_kind(kind)
        now = _now()
        stmt = self._upsert(
            PARKED,
            ["target", "kind", "okta_id"],
            lambda new: {
                "park_kind": new.park_kind,
                "reason": new.reason,
                "attempts": PARKED.c.attempts + 1,
                "last_parked_at": new.last_parked_at,
                "payload": new.payload,
            },
        )
        row = {
            "target": target,
            "kind": kind,
            "okta_id": okta_id,
            "park_kind": ParkKind(park_kind).value,
            "reason": reason,
            "attempts": 1,
            "first_parked_at": now,
            "last_parked_at": now,
            "payload": _dumps(payload),
        }
        with self._begin("park a record") as conn:
            conn.execute(stmt, row)

    def unpark(self, target: str, kind: str, okta_ids: Iterable[str]) -> None:
        """Release these records (they were written after all)."""
        _check_kind(kind)
        with self._begin("unpark records") as conn:
            for batch in _chunks(okta_ids):
                conn.execute(
                    sa.delete(PARKED).where(
                        PARKED.c.target == target,
                        PARKED.c.kind == kind,
                        PARKED.c.okta_id.in_(batch),
                    )
                )

    def parked(
        self,
        target: str | None = None,
        *,
        park_kinds: Iterable[ParkKind] | None = None,
        oldest_first: bool = False,
        limit: int | None = None,
    ) -> list[Parked]:
        """The parked records, of one target or of all, of some kinds or of all; by
        target, kind and Okta id, or the first parked first."""
        order = (
            (PARKED.c.first_parked_at, PARKED.c.target, PARKED.c.kind, PARKED.c.okta_id)
            if oldest_first
            else (PARKED.c.target, PARKED.c.kind, PARKED.c.okta_id)
        )
        query = sa.select(PARKED).order_by(*order)
        if target is not None:
            query = query.where(PARKED.c.target == target)
        if park_kinds is not None:
            query = query.where(PARKED.c.park_kind.in_([ParkKind(k).value for k in park_kinds]))
        if limit is not None:
            query = query.limit(limit)
        with self._begin("read parked records") as conn:
            rows = conn.execute(query).all()
        return [
            Parked(
                target=r.target,
                kind=r.kind,
                okta_id=r.okta_id,
                park_kind=ParkKind(r.park_kind),
                reason=r.reason,
                attempts=r.attempts,
                first_parked_at=_utc(r.first_parked_at),
                last_parked_at=_utc(r.last_parked_at),
                payload=_loads(r.payload),
            )
            for r in rows
        ]

    # -- seen Okta events ---------------------------------------------------------------

    def mark_seen(self, events: Iterable[tuple[str, datetime | None]]) -> None:
        """Remember ``(uuid, published)`` of processed Okta events (already known: kept)."""
        rows = {uuid: published for uuid, published in events}
        if not rows:
            return
        now = _now()
        values = [
            {"uuid": u, "published": None if p is None else _utc(p), "seen_at": now}
            for u, p in rows.items()
        ]
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        stmt = insert(SEEN_EVENTS).on_conflict_do_nothing(index_elements=["uuid"])
        with self._begin("mark events seen") as conn:
            for start in range(0, len(values), _CHUNK):
                conn.execute(stmt, values[start : start + _CHUNK])

    def unseen(self, uuids: Iterable[str]) -> set[str]:
        """The uuids among ``uuids`` that were never marked seen."""
        wanted = set(uuids)
        known: set[str] = set()
        with self._begin("read seen events") as conn:
            for batch in _chunks(wanted):
                known |= set(
                    conn.execute(
                        sa.select(SEEN_EVENTS.c.uuid).where(SEEN_EVENTS.c.uuid.in_(batch))
                    ).scalars()
                )
        return wanted - known

    def prune_seen(self, older_than: datetime) -> int:
        """Forget events seen before ``older_than`` (Okta keeps its System Log 90 days)."""
        with self._begin("prune seen events") as conn:
            result = conn.execute(
                sa.delete(SEEN_EVENTS).where(SEEN_EVENTS.c.seen_at < _utc(older_than))
            )
        return int(result.rowcount or 0)

    # -- audit log --------------------------------------------------------------------

    def append_audit(self, entries: Sequence[AuditEntry]) -> list[int]:
        """Append entries to the chain in one transaction; returns their ``seq``s."""
        if not entries:
            return []
        with self._begin("append to the audit log") as conn:
            if self.dialect == "postgresql":
                # one appender at a time, until commit; SQLite's BEGIN IMMEDIATE already is
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_AUDIT_LOCK)))
            head = conn.execute(
                sa.select(AUDIT_HEAD.c.seq, AUDIT_HEAD.c.hash).where(AUDIT_HEAD.c.id == 1)
            ).first()
            last_seq = conn.execute(sa.select(sa.func.max(AUDIT.c.seq))).scalar_one_or_none()
            # The chain continues from the head, not from the newest row: if rows were
            # removed behind the store's back, the next rows keep the gap visible
            # instead of sealing a shortened chain. Past the larger of the two, so a row
            # inserted behind its back cannot collide with (or hide behind) ours.
            seq = max(head.seq if head else 0, last_seq or 0)
            prev_hash = head.hash if head else GENESIS_HASH
            rows: list[dict[str, Any]] = []
            for entry in entries:
                if entry.kind != TARGET_KIND:  # a reconcile's summary row
                    _check_kind(entry.kind)
                seq += 1
                row: dict[str, Any] = {
                    "seq": seq,
                    "at": _now(),
                    "run_id": entry.run_id,
                    "cause": entry.cause,
                    "target": entry.target,
                    "operation": entry.operation,
                    "kind": entry.kind,
                    "okta_id": entry.okta_id,
                    "scim_id": entry.scim_id,
                    "request": _dumps(entry.request),
                    "status": entry.status,
                    "response": _dumps(entry.response),
                    "outcome": entry.outcome,
                    "prev_hash": prev_hash,
                }
                row["hash"] = prev_hash = _row_hash(row)
                rows.append(row)
            conn.execute(sa.insert(AUDIT), rows)
            conn.execute(
                self._upsert(AUDIT_HEAD, ["id"], lambda new: {"seq": new.seq, "hash": new.hash}),
                {"id": 1, "seq": seq, "hash": prev_hash},
            )
        return [row["seq"] for row in rows]

    @contextmanager
    def _snapshot(self, operation: str) -> Iterator[sa.Connection]:
        with self._errors(operation), self.engine.connect() as conn:
            if self.dialect == "postgresql":
                # one snapshot for the head and every row, so appends that commit during
                # a long walk are not half seen (SQLite's BEGIN IMMEDIATE holds them off)
                conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with conn.begin():
                yield conn

    def verify_audit(self) -> AuditVerification:
        """Walk the chain by ``seq``; report the first row that breaks it, if any."""
        with self._snapshot("verify the audit log") as conn:
            head = conn.execute(
                sa.select(AUDIT_HEAD.c.seq, AUDIT_HEAD.c.hash).where(AUDIT_HEAD.c.id == 1)
            ).first()
            query = sa.select(AUDIT).order_by(AUDIT.c.seq).execution_options(yield_per=1000)
            rows = 0
            prev_hash = GENESIS_HASH
            # closed on an early return too: PostgreSQL streams it through a server cursor
            with conn.execute(query) as result:
                for r in result:
                    expected = rows + 1
                    if r.seq != expected:
                        reason = (
                            f"row {expected} is missing (the next row is {r.seq})"
                            if r.seq > expected
                            else f"row {r.seq} is out of sequence (expected {expected})"
                        )
                        return AuditVerification(False, rows, expected, reason)
                    if r.prev_hash != prev_hash:
                        reason = (
                            "prev_hash is not the genesis hash"
                            if expected == 1
                            else f"prev_hash does not match the hash of row {expected - 1}"
                        )
                        return AuditVerification(False, rows, r.seq, reason)
                    row = r._asdict()
                    if _row_hash(row) != r.hash:
                        return AuditVerification(
                            False, rows, r.seq, "hash mismatch: the row was altered"
                        )
                    prev_hash = r.hash
                    rows += 1
        return self._check_head(
            None if head is None else (int(head.seq), str(head.hash)), rows, prev_hash
        )

    @staticmethod
    def _check_head(head: tuple[int, str] | None, rows: int, last_hash: str) -> AuditVerification:
        if head is None:
            if rows == 0:
                return AuditVerification(True, 0, None, "the audit log is empty")
            return AuditVerification(
                False, rows, None, "the head anchor is missing: newer rows may have been removed"
            )
        head_seq, head_hash = head
        if head_seq > rows:
            return AuditVerification(
                False,
                rows,
                rows + 1,
                f"rows {rows + 1}..{head_seq} are missing (the head anchor is at {head_seq})",
            )
        if head_seq < rows:
            return AuditVerification(
                False,
                rows,
                head_seq + 1,
                f"rows after {head_seq} were not appended by the store (the head anchor "
                f"is at {head_seq})",
            )
        if head_hash != last_hash:
            return AuditVerification(
                False, rows, rows, "the last row's hash does not match the head anchor"
            )
        return AuditVerification(True, rows, None, f"{rows} rows chain correctly")

    def event_writes(self, since: datetime) -> list[tuple[str, str, datetime, datetime | None]]:
        """``(event uuid, target, first write, event published)`` for the Okta events that
        caused writes recorded at or after ``since``: the stream's end-to-end latency."""
        query = (
            sa.select(AUDIT.c.cause, AUDIT.c.target, AUDIT.c.at)
            .where(
                AUDIT.c.at >= _utc(since),
                AUDIT.c.cause.like("okta-event:%"),
                AUDIT.c.outcome.in_(("applied", "linked")),
            )
            .order_by(AUDIT.c.seq)
        )
        first: dict[tuple[str, str], datetime] = {}
        with self._begin("read event writes") as conn:
            for cause, target, at in conn.execute(query):
                for uuid in cause.split(":", 1)[1].split(","):
                    first.setdefault((uuid, target), _utc(at))
            published: dict[str, datetime | None] = {}
            for batch in _chunks({u for u, _ in first}):
                for uuid, when in conn.execute(
                    sa.select(SEEN_EVENTS.c.uuid, SEEN_EVENTS.c.published).where(
                        SEEN_EVENTS.c.uuid.in_(batch)
                    )
                ):
                    published[uuid] = None if when is None else _utc(when)
        return [(u, t, at, published.get(u)) for (u, t), at in first.items()]

    def audit(self, target: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``limit`` audit rows (of one target or all), newest first."""
        query = sa.select(AUDIT).order_by(AUDIT.c.seq.desc()).limit(limit)
        if target is not None:
            query = query.where(AUDIT.c.target == target)
        with self._begin("read the audit log") as conn:
            rows = conn.execute(query).all()
        out: list[dict[str, Any]] = []
        for r in rows:
            row = r._asdict()
            row["at"] = _utc(row["at"])
            row["request"] = _loads(row["request"])
            row["response"] = _loads(row["response"])
            out.append(row)
        return out


def _sqlite_no_implicit_begin(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own BEGIN (deferred, emitted late) is turned off so that ours is used
    dbapi_connection.isolation_level = None


def _sqlite_begin_immediate(conn: sa.Connection) -> None:
    # Every transaction takes SQLite's write lock up front: an append reads the last
    # hash and inserts as one unit, and no transaction fails half-way with SQLITE_BUSY
    # when upgrading a read lock; other writers wait up to the busy timeout.
    conn.exec_driver_sql("BEGIN IMMEDIATE")
