from __future__ import annotations

from typing import Self

import numpy as np
import pytest

from sanitizer.checks.base import (
    Check,
    CheckResult,
    create_check,
    get_check_class,
    registered_checks,
)
from sanitizer.errors import ConfigError
from sanitizer.table import Table


def test_registry_knows_builtins_and_rejects_unknown() -> None:
    assert "schema" in registered_checks()
    with pytest.raises(ConfigError, match=r"unknown check .bogus.; valid checks: .*schema"):
        get_check_class("bogus")


def test_unknown_option_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"checks\.schema\.colour: unknown option"):
        create_check("schema", {"colour": "red"})


def test_subclass_without_name_is_refused() -> None:
    with pytest.raises(TypeError, match="class attribute `name`"):

        class Nameless(Check):
            def fit(self, reference: Table) -> Self:
                return self

            def run(self, batch: Table) -> CheckResult:
                raise NotImplementedError


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"status": "maybe"}, "status"),
        ({"p_value": 1.5}, "p_value"),
        ({"statistic": float("nan")}, "statistic is NaN"),
        ({"row_scores": np.array([0.1, 2.0])}, r"\[0, 1\]"),
        ({"row_scores": np.array([0.1, np.nan])}, "finite"),
        ({"row_scores": np.zeros(3), "row_flags": np.zeros(2, bool)}, "differ in length"),
        ({"row_flags": np.zeros(2, bool), "row_reasons": {5: ("x",)}}, "outside the batch"),
    ],
)
def test_result_validation(kwargs: dict, message: str) -> None:
    fields = {"name": "t", "status": "pass", "message": "m"} | kwargs
    with pytest.raises(ValueError, match=message):
        CheckResult(**fields)


def test_result_to_dict_is_json_safe() -> None:
    r = CheckResult(
        name="t",
        status="fail",
        message="m",
        statistic=float("inf"),
        p_value=0.001,
        row_flags=np.array([True, False]),
        info={"k": np.int64(3), "arr": np.arange(2)},
    )
    d = r.to_dict()
    assert d["statistic"] == "inf" and d["flagged_rows"] == 1
    assert d["info"] == {"k": 3, "arr": [0, 1]}
