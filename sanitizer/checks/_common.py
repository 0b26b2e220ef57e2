"""Helpers shared by the statistical checks: encoders, thread limits, splits, percentiles."""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from sanitizer.checks._features import FeatureEncoder

if TYPE_CHECKING:
    from sanitizer.table import Table


def one_thread() -> Any:
    """Limit BLAS/OpenMP to one thread for small models.

    On a shared 2-core worker, thread oversubscription makes small fits and scores
    several times slower; parallelism comes from scanning batches side by side.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


HASH_BLOCK = 16_384  # rows per step of ``content_folds``

_reserved_cores = [0]  # cores taken by whole-batch checks running beside the others
_sharing = [0]  # statistical checks running side by side, sharing the other cores
_reserved_lock = threading.Lock()


@contextlib.contextmanager
def _counted(counter: list[int]) -> Iterator[None]:
    with _reserved_lock:
        counter[0] += 1
    try:
        yield
    finally:
        with _reserved_lock:
            counter[0] -= 1


def reserve_core() -> contextlib.AbstractContextManager[None]:
    """While the enclosed block runs, ``available_cores()`` counts one core fewer.

    The engine's screen runs the schema (GX, one core) beside the statistical checks:
    their scoring pools would otherwise put three busy threads on two cores.
    """
    return _counted(_reserved_cores)


def share_cores() -> contextlib.AbstractContextManager[None]:
    """While the enclosed block runs, it shares the unreserved cores with the other
    blocks in one: ``available_cores()`` is their share.

    The engine's screen runs two statistical checks at a time on the sample; each
    scoring pool gets half the cores, not all of them twice over.
    """
    return _counted(_sharing)


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, not the machine's
    count), less those a ``reserve_core`` block holds, divided among the
    ``share_cores`` blocks running; at least one."""
    import os

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity API (macOS)
        cores = os.cpu_count() or 1
    return max(1, (cores - _reserved_cores[0]) // max(1, _sharing[0]))


def scoring_threads(n_threads: int | None, n_rows: int, min_rows: int) -> int:
    """Threads to score ``n_rows`` rows with: ``n_threads`` if given, else one below
    ``min_rows`` rows (small scores are not worth a pool) and ``available_cores()`` above."""
    if n_threads is not None:
        return max(1, int(n_threads))
    return available_cores() if n_rows >= min_rows else 1


def run_tasks(tasks: Sequence[Callable[[], None]], threads: int) -> None:
    """Run ``tasks`` on ``threads`` threads (the caller's and ``threads - 1`` helpers),
    each with one OpenMP thread.

    Meant for model predictions on row blocks: their native code releases the GIL,
    and threads pulling small blocks degrade gracefully on a busy machine, where
    OpenMP teams that spin at barriers lose time to each other. The caller works
    too: every extra thread gets a malloc arena of its own, which holds on to the
    memory its tasks allocated. The first exception stops the run and is raised.
    """
    threads = min(threads, len(tasks))
    if threads <= 1:
        with one_thread():
            for task in tasks:
                task()
        return
    import threading

    pending = iter(tasks)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def drain() -> None:
        while not errors:
            with lock:
                task = next(pending, None)
            if task is None:
                return
            try:
                task()
            except BaseException as exc:  # re-raised by the caller
                errors.append(exc)

    def helper() -> None:
        _one_openmp_thread()
        drain()

    helpers = [threading.Thread(target=helper, daemon=True) for _ in range(threads - 1)]
    for thread in helpers:
        thread.start()
    try:
        with one_thread():
            drain()
    finally:
        errors.append(StopIteration())  # helpers stop after their current task
        for thread in helpers:
            thread.join()
    if not isinstance(errors[0], StopIteration):
        raise errors[0]


def map_threads(fn: Callable[[Any], Any], items: Sequence[Any], threads: int) -> list[Any]:
    """``[fn(item) for item in items]`` on ``threads`` threads (``run_tasks``: each with
    one OpenMP thread), in order. For independent model fits, e.g. fold models."""
    results: list[Any] = [None] * len(items)

    def task(i: int) -> Callable[[], None]:
        def run() -> None:
            results[i] = fn(items[i])

        return run

    run_tasks([task(i) for i in range(len(items))], threads)
    return results


def fill_rows(
    out: np.ndarray,
    jobs: Sequence[tuple[Any, Callable[[Any], np.ndarray]]],
    threads: int,
) -> None:
    """``out[rows] = score(rows)`` for every ``(rows, score)`` job, on ``threads`` threads
    (``run_tasks``; BLAS held to one thread each). For scoring row blocks with a model:
    a row's score must not depend on its block."""

    def task(rows: Any, score: Callable[[Any], np.ndarray]) -> Callable[[], None]:
        def run() -> None:
            out[rows] = score(rows)

        return run

    with one_thread():
        run_tasks([task(rows, score) for rows, score in jobs], threads)


def fill_by_fold(
    out: np.ndarray,
    models: Sequence[Any],
    fold: np.ndarray,
    score: Callable[[Any, np.ndarray], np.ndarray],
    block: int,
    threads: int,
) -> None:
    """``out[rows] = score(model, rows)`` for each fold model and the rows ``fold``
    assigns it, in blocks of ``block`` rows on ``threads`` threads (``fill_rows``)."""
    jobs = [
        (rows[part], functools.partial(score, model))
        for model, rows in zip(models, fold_groups(fold, len(models)), strict=True)
        for part in row_blocks(len(rows), block)
    ]
    fill_rows(out, jobs, threads)


def balanced_folds(n: int, n_folds: int, seed: int) -> np.ndarray:
    """A seeded, balanced assignment of ``n`` rows to ``n_folds`` folds."""
    return np.random.default_rng([seed, 11]).permutation(n) % n_folds


def content_folds(
    x: np.ndarray, weights: np.ndarray, n_folds: int, offset: np.ndarray | float = 0.0
) -> np.ndarray:
    """Which of ``n_folds`` fold models scores each batch row: a hash of the row's
    content (``x`` rounded, times random ``weights``, plus ``offset``, e.g. for its
    label) and of its occurrence number among identical rows, so identical rows are
    spread over the folds and a permutation of the batch permutes the assignment."""
    code = np.empty(len(x))
    for rows in row_blocks(len(x), HASH_BLOCK):  # no rounded copy of all of x
        code[rows] = np.round(x[rows], 6) @ weights
    code += offset
    key = np.floor(np.abs(code) * 1e4 % 1e6).astype(np.int64)
    order = np.argsort(code, kind="stable")  # ties in row order
    sorted_code = code[order]
    start = np.r_[True, sorted_code[1:] != sorted_code[:-1]]
    group_start = np.maximum.accumulate(np.where(start, np.arange(len(order)), 0))
    occurrence = np.empty(len(key), dtype=np.int64)
    occurrence[order] = np.arange(len(order)) - group_start
    return (key + occurrence) % n_folds


def fold_groups(codes: np.ndarray, n_groups: int) -> list[np.ndarray]:
    """The positions holding each code ``0 .. n_groups - 1``, ascending (one stable sort)."""
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(n_groups + 1))
    return [order[bounds[g] : bounds[g + 1]] for g in range(n_groups)]


