"""Ledger: every state transition (allowed and refused), claims, migrations, audit trail.

Each test runs on a SQLite file and on a fresh PostgreSQL schema."""

from __future__ import annotations

import hashlib
import itertools

import pytest
import sqlalchemy as sa

from sanitizer.errors import SanitizerError
from sanitizer.quarantine.errors import BatchNotFoundError, LedgerError, TransitionError
from sanitizer.quarantine.ledger import (
    SCHEMA_VERSION,
    STATES,
    TRANSITIONS,
    Ledger,
    batch_id_for,
    migrate,
    schema_version,
)

#: How to bring a fresh batch into each state through allowed transitions only.
PATH_TO: dict[str, list[str]] = {
    "landed": [],
    "scanning": ["scanning"],
    "accepted": ["scanning", "accepted"],
    "quarantined": ["scanning", "quarantined"],
    "released": ["scanning", "quarantined", "released"],
    "rejected": ["scanning", "quarantined", "rejected"],
}


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _landed(ledger: Ledger, name: str = "b.csv", dataset: str = "credit") -> str:
    batch, created = ledger.register(
        dataset=dataset,
        sha256=_sha(name + dataset),
        size=10,
        original_name=name,
        source_path=f"/root/landing/{dataset}/{name}",
        actor="test",
    )
    assert created
    return batch.id


def _bring_to(ledger: Ledger, batch_id: str, state: str) -> None:
    for step in PATH_TO[state]:
        if step == "scanning":
            assert ledger.claim(batch_id, worker="w", stale_after=3600)
        else:
            ledger.transition(batch_id, step, actor="op", reason=f"to {step}")


@pytest.fixture
def ledger(ledger_url: str) -> Ledger:
    led = Ledger(ledger_url)
    yield led  # type: ignore[misc]
    led.close()


def test_every_allowed_transition_is_recorded(ledger: Ledger) -> None:
    for from_state, to_state in sorted(TRANSITIONS):
        batch_id = _landed(ledger, f"{from_state}-{to_state}.csv")
        _bring_to(ledger, batch_id, from_state)
        if to_state == "scanning":
            assert ledger.claim(batch_id, worker="w2", stale_after=3600)
            record = ledger.get(batch_id)
        else:
            record = ledger.transition(batch_id, to_state, actor="alice", reason="because")
        assert record.state == to_state
        last = ledger.events(batch_id)[-1]
        assert (last.from_state, last.to_state) == (from_state, to_state)
        assert last.sha256 == record.sha256


REFUSED = [(a, b) for a, b in itertools.product(STATES, STATES) if (a, b) not in TRANSITIONS]


def test_every_other_transition_is_refused_with_a_clear_error(ledger: Ledger) -> None:
    assert len(REFUSED) == len(STATES) ** 2 - len(TRANSITIONS)
    batch_ids = {}
    for state in STATES:
        batch_ids[state] = _landed(ledger, f"{state}.csv")
        _bring_to(ledger, batch_ids[state], state)
    for from_state, to_state in REFUSED:
        before = ledger.events(batch_ids[from_state])
        with pytest.raises(TransitionError, match=f"cannot go from {from_state} to {to_state}"):
            ledger.transition(batch_ids[from_state], to_state, actor="alice", reason="try")
        assert ledger.get(batch_ids[from_state]).state == from_state
        assert ledger.events(batch_ids[from_state]) == before  # nothing recorded


def test_claim_only_from_landed_or_a_stale_claim(ledger: Ledger) -> None:
    for state in ("accepted", "quarantined", "released", "rejected"):
        batch_id = _landed(ledger, f"claim-{state}.csv")
        _bring_to(ledger, batch_id, state)
        assert not ledger.claim(batch_id, worker="w9", stale_after=0)
    batch_id = _landed(ledger, "claim.csv")
    assert ledger.claim(batch_id, worker="w1", stale_after=3600)
    assert not ledger.claim(batch_id, worker="w2", stale_after=3600)  # live claim
    assert ledger.claim(batch_id, worker="w2", stale_after=0)  # stale: taken over
    assert ledger.get(batch_id).claimed_by == "w2"
    # the worker that lost its claim cannot record a result
    with pytest.raises(TransitionError, match="another worker"):
        ledger.transition(batch_id, "accepted", actor="w1", reason="scan", claimed_by="w1")
    ledger.transition(batch_id, "accepted", actor="w2", reason="scan", claimed_by="w2")
    reasons = [e.reason for e in ledger.events(batch_id)]
    assert any("taken over from w1" in r for r in reasons)


