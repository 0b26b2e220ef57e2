"""Shared numeric encoding of a table for the statistical checks.

Fitted on the reference only: numeric features are median-imputed and scaled by
robust statistics (median / IQR, falling back to the standard deviation, then 1);
categorical features are one-hot encoded over the reference's categories (the
``max_categories`` most frequent; anything else, including missing, maps to no
column). The result is a dense float64 matrix; the same encoder applied to the
batch makes reference and batch rows comparable.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sanitizer.table import Table

#: Rows encoded at a time: a block of the column-major numeric matrix stays in cache
#: while it is written row-major.
TRANSFORM_BLOCK = 8192


@dataclass(frozen=True)
class FeatureEncoder:
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    center: np.ndarray
    scale: np.ndarray
    categories: tuple[tuple[str, ...], ...]

    @classmethod
    def fit(cls, reference: Table, max_categories: int = 50) -> FeatureEncoder:
        contract = reference.contract
        x = reference.numeric
        if x.shape[1]:
            with np.errstate(all="ignore"):
                center = np.nanmedian(x, axis=0)
                q75, q25 = np.nanpercentile(x, [75, 25], axis=0)
                scale = (q75 - q25) / 1.349  # IQR of a normal, in standard deviations
                std = np.nanstd(x, axis=0)
            scale = np.where(np.isfinite(scale) & (scale > 0), scale, std)
            scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
            center = np.where(np.isfinite(center), center, 0.0)
        else:
            center = np.zeros(0)
            scale = np.ones(0)
        categories = []
        for col in contract.categorical:
            counts = reference.prepared[col].value_counts(dropna=True)
            categories.append(tuple(str(v) for v in counts.index[:max_categories]))
        return cls(
            numeric=contract.numeric,
            categorical=contract.categorical,
            center=center,
            scale=scale,
            categories=tuple(categories),
        )

    @property
    def n_features(self) -> int:
        return len(self.numeric) + sum(len(c) for c in self.categories)

    def transform(self, table: Table) -> np.ndarray:
        """Encode ``table`` as an (n_rows, n_features) float64 matrix (C order)."""
        n = len(table)
        out = np.zeros((n, self.n_features))  # filled in place: one matrix, no temporaries
        k = len(self.numeric)
        if k:
            # the columns are gathered into a row-major block that stays in cache
            columns = table.numeric_columns
            block = np.empty((min(n, TRANSFORM_BLOCK), k))
            for start in range(0, n, TRANSFORM_BLOCK):
                x = block[: min(TRANSFORM_BLOCK, n - start)]
                for j, values in enumerate(columns):
                    x[:, j] = values[start : start + TRANSFORM_BLOCK]
                np.subtract(x, self.center, out=x)
                np.divide(x, self.scale, out=x)
                x[np.isnan(x)] = 0.0
                out[start : start + len(x), :k] = x
        for col, cats in zip(self.categorical, self.categories, strict=True):
            idx = table.category_codes(col, cats)
            hit = np.flatnonzero(idx >= 0)
            out[hit, k + idx[hit]] = 1.0
            k += len(cats)
        return out

    @cached_property
    def fingerprint(self) -> str:
        """A digest of the encoder's content: equal encoders encode a table identically."""
        import hashlib
        import json

        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "numeric": list(self.numeric),
            "categorical": list(self.categorical),
            "center": self.center.tolist(),
            "scale": self.scale.tolist(),
            "categories": [list(c) for c in self.categories],
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FeatureEncoder:
        return cls(
            numeric=tuple(raw["numeric"]),
            categorical=tuple(raw["categorical"]),
            center=np.asarray(raw["center"], dtype=float),
            scale=np.asarray(raw["scale"], dtype=float),
            categories=tuple(tuple(c) for c in raw["categories"]),
        )
