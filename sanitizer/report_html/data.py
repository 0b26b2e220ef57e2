"""The batch and reference frames as the panels read them, and the features worth showing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sanitizer.report_html.text import MAX_FEATURE_PLOTS

if TYPE_CHECKING:
    import pandas as pd

    from sanitizer.checks.base import CheckResult
    from sanitizer.contract import DataContract
    from sanitizer.report import ScanReport

# -- inputs ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Columns:
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    label: str | None
    ids: tuple[str, ...]

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical


def _columns(
    report: ScanReport,
    batch: pd.DataFrame | None,
    contract: DataContract | None,
    label: str | None,
) -> _Columns:
    if contract is not None:
        return _Columns(contract.numeric, contract.categorical, contract.label, contract.ids)
    import pandas as pd

    frame = (
        batch if batch is not None else report.flagged.drop(columns=["reasons"], errors="ignore")
    )
    numeric = tuple(str(c) for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c].dtype))
    categorical = tuple(str(c) for c in frame.columns if str(c) not in numeric)
    numeric = tuple(c for c in numeric if c != label)
    categorical = tuple(c for c in categorical if c != label)
    return _Columns(numeric, categorical, label, ())


class _Data:
    """The batch and reference as the panels need them (positional, typed lazily)."""

    def __init__(
        self, batch: pd.DataFrame | None, reference: pd.DataFrame | None, cols: _Columns
    ) -> None:
        self.batch = None if batch is None else batch.reset_index(drop=True)
        self.reference = None if reference is None else reference.reset_index(drop=True)
        self.cols = cols
        self._cache: dict[tuple[str, str], np.ndarray] = {}
        self._matrices: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def has(self, frame: pd.DataFrame | None, column: str) -> bool:
        return frame is not None and column in frame.columns

    def values(self, which: str, column: str) -> np.ndarray:
        """Floats for numeric columns, strings (``(missing)`` for nulls) otherwise."""
        key = (which, column)
        if key not in self._cache:
            import pandas as pd

            frame = self.batch if which == "batch" else self.reference
            assert frame is not None
            series = frame[column]
            if column in self.cols.numeric:
                out = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64")
            else:
                # Python strings, not numpy's fixed-width ones: a single hostile
                # 50k-character cell must not make a 100k-row array of that width.
                missing = series.isna().to_numpy()
                raw = series.to_numpy(dtype=object)
                out = np.array(
                    [
                        "(missing)" if m else v if isinstance(v, str) else str(v)
                        for v, m in zip(raw, missing, strict=True)
                    ],
                    dtype=object,
                )
            self._cache[key] = out
        return self._cache[key]

    def matrix(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        """All rows of ``which`` as (numerics scaled by the reference's — else the batch's —
        median and standard deviation, categoricals as integer codes shared by both)."""
        if which not in self._matrices:
            import pandas as pd

            base = "reference" if self.reference is not None else "batch"
            base_frame = self.reference if self.reference is not None else self.batch
            frame = self.batch if which == "batch" else self.reference
            assert frame is not None
            usable = [f for f in self.cols.features if self.has(self.batch, f)]
            usable = [f for f in usable if self.has(base_frame, f)]
            numeric = [f for f in usable if f in self.cols.numeric]
            cats = [f for f in usable if f not in self.cols.numeric]
            z = np.zeros((len(frame), len(numeric)))
            for j, f in enumerate(numeric):
                ref = self.values(base, f)
                finite = np.isfinite(ref).any()
                centre = float(np.nanmedian(ref)) if finite else 0.0
                spread = float(np.nanstd(ref)) if finite else 1.0
                z[:, j] = (self.values(which, f) - centre) / (spread or 1.0)
            c = np.zeros((len(frame), len(cats)), dtype=np.int64)
            for j, f in enumerate(cats):
                known = pd.Index(pd.unique(self.values(base, f)))
                c[:, j] = known.get_indexer(self.values(which, f))  # -1: not in the base
            self._matrices[which] = (np.nan_to_num(z, nan=0.0, posinf=1e6, neginf=-1e6), c)
        return self._matrices[which]


def _evidence_features(c: CheckResult, data: _Data, flags: np.ndarray | None) -> list[str]:
    """Features this check names in ``info``, else (with data) those its flagged rows
    differ on most from the reference."""
    info = c.info
    named: list[str] = []
    for key in ("drifted_features", "drifted", "features", "feature"):
        value = info.get(key)
        if isinstance(value, str):
            named.append(value)
        elif isinstance(value, Iterable) and not isinstance(value, Mapping | bytes):
            named.extend(str(v) for v in value)
    for finding in info.get("findings") or ():
        if isinstance(finding, Mapping) and finding.get("feature") is not None:
            named.append(str(finding["feature"]))
    for exp in info.get("failed_expectations") or ():
        if isinstance(exp, Mapping) and exp.get("column") is not None:
            named.append(str(exp["column"]))
    tests = info.get("tests")
    if isinstance(tests, Mapping) and not named:
        ranked = sorted(
            (k for k, v in tests.items() if isinstance(v, Mapping)),
            key=lambda k: float(tests[k].get("adjusted", tests[k].get("p_value", 1.0)) or 1.0),
        )
        named.extend(ranked[:MAX_FEATURE_PLOTS])
    usable = [
        f for f in dict.fromkeys(named) if f in data.cols.features and data.has(data.batch, f)
    ]
    if usable or flags is None or data.batch is None or c.status == "pass":
        return usable
    return _most_different(data, flags)


def _most_different(data: _Data, flags: np.ndarray) -> list[str]:
    """Features ranked by how far the flagged rows sit from the reference (or the batch)."""
    base = "reference" if data.reference is not None else "batch"
    frame = data.reference if data.reference is not None else data.batch
    scored = []
    for f in data.cols.features:
        if not (data.has(data.batch, f) and data.has(frame, f)):
            continue
        flagged = data.values("batch", f)[flags]
        scored.append((_distance(flagged, data.values(base, f), f in data.cols.numeric), f))
    scored.sort(key=lambda t: -t[0])
    return [f for d, f in scored[:MAX_FEATURE_PLOTS] if d > 0]


def _distance(a: np.ndarray, b: np.ndarray, numeric: bool) -> float:
    """Kolmogorov–Smirnov distance (numeric) or total variation (categorical)."""
    if numeric:
        a, b = np.sort(a[np.isfinite(a)]), np.sort(b[np.isfinite(b)])
        if not len(a) or not len(b):
            return 0.0
        grid = np.concatenate([a, b])
        cdf_a = np.searchsorted(a, grid, side="right") / len(a)
        cdf_b = np.searchsorted(b, grid, side="right") / len(b)
        return float(np.max(np.abs(cdf_a - cdf_b)))
    if not len(a) or not len(b):
        return 0.0
    pa, pb = _shares(a), _shares(b)
    return 0.5 * sum(abs(pa.get(k, 0.0) - pb.get(k, 0.0)) for k in set(pa) | set(pb))


def _shares(values: np.ndarray) -> dict[str, float]:
    """Share of each distinct value (hash-based: object arrays of 100k strings sort slowly)."""
    import pandas as pd

    if not len(values):
        return {}
    counts = pd.Series(values, dtype=object).value_counts(normalize=True, sort=False)
    return {str(k): float(v) for k, v in counts.items()}
