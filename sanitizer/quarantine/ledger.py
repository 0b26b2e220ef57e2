"""The ledger: one row per batch, an append-only event per state change (SQLAlchemy Core).

States: ``landed → scanning → accepted | quarantined`` and
``quarantined → released | rejected``. Every other transition raises
:class:`TransitionError`. Claims are compare-and-swap ``UPDATE`` statements,
so two workers racing for one batch cannot both win, on SQLite or PostgreSQL.

The schema is created and migrated by :func:`migrate` (a ``schema_version``
table and an ordered list of migration functions; see ``MIGRATIONS``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sanitizer.quarantine.errors import BatchNotFoundError, LedgerError, TransitionError

log = logging.getLogger(__name__)

STATES: tuple[str, ...] = (
    "landed",
    "scanning",
    "accepted",
    "quarantined",
    "released",
    "rejected",
)
#: Every allowed (from, to) pair; anything else is refused.
TRANSITIONS: frozenset[tuple[str, str]] = frozenset(
    {
        ("landed", "scanning"),
        ("scanning", "accepted"),
        ("scanning", "quarantined"),
        ("quarantined", "released"),
        ("quarantined", "rejected"),
    }
)
#: States whose data may be used for training.
TRAINABLE_STATES: tuple[str, ...] = ("accepted", "released")

metadata = sa.MetaData()

schema_version = sa.Table(
    "sanitizer_schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
)

batches = sa.Table(
    "sanitizer_batches",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("dataset", sa.String(200), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("original_name", sa.String(400), nullable=False),
    sa.Column("source_path", sa.Text, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("verdict", sa.String(20)),
    sa.Column("reason", sa.String(40)),
    sa.Column("failing_checks", sa.Text),
    sa.Column("message", sa.Text),
    sa.Column("claimed_by", sa.String(200)),
    sa.Column("claimed_at", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("dataset", "sha256", name="uq_sanitizer_batches_dataset_sha256"),
    sa.Index("ix_sanitizer_batches_state", "dataset", "state"),
)

events = sa.Table(
    "sanitizer_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("batch_id", sa.String(32), sa.ForeignKey("sanitizer_batches.id"), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("from_state", sa.String(20)),
    sa.Column("to_state", sa.String(20), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_sanitizer_events_batch", "batch_id"),
)


# -- schema migrations ------------------------------------------------------------


def _migration_1(conn: Connection) -> None:
    """Batches and events; events are append-only, enforced by the database too."""
    batches.create(conn)
    events.create(conn)
    name = conn.dialect.name
    if name == "sqlite":
        for op in ("UPDATE", "DELETE"):
            conn.exec_driver_sql(
                f"CREATE TRIGGER sanitizer_events_no_{op.lower()} BEFORE {op} ON sanitizer_events "
                "BEGIN SELECT RAISE(ABORT, 'sanitizer_events is append-only'); END"
            )
    elif name == "postgresql":
        conn.exec_driver_sql(
            "CREATE FUNCTION sanitizer_events_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'sanitizer_events is append-only'; END $$ LANGUAGE plpgsql"
        )
        conn.exec_driver_sql(
            "CREATE TRIGGER sanitizer_events_append_only BEFORE UPDATE OR DELETE "
            "ON sanitizer_events FOR EACH ROW EXECUTE FUNCTION sanitizer_events_append_only()"
        )


#: Ordered migrations; version N is MIGRATIONS[N-1]. Append, never edit a released one.
MIGRATIONS: tuple[Callable[[Connection], None], ...] = (_migration_1,)
SCHEMA_VERSION = len(MIGRATIONS)
_PG_MIGRATION_LOCK = 0x5A11_7153


def migrate(engine: Engine) -> int:
    """Create or upgrade the ledger schema; returns the version now in place.

    Safe to run from several processes at once: on PostgreSQL an advisory
    lock serialises migrators; on SQLite ``BEGIN IMMEDIATE`` (see
    :func:`create_ledger_engine`) does.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        schema_version.create(conn, checkfirst=True)
        current = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0
        if current > SCHEMA_VERSION:
            raise LedgerError(
                f"ledger schema version {current} is newer than this sanitizer "
                f"(knows up to {SCHEMA_VERSION}); upgrade the sanitizer package"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            log.info("migrating ledger schema to version %d", version)
            MIGRATIONS[version - 1](conn)
            conn.execute(schema_version.insert().values(version=version, applied_at=_now()))
        return SCHEMA_VERSION


# -- records ----------------------------------------------------------------------


@dataclass(frozen=True)
class BatchRecord:
    """One batch as the ledger knows it."""

    id: str
    dataset: str
    sha256: str
    size: int
    original_name: str
    source_path: str
    path: str
    state: str
    verdict: str | None
    reason: str | None
    failing_checks: tuple[str, ...]
    message: str | None
    claimed_by: str | None
    claimed_at: datetime | None
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (XCom-friendly) form."""
        return {
            "id": self.id,
            "dataset": self.dataset,
            "sha256": self.sha256,
            "size": self.size,
            "original_name": self.original_name,
            "source_path": self.source_path,
            "path": self.path,
            "state": self.state,
            "verdict": self.verdict,
            "reason": self.reason,
            "failing_checks": list(self.failing_checks),
            "message": self.message,
            "claimed_by": self.claimed_by,
            "claimed_at": _iso(self.claimed_at),
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


@dataclass(frozen=True)
class EventRecord:
    """One row of the append-only audit trail."""

    id: int
    batch_id: str
    sha256: str
    from_state: str | None
    to_state: str
    actor: str
    reason: str
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "batch_id": self.batch_id,
            "sha256": self.sha256,
            "from_state": self.from_state,
            "to_state": self.to_state,
            "actor": self.actor,
            "reason": self.reason,
            "at": _iso(self.at),
        }


def batch_id_for(dataset: str, sha256: str) -> str:
    """The batch id: derived from the content hash (and the dataset), so a re-upload
    of the same bytes under another name maps to the same batch."""
    import hashlib

    return hashlib.sha256(f"{dataset}\n{sha256}".encode()).hexdigest()[:16]


# -- the ledger ---------------------------------------------------------------------


class Ledger:
    """Batches and their audit trail in any SQLAlchemy database."""

    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.url = url
        self.engine = engine or create_ledger_engine(url)
        try:
            migrate(self.engine)
        except sa.exc.OperationalError as exc:
            raise LedgerError(f"cannot open ledger {_masked(url)}: {_first_line(exc)}") from exc

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.OperationalError as exc:
            raise LedgerError(f"ledger {_masked(self.url)}: {_first_line(exc)}") from exc

    # -- reading ------------------------------------------------------------------

    def get(self, batch_id: str) -> BatchRecord:
        """The batch with this id, or the only one whose id starts with it."""
        if not batch_id or not all(c in "0123456789abcdef" for c in batch_id.lower()):
            raise BatchNotFoundError(f"{batch_id!r} is not a batch id (hexadecimal)")
        prefix = batch_id.lower()
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(batches).where(batches.c.id.startswith(prefix, autoescape=True)).limit(2)
            ).all()
        if not rows:
            raise BatchNotFoundError(f"no batch with id {batch_id}")
        if len(rows) > 1:
            raise BatchNotFoundError(f"batch id prefix {batch_id} is ambiguous; give more digits")
        return _batch(rows[0]._mapping)

    def find(self, dataset: str, sha256: str) -> BatchRecord | None:
        with self._tx() as conn:
            row = conn.execute(
                sa.select(batches).where(batches.c.dataset == dataset, batches.c.sha256 == sha256)
            ).first()
        return _batch(row._mapping) if row else None

    def batches(
        self, *, dataset: str | None = None, state: str | Sequence[str] | None = None
    ) -> list[BatchRecord]:
        query = sa.select(batches).order_by(batches.c.created_at, batches.c.id)
        if dataset is not None:
            query = query.where(batches.c.dataset == dataset)
        if state is not None:
            wanted = [state] if isinstance(state, str) else list(state)
            for s in wanted:
                _check_state(s)
            query = query.where(batches.c.state.in_(wanted))
        with self._tx() as conn:
            return [_batch(r._mapping) for r in conn.execute(query)]

    def events(self, batch_id: str) -> list[EventRecord]:
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(events).where(events.c.batch_id == batch_id).order_by(events.c.id)
            )
            return [EventRecord(**dict(r._mapping)) for r in rows]

    # -- writing ------------------------------------------------------------------

    def register(
        self,
        *,
        dataset: str,
        sha256: str,
        size: int,
        original_name: str,
        source_path: str,
        actor: str,
    ) -> tuple[BatchRecord, bool]:
        """Record a landed batch; returns ``(batch, created)``. The same content in the
        same dataset is the same batch: registering it again creates nothing."""
        batch_id = batch_id_for(dataset, sha256)
        now = _now()
        try:
            with self._tx() as conn:
                conn.execute(
                    batches.insert().values(
                        id=batch_id,
                        dataset=dataset,
                        sha256=sha256,
                        size=size,
                        original_name=original_name[:400],
                        source_path=source_path,
                        path=source_path,
                        state="landed",
                        created_at=now,
                        updated_at=now,
                    )
                )
                conn.execute(
                    events.insert().values(
                        batch_id=batch_id,
                        sha256=sha256,
                        from_state=None,
                        to_state="landed",
                        actor=actor,
                        reason=f"discovered {original_name[:200]}",
                        at=now,
                    )
                )
        except sa.exc.IntegrityError:
            existing = self.find(dataset, sha256)
            if existing is None:  # pragma: no cover - the row was there a moment ago
                raise
            return existing, False
        return self.get(batch_id), True

    def claim(
        self,
        batch_id: str,
        *,
        worker: str,
        stale_after: float,
        take_over_prefix: str | None = None,
    ) -> bool:
        """Atomically take a batch for scanning. True for exactly one of several racing
        workers. A ``scanning`` batch whose claim is older than ``stale_after`` seconds
        (or was released by reconcile) can be taken over; that is recorded too.

        ``take_over_prefix`` names the claimants whose claim ``worker`` succeeds at once,
        stale or not: earlier tries of the same Airflow task, which the scheduler only
        retries once the earlier try is over (e.g. its worker died mid-scan). Should that
        try still be running somewhere, it can no longer record a result."""
        now = _now()
        cutoff = now - timedelta(seconds=stale_after)
        with self._tx() as conn:
            row = conn.execute(
                sa.select(batches.c.state, batches.c.claimed_by, batches.c.claimed_at).where(
                    batches.c.id == batch_id
                )
            ).first()
            if row is None:
                raise BatchNotFoundError(f"no batch with id {batch_id}")
            state, old_worker, old_at = row
            cond = [batches.c.id == batch_id, batches.c.state == state]
            if state == "landed":
                reason = "claimed for scanning"
            elif state == "scanning" and (old_at is None or _aware(old_at) < cutoff):
                cond.append(
                    batches.c.claimed_at.is_(None)
                    if old_at is None
                    else batches.c.claimed_at == old_at
                )
                reason = f"claim taken over from {old_worker or 'nobody'} (stale or released)"
            elif (
                state == "scanning"
                and take_over_prefix
                and old_worker
                and old_worker != worker
                and old_worker.startswith(take_over_prefix)
            ):
                cond.append(batches.c.claimed_by == old_worker)
                reason = f"claim taken over from {old_worker} (an earlier try of the same task)"
            else:
                return False
            result = conn.execute(
                batches.update()
                .where(*cond)
                .values(state="scanning", claimed_by=worker, claimed_at=now, updated_at=now)
            )
            if result.rowcount != 1:
                return False
            sha = conn.execute(
                sa.select(batches.c.sha256).where(batches.c.id == batch_id)
            ).scalar_one()
            conn.execute(
                events.insert().values(
                    batch_id=batch_id,
                    sha256=sha,
                    from_state=state,
                    to_state="scanning",
                    actor=worker,
                    reason=reason,
                    at=now,
                )
            )
        log.debug("batch %s claimed by %s", batch_id, worker)
        return True

    def release_claim(self, batch_id: str, *, actor: str, reason: str) -> bool:
        """Mark a ``scanning`` batch's claim as abandoned so the next run takes it over."""
        with self._tx() as conn:
            result = conn.execute(
                batches.update()
                .where(batches.c.id == batch_id, batches.c.state == "scanning")
                .values(claimed_at=None, updated_at=_now())
            )
            if result.rowcount == 1:
                self._event(conn, batch_id, "scanning", "scanning", actor, reason)
                return True
        return False

    def transition(
        self,
        batch_id: str,
        to_state: str,
        *,
        actor: str,
        reason: str,
        claimed_by: str | None = None,
        path: str | None = None,
        verdict: str | None = None,
        batch_reason: str | None = None,
        failing_checks: Sequence[str] | None = None,
        message: str | None = None,
    ) -> BatchRecord:
        """Move a batch to ``to_state`` and append the event, in one transaction.

        ``claimed_by`` guards scan results: the update only applies while that worker
        still holds the claim. Refused transitions raise :class:`TransitionError`.
        """
        _check_state(to_state)
        if not actor or not actor.strip():
            raise TransitionError("an actor is required for every state change")
        if not reason or not reason.strip():
            raise TransitionError("a reason is required for every state change")
        now = _now()
        with self._tx() as conn:
            row = conn.execute(sa.select(batches.c.state).where(batches.c.id == batch_id)).first()
            if row is None:
                raise BatchNotFoundError(f"no batch with id {batch_id}")
            from_state = row[0]
            if (from_state, to_state) not in TRANSITIONS:
                raise TransitionError(
                    f"batch {batch_id}: cannot go from {from_state} to {to_state} "
                    f"(allowed from {from_state}: {_allowed_from(from_state)})"
                )
            values: dict[str, Any] = {"state": to_state, "updated_at": now}
            if to_state != "scanning":
                values["claimed_by"] = None
                values["claimed_at"] = None
            for key, value in (
                ("path", path),
                ("verdict", verdict),
                ("reason", batch_reason),
                ("message", message),
            ):
                if value is not None:
                    values[key] = value
            if failing_checks is not None:
                values["failing_checks"] = json.dumps(list(failing_checks))
            cond = [batches.c.id == batch_id, batches.c.state == from_state]
            if claimed_by is not None:
                cond.append(batches.c.claimed_by == claimed_by)
            result = conn.execute(batches.update().where(*cond).values(**values))
            if result.rowcount != 1:
                raise TransitionError(
                    f"batch {batch_id} changed while moving it to {to_state} "
                    "(another worker took it over); nothing was recorded"
                )
            self._event(conn, batch_id, from_state, to_state, actor, reason)
        return self.get(batch_id)

    def note(self, batch_id: str, *, actor: str, reason: str) -> None:
        """Append an event that does not change the state (e.g. a duplicate upload seen)."""
        with self._tx() as conn:
            state = conn.execute(
                sa.select(batches.c.state).where(batches.c.id == batch_id)
            ).scalar_one()
            self._event(conn, batch_id, state, state, actor, reason)

    def _event(
        self,
        conn: Connection,
        batch_id: str,
        from_state: str | None,
        to_state: str,
        actor: str,
        reason: str,
    ) -> None:
        sha = conn.execute(sa.select(batches.c.sha256).where(batches.c.id == batch_id)).scalar_one()
        conn.execute(
            events.insert().values(
                batch_id=batch_id,
                sha256=sha,
                from_state=from_state,
                to_state=to_state,
                actor=actor,
                reason=reason,
                at=_now(),
            )
        )


def create_ledger_engine(url: str) -> Engine:
    """An engine with sane defaults: SQLite in WAL mode with a busy timeout, so several
    local workers can share one ledger file; pre-ping for server databases."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise LedgerError(f"ledger URL {_masked(url)} is not a SQLAlchemy URL") from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            from pathlib import Path

            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # let SQLAlchemy's BEGIN be the only one
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    try:
        return sa.create_engine(url, pool_pre_ping=True)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise LedgerError(f"cannot use ledger URL {_masked(url)}: {_first_line(exc)}") from exc


def _batch(m: Any) -> BatchRecord:
    checks = json.loads(m["failing_checks"]) if m["failing_checks"] else []
    return BatchRecord(
        id=m["id"],
        dataset=m["dataset"],
        sha256=m["sha256"],
        size=int(m["size"]),
        original_name=m["original_name"],
        source_path=m["source_path"],
        path=m["path"],
        state=m["state"],
        verdict=m["verdict"],
        reason=m["reason"],
        failing_checks=tuple(checks),
        message=m["message"],
        claimed_by=m["claimed_by"],
        claimed_at=_aware(m["claimed_at"]) if m["claimed_at"] else None,
        created_at=_aware(m["created_at"]),
        updated_at=_aware(m["updated_at"]),
    )


def _check_state(state: str) -> None:
    if state not in STATES:
        raise TransitionError(f"unknown state {state!r}; states are {', '.join(STATES)}")


def _allowed_from(state: str) -> str:
    allowed = sorted(t for f, t in TRANSITIONS if f == state)
    return ", ".join(allowed) if allowed else "none, it is final"


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return _aware(value).isoformat(timespec="seconds") if value else None


def _masked(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<invalid URL>"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