def test_a_retry_of_the_same_task_takes_over_its_earlier_tries_claim(ledger: Ledger) -> None:
    """A worker died mid-scan: the task's retry takes the live claim over at once; other
    tasks, and the same try again, still cannot."""
    batch_id = _landed(ledger)
    task = "airflow-task:0123abcd:"
    assert ledger.claim(batch_id, worker=task + "try1:worker-b:7", stale_after=3600)
    assert not ledger.claim(batch_id, worker="airflow-task:ffff:try1:a:1", stale_after=3600)
    assert not ledger.claim(
        batch_id,
        worker="airflow-task:ffff:try1:a:1",
        stale_after=3600,
        take_over_prefix="airflow-task:ffff:",
    )
    assert not ledger.claim(
        batch_id, worker=task + "try1:worker-b:7", stale_after=3600, take_over_prefix=task
    )
    assert ledger.claim(
        batch_id, worker=task + "try2:worker-a:9", stale_after=3600, take_over_prefix=task
    )
    assert ledger.get(batch_id).claimed_by == task + "try2:worker-a:9"
    # the dead try, were it still running somewhere, can no longer record a result
    with pytest.raises(TransitionError, match="another worker"):
        ledger.transition(
            batch_id, "accepted", actor="b", reason="scan", claimed_by=task + "try1:worker-b:7"
        )
    ledger.transition(
        batch_id, "accepted", actor="a", reason="scan", claimed_by=task + "try2:worker-a:9"
    )
    assert [e.to_state for e in ledger.events(batch_id)] == [
        "landed", "scanning", "scanning", "accepted",
    ]  # fmt: skip
    assert "earlier try of the same task" in ledger.events(batch_id)[2].reason


def test_released_claim_is_taken_over_by_the_next_run(ledger: Ledger) -> None:
    batch_id = _landed(ledger)
    assert ledger.claim(batch_id, worker="crashed", stale_after=3600)
    assert ledger.release_claim(batch_id, actor="reconcile", reason="stale")
    assert ledger.claim(batch_id, worker="next", stale_after=3600)


def test_register_is_idempotent_by_content_hash(ledger: Ledger) -> None:
    first, created = ledger.register(
        dataset="credit", sha256=_sha("x"), size=1, original_name="a.csv",
        source_path="/l/a.csv", actor="t",
    )  # fmt: skip
    again, created_again = ledger.register(
        dataset="credit", sha256=_sha("x"), size=1, original_name="renamed.csv",
        source_path="/l/renamed.csv", actor="t",
    )  # fmt: skip
    assert created and not created_again
    assert again.id == first.id == batch_id_for("credit", _sha("x"))
    assert again.original_name == "a.csv"
    assert len(ledger.batches()) == 1
    assert len(ledger.events(first.id)) == 1
    # the same bytes in another dataset are another batch
    other, created_other = ledger.register(
        dataset="fraud", sha256=_sha("x"), size=1, original_name="a.csv",
        source_path="/l/f/a.csv", actor="t",
    )  # fmt: skip
    assert created_other and other.id != first.id


def test_actor_and_reason_are_required(ledger: Ledger) -> None:
    batch_id = _landed(ledger)
    _bring_to(ledger, batch_id, "quarantined")
    with pytest.raises(TransitionError, match="actor"):
        ledger.transition(batch_id, "released", actor=" ", reason="ok")
    with pytest.raises(TransitionError, match="reason"):
        ledger.transition(batch_id, "released", actor="alice", reason="")
    with pytest.raises(TransitionError, match="unknown state"):
        ledger.transition(batch_id, "deleted", actor="alice", reason="x")


def test_events_are_append_only_in_the_database(ledger: Ledger) -> None:
    batch_id = _landed(ledger)
    for statement in (
        "UPDATE sanitizer_events SET actor = 'mallory'",
        "DELETE FROM sanitizer_events",
    ):
        with pytest.raises(sa.exc.DatabaseError), ledger.engine.begin() as conn:
            conn.exec_driver_sql(statement)
    assert [e.actor for e in ledger.events(batch_id)] == ["test"]


def test_lookup_by_prefix_and_errors(ledger: Ledger) -> None:
    batch_id = _landed(ledger)
    assert ledger.get(batch_id[:6]).id == batch_id
    with pytest.raises(BatchNotFoundError, match="no batch"):
        ledger.get("0000000000")
    with pytest.raises(BatchNotFoundError, match="hexadecimal"):
        ledger.get("../etc")
    assert issubclass(BatchNotFoundError, SanitizerError)
    assert [b.id for b in ledger.batches(dataset="credit", state="landed")] == [batch_id]
    with pytest.raises(TransitionError, match="unknown state"):
        ledger.batches(state="lost")


def test_migrations_are_recorded_and_rerunnable(ledger: Ledger) -> None:
    assert migrate(ledger.engine) == SCHEMA_VERSION  # second run: nothing to do
    with ledger.engine.begin() as conn:
        versions = conn.execute(sa.select(schema_version.c.version)).scalars().all()
        assert versions == list(range(1, SCHEMA_VERSION + 1))
        conn.execute(
            schema_version.insert().values(version=SCHEMA_VERSION + 1, applied_at=sa.func.now())
        )
    with pytest.raises(LedgerError, match="newer than this sanitizer"):
        migrate(ledger.engine)


def test_unreachable_ledger_is_one_clear_error() -> None:
    with pytest.raises(LedgerError, match="cannot open ledger") as info:
        Ledger("postgresql+psycopg2://nobody:secret@127.0.0.1:1/none?connect_timeout=2")
    assert "secret" not in str(info.value)  # the password is masked
    with pytest.raises(LedgerError, match="not a SQLAlchemy URL"):
        Ledger("not a url")
