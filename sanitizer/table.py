"""A batch or reference table as the checks see it: the raw frame plus cached views."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from sanitizer.checks._features import FeatureEncoder
    from sanitizer.contract import DataContract


class Table:
    """Raw rows (RangeIndex: label = 0-based row position) and typed views shared by checks.

    The views are computed once per table, so checks that need the same feature
    matrix, label codes or category codes do not each rebuild them.
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
    def _label_factors(self) -> tuple[np.ndarray, np.ndarray]:
        from sanitizer.contract import label_factors

        return label_factors(self.raw[self.contract.label])

    @cached_property
    def labels(self) -> np.ndarray:
        """The label keys (``str``) as an object array, as in ``prepared``."""
        codes, keys = self._label_factors
        return keys[codes]

    def label_codes(self, classes: tuple[str, ...]) -> np.ndarray:
        """Each row's position of its label key in ``classes`` (-1 if absent), from one
        factorisation of the label column: no per-row string work."""
        cache: dict[Any, np.ndarray] = self.__dict__.setdefault("_label_codes", {})
        key = tuple(str(c) for c in classes)
        if key not in cache:
            codes, keys = self._label_factors
            cache[key] = _positions(keys, key)[codes]
            cache[key].flags.writeable = False  # shared by the checks: read-only
        return cache[key]

    def category_codes(self, column: str, categories: tuple[str, ...]) -> np.ndarray:
        """Each row's position of its value (as in ``prepared``) in ``categories``; -1 for
        a missing value or one not among them."""
        codes, texts = self._category_factors(column)
        return _positions(texts, tuple(categories))[codes]

    def missing(self, column: str) -> np.ndarray:
        """Rows where the categorical ``column`` is missing (``None`` in ``prepared``)."""
        codes, texts = self._category_factors(column)
        return codes == len(texts) - 1

    def _category_factors(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        from sanitizer.contract import category_factors

        cache: dict[str, tuple[np.ndarray, np.ndarray]] = self.__dict__.setdefault(
            "_category_factors_cache", {}
        )
        if column not in cache:
            cache[column] = category_factors(self.raw[column])
        return cache[column]

    @cached_property
    def numeric_columns(self) -> list[np.ndarray]:
        """The numeric features as float64 columns (NaN where missing), read-only: views of
        the raw frame's float64 columns, so a scan does not copy the numeric data."""
        return self.contract.numeric_columns(self.raw)

    @cached_property
    def numeric(self) -> np.ndarray:
        """The numeric features as a float64 matrix (NaN where missing), column-major."""
        import numpy as np

        out = np.empty((len(self), len(self.numeric_columns)), order="F")
        for j, values in enumerate(self.numeric_columns):
            out[:, j] = values
        return out

    def encoded(self, encoder: FeatureEncoder) -> np.ndarray:
        """The table encoded by ``encoder``, cached by the encoder's content so checks with
        equal encoders (fitted on the same reference, or loaded from one profile) share it."""
        cache: dict[str, np.ndarray] = self.__dict__.setdefault("_encoded", {})
        key = encoder.fingerprint
        if key not in cache:
            cache[key] = encoder.transform(self)
        return cache[key]


def _positions(texts: np.ndarray, categories: tuple[Any, ...]) -> np.ndarray:
    """Position in ``categories`` of each of a few distinct ``texts`` (-1: absent or None)."""
    import numpy as np

    where = {c: i for i, c in reversed(list(enumerate(categories)))}
    return np.array([-1 if t is None else where.get(t, -1) for t in texts], dtype=np.int64)
