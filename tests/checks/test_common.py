"""Shared check helpers: the thread runner used to score row blocks."""

from __future__ import annotations

import threading

import pytest

from sanitizer.checks._common import run_tasks


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
def test_run_tasks_runs_every_task_once_with_one_openmp_thread(threads: int) -> None:
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

    before = _openmp_effective_n_threads()
    seen: list[tuple[int, str, int]] = []
    lock = threading.Lock()

    def task(i: int):  # type: ignore[no-untyped-def]
        def run() -> None:
            with lock:
                seen.append((i, threading.current_thread().name, _openmp_effective_n_threads()))

        return run

    run_tasks([task(i) for i in range(20)], threads)
    assert sorted(i for i, _, _ in seen) == list(range(20))
    assert {n for _, _, n in seen} == {1}
    assert len({name for _, name, _ in seen}) <= threads
    assert _openmp_effective_n_threads() == before  # the caller's limit is restored


def test_run_tasks_raises_the_first_error_and_stops() -> None:
    ran: list[int] = []

    def task(i: int):  # type: ignore[no-untyped-def]
        def run() -> None:
            if i == 3:
                raise ValueError("block 3")
            ran.append(i)

        return run

    with pytest.raises(ValueError, match="block 3"):
        run_tasks([task(i) for i in range(200)], 2)
    assert len(ran) < 199
    run_tasks([], 2)  # nothing to do


def test_a_reserved_core_is_not_offered_to_scoring_pools(monkeypatch: pytest.MonkeyPatch) -> None:
    """While the engine's schema thread holds a core, pools score on the others; never
    on fewer than one, and the count comes back when the block ends, also on error."""
    import os

    from sanitizer.checks._common import available_cores, reserve_core, scoring_threads

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert available_cores() == 2
    with reserve_core():
        assert available_cores() == 1 == scoring_threads(None, 200_000, 100_000)
        with reserve_core():
            assert available_cores() == 1
    assert available_cores() == 2
    with pytest.raises(RuntimeError), reserve_core():
        raise RuntimeError("schema broke")
    assert available_cores() == 2


def test_checks_side_by_side_share_the_unreserved_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """The screen runs two statistical checks at a time: each pool gets its share of
    the cores the schema does not hold, at least one, and all of them when alone."""
    import os

    from sanitizer.checks._common import available_cores, reserve_core, share_cores

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    with share_cores():
        assert available_cores() == 8
        with reserve_core():
            assert available_cores() == 7
        with share_cores():
            assert available_cores() == 4
            with reserve_core():
                assert available_cores() == 3
    assert available_cores() == 8
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    with reserve_core(), share_cores(), share_cores():
        assert available_cores() == 1
    with pytest.raises(RuntimeError), share_cores():
        raise RuntimeError("a check broke")
    assert available_cores() == 2