def row_blocks(n: int, size: int) -> list[slice]:
    """``range(n)`` as consecutive slices of at most ``size`` rows."""
    return [slice(start, start + size) for start in range(0, n, size)]


def _one_openmp_thread() -> None:
    """Limit OpenMP to one thread in this (pool worker) thread; the limit is per thread
    in OpenMP, so it neither leaks into nor depends on the caller."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="openmp")


def shared_encoder(reference: Table) -> FeatureEncoder:
    """The reference's ``FeatureEncoder``, fitted once per reference table.

    Checks fitted on the same reference share it; ``Table.encoded`` caches a batch's
    encoding by the encoder's content, so a batch is encoded once for all of them,
    also after a profile round trip (seconds saved on a 1M-row batch).
    """
    cache = reference.__dict__
    encoder = cache.get("_shared_feature_encoder")
    if not isinstance(encoder, FeatureEncoder):
        encoder = FeatureEncoder.fit(reference)
        cache["_shared_feature_encoder"] = encoder
    return encoder


def split_indices(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random split of ``range(n)`` into (fit, held-out) with ``fraction`` held out."""
    order = np.random.default_rng(seed).permutation(n)
    n_out = round(n * fraction)
    n_out = min(max(n_out, 1 if n > 1 else 0), n - 1) if n > 1 else 0
    return np.sort(order[n_out:]), np.sort(order[:n_out])


def subsample(idx: np.ndarray, limit: int, seed: int) -> np.ndarray:
    if len(idx) <= limit:
        return idx
    return np.sort(np.random.default_rng(seed).choice(idx, size=limit, replace=False))


def calibrated_percentile(calibration_sorted: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Share of calibration scores strictly below each score (0..1)."""
    m = len(calibration_sorted)
    if m == 0:
        return np.zeros(len(scores))
    return np.searchsorted(calibration_sorted, scores, side="left") / m


def tarone_count(p_min: np.ndarray, alpha: float) -> int:
    """Tarone's correction factor: the smallest K with #{p_min <= alpha / K} <= K.

    ``p_min``: each test's smallest attainable p-value; tests that can never reach
    ``alpha / K`` do not count among the K.
    """
    srt = np.sort(p_min)
    ks = np.arange(1, len(srt) + 1)
    ok = np.searchsorted(srt, alpha / ks, side="right") <= ks
    return int(ks[np.argmax(ok)]) if ok.any() else max(len(srt), 1)
