"""A batch or reference table as the checks see it: the raw frame plus cached views."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from sanitizer.checks._features import FeatureEncoder
    from sanitizer.contract import DataContract


class Table:
    """Raw rows (RangeIndex: label = 0-based row position) and typed views shared by checks.

    The views are computed once per table, so checks that need the same feature
    matrix do not each rebuild it.
    """

    def __init__(self, raw: pd.DataFrame, contract: DataContract) -> None:
        self.raw = raw.reset_index(drop=True)
        self.contract = contract

    def __len__(self) -> int:
        return len(self.raw)

    @cached_property
    def prepared(self) -> pd.DataFrame:
        """Categoricals as str/None and the label as string keys (numerics: ``numeric``)."""
        return self.contract.prepare(self.raw, numeric=False)

    @cached_property
    def labels(self) -> np.ndarray:
        return self.prepared[self.contract.label].to_numpy(dtype=object)

    @cached_property
    def numeric(self) -> np.ndarray:
        """The numeric features as a float64 matrix (NaN where missing)."""
        return self.contract.numeric_matrix(self.raw)

    def encoded(self, encoder: FeatureEncoder) -> np.ndarray:
        """The table encoded by ``encoder``, cached by the encoder's content so checks with
        equal encoders (fitted on the same reference, or loaded from one profile) share it."""
        cache: dict[str, np.ndarray] = self.__dict__.setdefault("_encoded", {})
        key = encoder.fingerprint
        if key not in cache:
            cache[key] = encoder.transform(self)
        return cache[key]
