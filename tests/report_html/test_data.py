"""The frames as the panels read them: column roles, typed values, how far features differ."""

from __future__ import annotations

import numpy as np
import pandas as pd
from report_pages import synthetic_report

from sanitizer.report_html.data import _Columns, _columns, _Data, _distance


def test_columns_without_a_contract_come_from_the_dtypes() -> None:
    report, batch = synthetic_report(50)
    cols = _columns(report, batch, None, "label")
    assert cols.numeric == ("record_id", "x0", "x1") and cols.categorical == ("colour",)
    assert cols.label == "label" and cols.ids == ()
    assert cols.features == ("record_id", "x0", "x1", "colour")


def test_values_are_floats_or_strings_with_missing_marked() -> None:
    frame = pd.DataFrame({"x": [1, None, 3], "c": ["a", None, 7]})
    data = _Data(frame, None, _Columns(("x",), ("c",), None, ()))
    assert np.array_equal(data.values("batch", "x"), [1.0, np.nan, 3.0], equal_nan=True)
    assert data.values("batch", "c").tolist() == ["a", "(missing)", "7"]


def test_distance_is_ks_for_numbers_and_total_variation_for_categories() -> None:
    a = np.array([0.0, 1.0, 2.0, np.nan])
    assert _distance(a, a, True) == 0.0
    assert _distance(a, a + 10, True) == 1.0
    assert _distance(np.zeros(0), a, True) == 0.0
    same, mixed = np.array(["a", "a"], dtype=object), np.array(["a", "b"], dtype=object)
    assert _distance(same, mixed, False) == 0.5
