"""Table: cached views equal what the checks computed from the prepared frame before."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sanitizer.config import SanitizerConfig
from sanitizer.contract import DataContract
from sanitizer.table import Table

CONFIG = SanitizerConfig(label_column="label", id_columns=("record_id",))


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "record_id": range(8),
            "x": [0.5, np.nan, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
            "n": [1, 2, 3, 4, 5, 6, 7, 8],
            "city": ["a", "b", None, "a", "c", "b", "a", None],
            "label": [1.0, 0.0, 1.0, 2.0, 0.0, 1.0, 1.0, 0.0],
        }
    )


def label_codes(values: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    """The per-row lookup the Table's codes replace: position in ``classes``, -1 if absent."""
    return np.asarray(pd.Index(list(classes), dtype=object).get_indexer(values), dtype=np.int64)


def test_label_and_category_codes_match_the_prepared_frame() -> None:
    frame = _frame()
    contract = DataContract.from_reference(frame, CONFIG)
    batch = frame.iloc[::-1].assign(label=[1.0, 0.0, 1.0, 3.0, 0.0, 1.0, 1.0, 0.0])
    table = Table(batch, contract)
    prepared = table.prepared
    assert (
        table.labels.tolist()
        == prepared["label"].tolist()
        == list(map(str, [1, 0, 1, 3, 0, 1, 1, 0]))
    )
    for classes in [contract.label_classes, ("1", "0"), ()]:
        expected = label_codes(prepared["label"].to_numpy(dtype=object), classes)
        assert np.array_equal(table.label_codes(classes), expected)
    assert table.label_codes(("0", "1", "2")).tolist() == [1, 0, 1, -1, 0, 1, 1, 0]
    assert table.label_codes(("0", "1", "2")) is table.label_codes(("0", "1", "2"))
    assert not table.label_codes(("0", "1", "2")).flags.writeable
    for categories in [("a", "b"), ("c", "b", "a"), ("None",), ()]:
        expected = label_codes(prepared["city"].to_numpy(dtype=object), categories)
        assert np.array_equal(table.category_codes("city", categories), expected)
    assert np.array_equal(table.missing("city"), prepared["city"].isna().to_numpy())


def test_numeric_matrix_is_column_major_float64_with_nan() -> None:
    frame = _frame()
    table = Table(frame, DataContract.from_reference(frame, CONFIG))
    x = table.numeric
    assert x.dtype == np.float64 and x.flags.f_contiguous
    assert np.array_equal(x, frame[["x", "n"]].to_numpy(dtype=float), equal_nan=True)


def test_encoding_in_blocks_equals_one_pass(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from sanitizer.checks import _features
    from sanitizer.checks._common import shared_encoder

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=1000),
            "y": np.where(rng.random(1000) < 0.1, np.nan, rng.normal(size=1000)),
            "city": rng.choice(["a", "b", "c"], size=1000),
            "label": rng.integers(0, 2, size=1000),
        }
    )
    contract = DataContract.from_reference(frame, SanitizerConfig(label_column="label"))
    encoder = shared_encoder(Table(frame, contract))
    whole = encoder.transform(Table(frame, contract))
    monkeypatch.setattr(_features, "TRANSFORM_BLOCK", 7)
    blocked = encoder.transform(Table(frame, contract))
    assert blocked.flags.c_contiguous and np.array_equal(whole, blocked)
    x = contract.prepare(frame)[["x", "y"]].to_numpy()
    expected = np.nan_to_num((x - encoder.center) / encoder.scale, nan=0.0)
    assert np.array_equal(whole[:, :2], expected)
    onehot = contract.prepare(frame)["city"].to_numpy()[:, None] == np.array(encoder.categories[0])
    assert np.array_equal(whole[:, 2:], onehot.astype(float))


def test_numeric_columns_are_views_of_float_columns_and_converted_otherwise() -> None:
    frame = _frame()
    table = Table(frame, DataContract.from_reference(frame, CONFIG))
    x, n = table.numeric_columns
    assert np.shares_memory(x, frame["x"].to_numpy())
    assert n.dtype == np.float64 and n.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    assert np.array_equal(np.column_stack([x, n]), table.numeric, equal_nan=True)
