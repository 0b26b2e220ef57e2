"""Synthetic tabular classification data, generated at run time (no downloads).

Used by the demo, the tests and the benchmarks: numeric features with class
structure plus categorical columns, and an id column.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


def make_dataset(
    n_rows: int,
    *,
    n_numeric: int = 6,
    n_classes: int = 2,
    seed: int = 0,
    label_column: str = "label",
) -> pd.DataFrame:
    """A labelled table: ``n_numeric`` informative/noise numeric columns, two categoricals.

    The same ``seed`` always gives the same population; different ``n_rows`` draw
    different sample sizes from it. Use :func:`split` for reference/batch parts
    drawn without replacement.
    """
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=n_rows,
        n_features=n_numeric,
        n_informative=max(2, n_numeric // 2),
        n_redundant=min(1, max(0, n_numeric - 3)),
        n_classes=n_classes,
        n_clusters_per_class=1,
        class_sep=1.5,
        flip_y=0.0,
        random_state=seed,
    )
    rng = np.random.default_rng(seed + 1)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(n_numeric)])
    frame["region"] = rng.choice(
        ["north", "south", "east", "west"], size=n_rows, p=[0.4, 0.3, 0.2, 0.1]
    )
    # A categorical that carries class signal, as real features do.
    plan = np.where(y == 0, rng.choice(["basic", "plus", "pro"], n_rows, p=[0.6, 0.3, 0.1]),
                    rng.choice(["basic", "plus", "pro"], n_rows, p=[0.2, 0.3, 0.5]))  # fmt: skip
    frame["plan"] = plan
    frame[label_column] = y.astype(int)
    frame.insert(0, "record_id", np.arange(n_rows))
    return frame


def split(frame: pd.DataFrame, sizes: list[int], *, seed: int = 0) -> list[pd.DataFrame]:
    """Disjoint random parts of ``frame`` with the given sizes (no row used twice)."""
    if sum(sizes) > len(frame):
        raise ValueError(f"sizes {sizes} need {sum(sizes)} rows, frame has {len(frame)}")
    order = np.random.default_rng(seed).permutation(len(frame))
    parts, start = [], 0
    for size in sizes:
        parts.append(frame.iloc[order[start : start + size]].reset_index(drop=True))
        start += size
    return parts
